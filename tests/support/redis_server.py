"""A throwaway Redis for tests: Debian's ``redis-server`` on a free port of 127.0.0.1, nothing on disk.

Why a real server: the shared limits (server/security/shared_limits.py) are a Lua script run inside
Redis, with Redis' clock; a fake would test a different program. No persistence (``--save ''``,
``--appendonly no``), its working directory a temporary one, stopped (SIGTERM, then SIGKILL) when
the context exits. ``stop()``/``start()`` let a test take it away mid-run and bring it back on the
same port (the fallback to per-process limits).

Missing ``redis-server`` skips the test with how to install it, except under ``CI=true``, where it
fails: CI installs the package (.ci/run), and a suite that passes by skipping its shared-limit
tests there would hide a broken install (as tests/conftest.py treats missing compiled kernels).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from server.launcher import free_port
from tests.support.compiled import in_ci

INSTALL_HINT = "apt-get install -y redis-server (Debian's package; .ci/run installs it)"


def redis_binary() -> str:
    """The path of redis-server; skips the test without it (fails it under CI=true)."""
    path = shutil.which("redis-server")
    if path is None:
        message = f"redis-server is not installed: {INSTALL_HINT}"
        if in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return path


def _ping(port: int, timeout: float = 0.5) -> bool:
    """PING over a raw socket: the fixture needs no client library to know the server is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; ``url`` stays the same across ``stop()``/``start()``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - the child holds it; closed at stop
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: "
                                   f"{(self.workdir / 'redis.log').read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port} within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """A started Redis, stopped when the context exits."""
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
