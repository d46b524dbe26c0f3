import json, os
from .harmful import H
from .build_jb import build as build_jb
from .inj import I
from . import ben1, ben2, ben3, ben4, ben5

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "server", "guardrails", "data")
os.makedirs(OUT, exist_ok=True)

def write(name, rows):
    seen = set()
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        for r in rows:
            assert r["text"] not in seen, ("dup", r["text"][:80])
            seen.add(r["text"])
            f.write(json.dumps({"text": r["text"], "label": r["label"], "family": r["family"]}, ensure_ascii=False) + "\n")
    print(name, len(rows))

write("harmful_requests.jsonl", [{"text": t, "label": "harmful", "family": fam} for fam, lst in H.items() for t in lst])
write("jailbreaks.jsonl", build_jb())
write("injections.jsonl", [{"text": t, "label": "injection", "family": fam} for fam, lst in I.items() for t in lst])
ben = {}
for m in (ben1, ben2, ben3, ben4, ben5):
    for fam, lst in m.B.items():
        ben.setdefault(fam, []).extend(lst)
order = ["risky_wording_programming", "risky_wording_general", "security_defensive", "medical_legal_sensitive",
         "roleplay_benign", "long_benign_prompt", "general_knowledge", "instruction_like_documents",
         "fiction_benign", "debate_and_opinion"]
assert set(order) == set(ben)
write("benign.jsonl", [{"text": t, "label": "benign", "family": fam} for fam in order for t in ben[fam]])
