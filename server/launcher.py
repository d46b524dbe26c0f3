"""Start ``stackserve serve`` in a child process and wait until it serves: for benchmarks and tests.

The server is started exactly as a user starts it (``python -m server.cli serve``), on free
ports (``--port 0 --metrics-port 0``), in a session of its own (so the Ray processes it starts
share its process group and nothing reaches the caller's terminal), with stdout and stderr in a
log file. Readiness is the ``--ready-file`` contract of ``server/cli/serve.py``: once every
application is SERVING the server writes the bound addresses there as JSON (``grpc``,
``metrics``, ``models``, ``llm``), atomically (a temporary file renamed into place).

    with start_server(["--train-if-missing"], workdir=tmp) as server:
        AnomalyClient(server.address).score(X)

Stopping sends one signal to the server process (SIGTERM, as a supervisor does; SIGINT, as
Ctrl-C does), gives it ``timeout`` seconds to shut down, then kills its whole process group;
whatever it left behind in its group is killed too. The server dies with whatever launched it:
it watches a lifeline pipe whose other end only the launching process holds
(``server/process_guard.py``), so a benchmark killed by a timeout does not leave a server and its
Ray head running. Only the standard library is used: the benchmarks and tests import this without
pulling in the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from server.process_guard import LIFELINE_ENV, lifeline

#: A log excerpt in an error message: the end of the file, where a traceback is.
LOG_TAIL_CHARS = 5000


class ServerStartError(RuntimeError):
    """The server exited, or did not write its ready file in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for options that do not take 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    """A started ``stackserve serve``: its process, where it listens, where it logs."""

    process: subprocess.Popen[bytes]
    address: str  #: gRPC ``host:port`` of the gateway
    metrics_url: str  #: Prometheus ``http://host:port/metrics``
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)  #: the ready file as written (models, llm, ...)
    ray_grpc_address: str | None = None  #: Ray Serve's own gRPC proxy, when started with ``ray_grpc_port``
    lifeline_fd: int = -1  #: our end of the server's lifeline: the server stops when it closes

    def _cut_lifeline(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.lifeline_fd)
        self.lifeline_fd = -1

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log()[-chars:]

    def stop(self, timeout: float = 60.0, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` to the server, wait up to ``timeout`` s, else SIGKILL its process group.

        Returns the exit code: 0 for a clean shutdown, ``-signal.SIGKILL`` when it had to be killed
        (a negative code is the signal that ended it). The signal goes to the server process alone:
        the Ray processes it started are its to stop (a signal to each of them first would turn a
        clean shutdown into errors); any it leaves in its group are killed afterwards.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)
                self.process.wait()
        _kill_group(self.process.pid)
        self._cut_lifeline()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing (of ours) left in the group
        os.killpg(pgid, signal.SIGKILL)


def server_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment with ``env`` on top (a None value removes the variable).

    Ray's usage statistics are off unless ``env`` turns them on.
    """
    out = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def start_server(
    args: Sequence[str] = (),
    *,
    workdir: Path,
    env: Mapping[str, str | None] | None = None,
    name: str = "server",
    ray_grpc_port: int | None = None,
    ready_timeout: float = 300.0,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> RunningServer:
    """Start ``stackserve serve [args]`` and return once it has written its ready file.

    ``args`` go after ``serve`` and win over the defaults (``--port 0 --metrics-port 0``).
    ``workdir`` holds ``<name>.log`` (stdout + stderr) and ``<name>.ready.json``; ``env`` is laid
    over this process's environment (see ``server_env``). ``ray_grpc_port`` also starts Ray Serve's
    own gRPC proxy there (``--ray-grpc-port``). ``command`` is the program that takes ``serve``
    (default: this interpreter's ``-m server.cli``; an installed ``.../bin/stackserve`` runs the
    server as a wheel install does), ``cwd`` its working directory (default: this process's).
    Raises ``ServerStartError`` (the server killed, with the end of its log) when it exits first or
    is not ready within ``ready_timeout`` s.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{name}.ready.json"
    log_path = workdir / f"{name}.log"
    ready.unlink(missing_ok=True)
    program = list(command) if command is not None else [sys.executable, "-m", "server.cli"]
    cmd = [*program, "serve", "--port", "0", "--metrics-port", "0", "--openai-port", "0", "--ready-file", str(ready)]
    if ray_grpc_port is not None:
        cmd += ["--ray-grpc-port", str(ray_grpc_port)]
    cmd += list(args)
    watched, held = lifeline()
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd, env={**server_env(env), LIFELINE_ENV: str(watched)}, cwd=cwd, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(watched,),
            )  # fmt: skip
    except BaseException:
        os.close(held)
        raise
    finally:
        os.close(watched)
    deadline = time.monotonic() + ready_timeout
    while not ready.exists():
        if process.poll() is not None:
            _kill_group(process.pid)
            os.close(held)
            raise ServerStartError(_failure(f"server exited with {process.returncode}", log_path))
        if time.monotonic() > deadline:
            _kill_group(process.pid)
            process.wait()
            os.close(held)
            raise ServerStartError(_failure(f"server not ready within {ready_timeout:.0f}s", log_path))
        time.sleep(0.2)
    info = json.loads(ready.read_text())
    return RunningServer(
        process=process,
        address=info["grpc"],
        metrics_url=info["metrics"],
        log_path=log_path,
        info=info,
        ray_grpc_address=None if ray_grpc_port is None else f"127.0.0.1:{ray_grpc_port}",
        lifeline_fd=held,
    )


def _failure(what: str, log_path: Path) -> str:
    tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log_path.exists() else "(no log)"
    return f"{what}; log {log_path}:\n{tail}"
