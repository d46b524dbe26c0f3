"""Thread budget: the LLM decoding and tree scoring side by side in one process (the gateway with
the LLM in it), with every pool sized by ``server/thread_budget.py`` or by the libraries' defaults.

Why: each library sizes its pool from the host's cores, not from the CPUs the process may use; in a
container with a CPU quota or under ``taskset`` the pools of one process oversubscribe those CPUs.
Each configuration runs in a fresh process (pool sizes are read once, at import):

* ``budget``: ``STACKSERVE_THREAD_BUDGET=1`` (the default): every pool at most the usable CPUs;
* ``defaults``: ``STACKSERVE_THREAD_BUDGET=0``: OpenMP/torch/numba at their own defaults, the LLM
  step's team at the old fixed 2 threads;

each unpinned and pinned to one CPU (``taskset -c 0``: what a 1-CPU quota looks like to the
libraries). In each process an LLM engine (cpu-int4, the packaged SmolLM2) decodes 8 greedy
streams of 64 tokens while a thread scores 256-event batches with the packaged forest
continuously; reported: decode tokens/s and scored events/s while both run, medians of ``--rounds``
runs. The CPU is printed; ``bench/results/thread_budget.{json,png}``.

    python -m bench.thread_budget            # 3 rounds
    python -m bench.thread_budget --quick    # 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.report import machine_line, markdown_table, write_json

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("budget", "1", False), ("defaults", "0", False), ("budget", "1", True), ("defaults", "0", True)]


def _child() -> None:
    """One configuration's measurement, in this (fresh) process; prints one JSON line."""
    from server.thread_budget import apply_environment

    apply_environment()
    import numpy as np
    import torch
    from sklearn.ensemble import RandomForestClassifier

    from kernels import tree_ensemble
    from kernels.tree_ensemble_format import compile_forest
    from server.config import LLMConfig
    from server.llm.engine import LLMEngine
    from server.llm.params import SamplingParams

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4096, 9)).astype(np.float32)
    forest = compile_forest(RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0)
                            .fit(X, X[:, 0] > 0))
    engine = LLMEngine(LLMConfig(max_num_seqs=8, max_model_len=256)).start()
    params = SamplingParams(max_tokens=64, temperature=0.0, ignore_eos=True)
    engine.generate_blocking("Hi", SamplingParams(max_tokens=4, temperature=0.0))  # warm

    stop = threading.Event()
    scored = [0]

    def score() -> None:
        batch = X[:256]
        while not stop.is_set():
            tree_ensemble.score(forest, batch)
            scored[0] += batch.shape[0]

    scorer = threading.Thread(target=score, daemon=True)
    prompts = [f"Count from {i}:" for i in range(8)]
    scorer.start()
    started = time.perf_counter()
    done = threading.Barrier(len(prompts) + 1)
    tokens = [0]

    def run(prompt: str) -> None:
        tokens[0] += sum(len(c.token_ids) for c in engine.generate_blocking(prompt, params))
        done.wait()

    for prompt in prompts:
        threading.Thread(target=run, args=(prompt,), daemon=True).start()
    done.wait()
    took = time.perf_counter() - started
    stop.set()
    scorer.join()
    engine.shutdown()
    print(json.dumps({"tokens_per_s": tokens[0] / took, "events_per_s": scored[0] / took,
                      "torch_threads": torch.get_num_threads(), "llm_threads": engine.num_threads,
                      "omp": os.environ.get("OMP_NUM_THREADS")}))


def _run(name: str, budget: str, pinned: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.thread_budget", "--child"]
    if pinned:
        cmd = ["taskset", "-c", "0", *cmd]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "STACKSERVE_KERNEL_THREADS", "STACKSERVE_CPUS")}
    env["STACKSERVE_THREAD_BUDGET"] = budget
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{name} ({'pinned' if pinned else 'unpinned'}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round")
    args = ap.parse_args()
    if args.child:
        _child()
        return
    print(machine_line())
    configs = [c for c in CONFIGS if not c[2] or shutil.which("taskset")]
    rounds = 1 if args.quick else args.rounds
    results: dict[str, list[dict]] = {}
    from rich.progress import track

    for _ in track(range(rounds), description="rounds"):
        for name, budget, pinned in configs:  # interleaved: a load spike hits every configuration alike
            results.setdefault(f"{name}{' pinned to 1 CPU' if pinned else ''}", []).append(
                _run(name, budget, pinned))
    rows = []
    for label, runs in results.items():
        rows.append([label, f"{statistics.median(r['tokens_per_s'] for r in runs):.1f}",
                     f"{statistics.median(r['events_per_s'] for r in runs):,.0f}",
                     runs[0]["llm_threads"], runs[0]["torch_threads"]])
    print(markdown_table(["configuration", "decode tok/s", "scored events/s", "LLM step threads",
                          "torch threads"], rows))
    path = write_json("thread_budget", {"rounds": rounds, "results": results})
    _plot(results, path.with_suffix(".png"))
    print(f"results: {path}")


def _plot(results: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, title in ((axes[0], "tokens_per_s", "LLM decode tokens/s"),
                           (axes[1], "events_per_s", "tree-scored events/s")):
        ax.barh(labels, [statistics.median(r[key] for r in results[k]) for k in labels])
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
