import textwrap
def L(s):
    """one item per non-empty line"""
    return [x.strip() for x in s.strip("\n").split("\n") if x.strip()]
def P(s):
    """multi-line items separated by a line containing only ==="""
    out = []
    for chunk in s.split("\n===\n"):
        t = textwrap.dedent(chunk).strip("\n").strip()
        if t:
            out.append(t)
    return out
