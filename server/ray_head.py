"""The Ray instance `stackserve serve` starts for itself, in its own session.

A plain ``ray.init()`` starts the GCS, raylet and agents in the server's own process group. A
SIGTERM to that group (a terminal's job control, many supervisors) then reached Ray's processes at
the same moment as the gateway: either they died at once, cutting the gateway's in-flight calls and
its access-log lines, or Serve's controller hung for 30 s. Here the head runs as
``ray start --head --block`` in a new session, so a signal to the server's group reaches the gateway
only; the gateway drains its calls and then stops the head itself (``stop``). If the server dies
without stopping it, the kernel sends the head SIGTERM (``PR_SET_PDEATHSIG``) and ``--block`` takes
its processes down with it: no Ray is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server.launcher import free_port

log = logging.getLogger("stackserve.ray_cluster")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it exits (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class PrivateRayHead:
    def __init__(self, num_cpus: int | None = None) -> None:
        self.num_cpus = num_cpus
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ssray-", dir="/tmp"))  # short: Ray's socket paths
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self, timeout_s: float = 120.0) -> str:
        """Start the head and wait for it; the GCS address to ``ray.init`` with."""
        port = free_port()
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               "--include-dashboard=false", "--disable-usage-stats",
               f"--temp-dir={self.temp_dir}"]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        out = open(self.temp_dir / "ray_start.log", "wb")  # noqa: SIM115 - the child writes it
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        out.close()
        recorded = self.temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + timeout_s
        while not recorded.exists() or not recorded.read_text().strip():
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the Ray head did not start in {timeout_s:.0f} s:\n{self._log_tail()}")
            time.sleep(0.1)
        self.address = recorded.read_text().strip()
        log.info("started a private Ray head at %s (session %d)", self.address, self.process.pid)
        return self.address

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to ``ray start --block`` (it stops the node's processes), then SIGKILL to whatever
        of its session is left after ``grace_s``."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("the Ray head did not stop within %.0f s of SIGTERM; killing it", grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its session's group: GCS, raylet, agents, workers
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.temp_dir / "ray_start.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""
