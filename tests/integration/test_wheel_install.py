"""What the images do (deployments/docker), without a container engine: the wheel, installed, serves.

No container engine runs here (none could pull the base images), so this test does the image's steps
itself: it builds the wheel from the sources the build stage copies (``pip wheel --no-deps
--no-build-isolation``, with this venv's build requirements: no network), installs it (not
editable) into a fresh virtual environment outside the checkout, and from another directory runs
``stackserve --version`` and ``stackserve serve`` on free ports with an empty data dir: trained on
first start (``--train-if-missing``), ready, one Score through the Ray replicas, one chat, SIGTERM,
exit 0 and no process left.

The fresh venv gets the runtime dependencies without a network: a ``.pth`` file with this venv's
site-packages as a plain path line. Such a line adds the folder to ``sys.path`` without processing
the ``.pth`` files inside it, so the checkout's editable install (its import hook is one of those)
is not loaded: ``server`` imports from the wheel, which the test asserts, and that every runtime
``Requires-Dist`` is met there, as pip would have made it in the image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from server.client import AnomalyClient, LLMClient
from server.launcher import RunningServer, server_env
from tests.integration.conftest import server_processes, start_or_fail
from tests.support.llm_fixtures import LLM_TEST_CONFIG, llm_test_backend
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deployments" / "docker"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Build outputs left out of the image's build context (.dockerignore): made again by the build.
BUILD_OUTPUTS = ("__pycache__", "*.pyc", "*.so", "gen", "_tree_ensemble.c")
#: Test and development tools that must never be runtime dependencies of the served package.
DEV_ONLY = {"pytest", "transformers", "triton", "pgserver", "hypothesis"}


def build_context() -> list[str]:
    """The sources Dockerfile.cpu's build stage copies (its ``COPY`` lines before the runtime stage)."""
    build_stage = DOCKER.joinpath("Dockerfile.cpu").read_text().split("\nFROM ")[1]
    sources = []
    for line in build_stage.splitlines():
        if line.startswith("COPY "):
            sources += [w for w in line.split()[1:-1] if not w.startswith("--")]
    return sources


def quoted_requirements(dockerfile: Path) -> dict[str, Requirement]:
    """Every ``"name<spec>"`` a Dockerfile installs, by canonical name."""
    reqs = [Requirement(s) for s in re.findall(r'"([A-Za-z][\w.-]*(?:[<>=!~][^"]*)?)"', dockerfile.read_text())]
    return {canonicalize_name(r.name): r for r in reqs}


def default_requirements(metadata: str) -> list[Requirement]:
    """A wheel's ``Requires-Dist`` without extras: what ``pip install <wheel>`` installs."""
    env = {**default_environment(), "extra": ""}
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]  # fmt: skip
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("Dockerfile.*")), ids=lambda p: p.name)
def test_images_build_a_wheel_with_the_declared_pins(dockerfile):
    text = dockerfile.read_text()
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in text
    assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", text), "the image installs the package editable"
    assert not re.search(r"\[[^\]]*\bdev\b", text), "the dev extra in an image"
    installed = quoted_requirements(dockerfile)
    for spec in PYPROJECT["build-system"]["requires"]:  # setup.py imports them; no build isolation
        assert installed.get(canonicalize_name(Requirement(spec).name)) == Requirement(spec), spec
    declared = {canonicalize_name(Requirement(r).name): Requirement(r)
                for r in [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["gpu"],
                          *PYPROJECT["project"]["optional-dependencies"]["models"]]}  # fmt: skip
    for name, req in installed.items():
        if name in declared:
            assert req.specifier == declared[name].specifier, f"{dockerfile.name}: {req}, pyproject: {declared[name]}"
    assert installed["torch"].specifier == declared["torch"].specifier


