"""The Ray instance `stackserve serve` starts for itself, in its own session.

A plain ``ray.init()`` starts the GCS, raylet and agents in the server's own process group. A
SIGTERM to that group (a terminal's job control, many supervisors) then reached Ray's processes at
the same moment as the gateway: either they died at once, cutting the gateway's in-flight calls and
its access-log lines, or Serve's controller hung for 30 s. Here the head runs as
``ray start --head --block`` in a new session, so a signal to the server's group reaches the gateway
only; the gateway drains its calls and then stops the head itself (``stop``). If the server dies
without stopping it (SIGKILL, an out-of-memory kill), the head's guard (``server/process_guard.py``,
in a session of its own too) reads the end of the server's lifeline pipe, sends the head SIGTERM,
and after a grace SIGKILLs its session: no Ray is left behind. (``PR_SET_PDEATHSIG`` from a
``preexec_fn`` did this before: unsafe in a threaded process, and it watched the thread-pool worker
that forked rather than the server.)
"""

from __future__ import annotations

import contextlib
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
from server.process_guard import guarded_command, lifeline

log = logging.getLogger("stackserve.ray_cluster")


class PrivateRayHead:
    def __init__(self, num_cpus: int | None = None) -> None:
        self.num_cpus = num_cpus
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ssray-", dir="/tmp"))  # short: Ray's socket paths
        self.process: subprocess.Popen[bytes] | None = None  # the guard; the head is its child
        self._lifeline = -1  # our end of the guard's pipe: closed by the kernel when we die
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
        watched, self._lifeline = lifeline()
        guarded = guarded_command(cmd, watched, new_session=True, pid_file=self._pid_file)
        try:
            self.process = subprocess.Popen(guarded, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, pass_fds=(watched,))
        finally:
            out.close()
            os.close(watched)
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
        log.info("started a private Ray head at %s (guard %d)", self.address, self.process.pid)
        return self.address

    @property
    def _pid_file(self) -> Path:
        return self.temp_dir / "ray_start.pid"

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to ``ray start --block`` through its guard (it stops the node's processes; the guard
        then SIGKILLs whatever of the head's session is left), SIGKILL after ``grace_s``."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the guard passes it on
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("the Ray head did not stop within %.0f s of SIGTERM; killing it", grace_s)
        with contextlib.suppress(ValueError, OSError):
            head = int(self._pid_file.read_text())
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(head, signal.SIGKILL)  # its session's group: GCS, raylet, agents, workers
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the guard, if it is still there
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._lifeline)
        self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.temp_dir / "ray_start.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""
