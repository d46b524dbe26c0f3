"""Nothing outlives what started it: the guard (server/process_guard.py) under the Ray head, and the
lifeline under a server started by server/launcher.py. Real processes, real signals, SIGKILL
included (the case a ``PR_SET_PDEATHSIG`` set from a thread-pool worker got wrong, and a benchmark
killed by its timeout showed: its server and Ray head were found alive 80 minutes later)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from server.process_guard import guarded_command, lifeline
from tests.integration.conftest import server_processes, start_or_fail
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration
LIGHT = {"STACKSERVE__LLM__ENABLED": "false", "STACKSERVE__RAG__ENABLED": "false"}


def _gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still alive (zombies count as gone) after waiting up to ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _starter(script: str, tmp_path: Path) -> tuple[subprocess.Popen[str], dict]:
    """A Python process running ``script``, which prints one JSON line and then waits to be killed."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line, f"the starter printed nothing (exit {proc.wait(30)})"
    return proc, json.loads(line)


def test_the_guard_passes_signals_on_and_ends_as_its_command_ended():
    watched, held = lifeline()
    try:
        trap = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(3)); time.sleep(60)"
        for cmd, expected in (([sys.executable, "-c", trap], 3), (["sleep", "60"], -signal.SIGTERM)):
            guard = subprocess.Popen(guarded_command(cmd, watched), pass_fds=(watched,))
            time.sleep(1.0)  # the command has started and set its handler
            guard.send_signal(signal.SIGTERM)
            assert guard.wait(20) == expected
    finally:
        os.close(watched)
        os.close(held)


def test_the_guards_command_dies_when_its_starter_is_killed(tmp_path):
    pid_file = tmp_path / "cmd.pid"
    starter, _ = _starter(f"""
        import json, subprocess, time
        from server.process_guard import guarded_command, lifeline
        watched, held = lifeline()
        guard = subprocess.Popen(guarded_command(["sleep", "600"], watched, grace_s=2, new_session=True,
                                                 pid_file=__import__("pathlib").Path({str(pid_file)!r})),
                                 pass_fds=(watched,), start_new_session=True)
        while not __import__("os").path.exists({str(pid_file)!r}):
            time.sleep(0.05)
        print(json.dumps({{"guard": guard.pid}}), flush=True)
        time.sleep(600)
    """, tmp_path)
    cmd = int(pid_file.read_text())
    assert psutil.pid_exists(cmd) and os.getsid(cmd) == cmd, "the command leads a session of its own"
    starter.kill()
    starter.wait(10)
    assert _gone([cmd], within_s=20) == [], "the command outlived its SIGKILLed starter"


@pytest.mark.cluster
def test_the_ray_head_dies_with_a_sigkilled_server(trained, settings, tmp_path):
    server = start_or_fail(["--train-if-missing"], workdir=tmp_path, ready_timeout=240,
                           env={"STACKSERVE_DATA_DIR": str(settings.data_dir), **LIGHT})
    try:
        procs = server_processes(server)
        ray = [p.pid for p in procs if "ray" in " ".join(p.cmdline()).lower()]
        assert ray, "no Ray process found: this configuration should start a private Ray head"
        os.kill(server.process.pid, signal.SIGKILL)  # the gateway alone: its group is not signalled
        server.process.wait(10)
        left = _gone([p.pid for p in procs], within_s=60)
        assert left == [], [" ".join(psutil.Process(p).cmdline())[:120] for p in left if psutil.pid_exists(p)]
    finally:
        server.stop(timeout=5)


@pytest.mark.cluster
def test_a_launched_server_dies_with_its_launcher(trained, settings, tmp_path):
    """The launcher SIGKILLed (a benchmark's timeout): its server stops (SIGTERM's drain), no-Ray here."""
    starter, info = _starter(f"""
        import json, time
        from pathlib import Path
        from server.launcher import start_server
        s = start_server(["--no-ray"], workdir=Path({str(tmp_path)!r}), ready_timeout=240,
                         env={{"STACKSERVE_DATA_DIR": {str(settings.data_dir)!r}, "TRITON_INTERPRET": None,
                               **{LIGHT!r}}})
        print(json.dumps({{"server": s.process.pid, "log": str(s.log_path)}}), flush=True)
        time.sleep(600)
    """, tmp_path)
    server = info["server"]
    assert psutil.pid_exists(server)
    starter.kill()
    starter.wait(10)
    assert _gone([server], within_s=120) == [], "the server outlived its SIGKILLed launcher"
    log = Path(info["log"]).read_text(errors="replace")
    assert "shutting down" in log, log[-2000:]  # it stopped as a SIGTERM stops it, not by the SIGKILL