def test_the_build_context_holds_what_the_build_stage_copies():
    sources = build_context()
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "proto", "server", "kernels", "deployments"} <= set(sources)
    kept = [line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert sorted(kept) == sorted(sources), ".dockerignore must keep exactly what the build stage copies"
    gpu = DOCKER.joinpath("Dockerfile.gpu").read_text()
    missing = [s for s in sources if not re.search(rf"^COPY --chown=1000:100 .*(?<![\w.]){re.escape(s)}\b", gpu, re.M)]
    assert not missing, f"Dockerfile.gpu does not copy {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built as the image's build stage builds it: from a copy of the sources it copies."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for name in build_context():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns(*BUILD_OUTPUTS))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(base / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(f"wheel built in {time.perf_counter() - t0:.1f} s")
    (whl,) = (base / "dist").glob("stackserve-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel installed; the dependencies from this venv."""
    path = tmp_path_factory.mktemp("venv")
    # without pip: ensurepip's setuptools (65.5 on Python 3.11) would shadow the newer one torch requires,
    # which pip, resolving in the image, installs; this venv's pip installs the wheel instead (--python)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    fresh = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # plain path lines: sys.path entries, whose own .pth files (the editable install's hook) are not run
    Path(fresh, "_stackserve_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python), "install",
                    "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)  # fmt: skip
    return path


def fresh_env(venv: Path) -> dict[str, str | None]:
    """The fresh venv activated, nothing of the checkout on the path (laid over this environment)."""
    return {"PYTHONPATH": None, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}


def run_in(venv: Path, argv: list[str], cwd: Path) -> str:
    """``argv`` run in ``cwd`` with the fresh venv activated; its stdout."""
    out = subprocess.run(argv, cwd=cwd, env=server_env(fresh_env(venv)), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


#: Run in the fresh venv: where every module the server needs comes from, and where its data files are.
WHERE_FROM = """
import importlib, json
mods = ["server", "kernels", "deployments", "deployments.app", "server.gen.stackserve.v1.anomaly_pb2_grpc",
        "kernels.cpp._llm_step", "kernels.cpp._tree_ensemble", "kernels.cython._tree_ensemble"]
out = {m: importlib.import_module(m).__file__ for m in mods}
from server.guardrails import classifier, training_data
from server.rag import chat
from server.slo.objectives import default_slo_path
out |= {"slo.yaml": str(default_slo_path()), "risk_heads": str(classifier.MODEL_FILE),
        "prompts": str(chat.PROMPTS / "answer_v1.jinja"), "guardrail data": str(training_data.DATA / "benign.jsonl")}
print(json.dumps(out))
"""

#: Run in the fresh venv: the requirements that this environment does not meet, from the installed package's
#: Requires-Dist (no extras) down through its dependencies' own (and the extras asked of them, ray[serve,data]):
#: what pip's resolver would have installed in the image.
UNMET = """
import importlib.metadata as md, json
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
unmet, seen = [], set()
def check(dist, extra):
    for line in md.distribution(dist).requires or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({**default_environment(), "extra": extra}):
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            unmet.append(f"{req} (needed by {dist}[{extra}]): not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{req} (needed by {dist}[{extra}]): {version} installed")
        for sub in ["", *req.extras]:
            if (canonicalize_name(req.name), sub) not in seen:
                seen.add((canonicalize_name(req.name), sub))
                check(req.name, sub)
check("stackserve", "")
where = str(md.distribution("stackserve").locate_file(""))
print(json.dumps({"unmet": unmet, "checked": len(seen), "location": where}))
"""


@pytest.mark.integration
@pytest.mark.cluster
def test_the_wheel_carries_what_the_server_reads_and_only_runtime_dependencies(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    src = wheel.parents[1] / "src"
    for path in src.rglob("*"):
        rel = path.relative_to(src).as_posix()
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        # server/ is all package: every module and data file; kernels/ and deployments/ ship their modules, and
        # the Serve config files (deployments/docker, kubernetes, grafana, prometheus are not read at run time)
        if rel.startswith("server/") or (rel.startswith(("kernels/", "deployments/")) and path.suffix == ".py") or (
                rel.startswith("deployments/configs/")):
            assert rel in names, f"{rel} is missing from the wheel"
    for proto in (src / "proto").rglob("*.proto"):
        stub = "server/gen/" + proto.relative_to(src / "proto").with_suffix("").as_posix()
        assert {f"{stub}_pb2.py", f"{stub}_pb2_grpc.py"} <= names, f"no gRPC stubs for {proto.name}"
    for module in ("kernels.cpp._llm_step", "kernels.cpp._tree_ensemble", "kernels.cython._tree_ensemble"):
        prefix = module.replace(".", "/") + "."
        assert any(n.startswith(prefix) and n.endswith(".so") for n in names), f"{module} is not compiled in"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    runtime = {canonicalize_name(r.name) for r in default_requirements(metadata)}
    assert runtime == {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert not runtime & DEV_ONLY, f"dev-only packages among the runtime dependencies: {runtime & DEV_ONLY}"


@pytest.mark.integration
@pytest.mark.cluster
@pytest.mark.timeout(360)
def test_the_installed_wheel_serves_from_outside_the_checkout(venv, tmp_path):
    python, stackserve = venv / "bin" / "python", venv / "bin" / "stackserve"
    where = json.loads(run_in(venv, [python, "-c", WHERE_FROM], cwd=tmp_path))
    outside = {k: v for k, v in where.items() if not Path(v).resolve().is_relative_to(venv.resolve())}
    assert not outside, f"imported or read from outside the fresh venv (the checkout?): {outside}"
    assert all(Path(v).is_file() for v in where.values()), where
    deps = json.loads(run_in(venv, [python, "-c", UNMET], cwd=tmp_path))
    assert Path(deps["location"]).resolve().is_relative_to(venv.resolve()), deps["location"]
    assert deps["unmet"] == [] and deps["checked"] > 50, deps
    version = run_in(venv, [stackserve, "--version"], cwd=tmp_path)
    assert version.strip() == f"stackserve {PYPROJECT['project']['version']}", version

    env = {
        **fresh_env(venv),
        "RAY_ADDRESS": None,  # a private Ray head, as the image's `stackserve serve` starts
        "STACKSERVE_CONFIG": None,
        "STACKSERVE_DATA_DIR": str(tmp_path / "data"),  # empty: --train-if-missing trains and registers
        "STACKSERVE__ANOMALY__IN_GATEWAY_MAX_EVENTS": "0",  # every Score through the Ray replicas
        "STACKSERVE__LLM__BACKEND": llm_test_backend(),
        **{f"STACKSERVE__LLM__{k.upper()}": str(v) for k, v in LLM_TEST_CONFIG.items()},
    }
    t0 = time.perf_counter()
    server = start_or_fail(["--train-if-missing"], command=[str(stackserve)], cwd=tmp_path,
                           workdir=tmp_path / "server", env=env, ready_timeout=300)  # fmt: skip
    try:
        print(f"trained and ready after {time.perf_counter() - t0:.1f} s")
        assert sorted(server.info["models"]) == ["shuttle-iforest", "shuttle-rf", "shuttle-rf-stream"]
        score_and_chat(server)
        processes = server_processes(server)
        assert_runs_the_wheel(processes, venv)
        started = time.monotonic()
        code = server.stop(timeout=60)  # SIGTERM, as Kubernetes sends it
        took = time.monotonic() - started
    finally:
        server.stop(timeout=10)
    assert code == 0, f"server exited with {code}:\n{server.log_tail(3000)}"
    assert took < 30, f"shutdown took {took:.1f} s"
    wait_until(lambda: not [p for p in processes if alive(p)], 30, "every server and Ray process exited")


def score_and_chat(server: RunningServer) -> None:
    from server.anomaly.data import load_shuttle

    df = load_shuttle()
    rows = pd.concat([df[df["anomaly"] == 1].head(8), df[df["anomaly"] == 0].head(8)])
    with AnomalyClient(server.address) as c:
        assert c.health("") == "SERVING"
        scores = c.score(rows.drop(columns="anomaly").to_numpy(np.float32))
    assert (scores.model, scores.version) == ("shuttle-rf", "1") and scores.scores.shape == (16,)
    assert (scores.is_anomaly == rows["anomaly"].to_numpy().astype(bool)).mean() >= 0.9, scores.is_anomaly
    with LLMClient(server.address) as c:
        pieces = list(c.chat("What is the capital of France?", temperature=0, max_tokens=16))
    text = "".join(p.text for p in pieces)
    assert "Paris" in text and pieces[-1].finish_reason == "stop", text


def assert_runs_the_wheel(processes: list[psutil.Process], venv: Path) -> None:
    """No process of the server (gateway, Ray head, replicas) maps a file of the checkout other than this
    venv's; the anomaly replica that answered maps the fresh venv's compiled kernels."""
    checkout, deps = str(ROOT) + "/", str(Path(sys.prefix).resolve()) + "/"
    replicas = []
    for p in processes:
        try:
            maps = [m.path for m in p.memory_maps()]
            name = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        wrong = [m for m in maps if m.startswith(checkout) and not m.startswith(deps)]
        assert not wrong, f"{name[:80]} runs files of the checkout: {wrong[:5]}"
        if "ServeReplica:anomaly" in name:
            replicas.append([m for m in maps if m.startswith(str(venv.resolve())) and "/kernels/" in m])
    assert replicas and all(replicas), f"anomaly replicas and the kernels they map: {replicas}"


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
