"""Run a command that dies with whoever started it, whatever way that one dies.

``python -m server.process_guard --watch-fd FD [--grace S] [--new-session] -- CMD...``

The starter keeps the write end of a pipe and hands the guard its read end (``FD``). The kernel
closes the write end when the starter exits, by SIGKILL or an out-of-memory kill included, and the
guard reads end-of-file: it then sends the command SIGTERM, waits ``--grace`` seconds, and SIGKILLs
what is left. Before this, the Ray head was tied to the server with ``PR_SET_PDEATHSIG`` set in a
``preexec_fn``: not safe in a threaded process, and the "parent" it watches is the *thread* that
forked (a thread-pool worker), not the server. A server started by ``server/launcher.py`` had no
tie at all: a benchmark killed by a timeout left its server and Ray head running.

While the starter lives, the guard passes SIGTERM/SIGINT on to the command and ends as the command
ended (the same exit code, or the same signal), so a supervisor that signals the guard sees what it
would have seen of the command. With ``--new-session`` the command leads a session of its own (a
signal to the starter's process group does not reach it) and everything left in that session's
group is killed when the command ends or the guard gives up on it.

A process of ours that must die with its starter (a server started by ``server/launcher.py``)
watches the pipe itself instead (``exit_with_starter``): on end-of-file it stops as if sent SIGTERM
(drains, stops its Ray head) and is killed outright if that takes longer than its grace.

Only the standard library: ``server/launcher.py`` (imported by benchmarks without the server) runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

#: seconds between checks that the command still runs (the pipe wakes the guard at once)
POLL_S = 0.5
#: the environment variable naming the read end a process started by ``server/launcher.py`` watches
LIFELINE_ENV = "STACKSERVE_LIFELINE_FD"


def lifeline() -> tuple[int, int]:
    """A (read end, write end) pipe: the starter keeps the write end open for as long as it lives
    (it is not inherited by its other children) and passes the read end to one child."""
    return os.pipe()


def exit_with_starter(grace_s: float) -> None:
    """If this process was given a lifeline (``LIFELINE_ENV``), a daemon thread waits for the
    starter's end: SIGTERM to this process (the server's own graceful stop), then SIGKILL after
    ``grace_s`` if it is still alive. The variable is removed so our own children do not inherit it."""
    fd = os.environ.pop(LIFELINE_ENV, None)
    if fd is None:
        return

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(int(fd), 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def guarded_command(cmd: Sequence[str], watch_fd: int, *, grace_s: float = 15.0, new_session: bool = False,
                    pid_file: Path | None = None) -> list[str]:
    """The argv that runs ``cmd`` under a guard watching ``watch_fd`` (pass it with ``pass_fds``)."""
    out = [sys.executable, "-m", "server.process_guard", "--watch-fd", str(watch_fd), "--grace", str(grace_s)]
    if new_session:
        out.append("--new-session")
    if pid_file is not None:
        out += ["--pid-file", str(pid_file)]
    return [*out, "--", *cmd]


def _kill(pid: int, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _starter_gone(fd: int) -> bool:
    """True once the pipe's write end is closed everywhere (the starter exited)."""
    try:
        ready, _, _ = select.select([fd], [], [], POLL_S)
    except InterruptedError:  # a forwarded signal: look again
        return False
    if not ready:
        return False
    try:
        return os.read(fd, 4096) == b""  # bytes are a ping, end-of-file is the starter's death
    except BlockingIOError:
        return False


def run(cmd: Sequence[str], watch_fd: int, grace_s: float, new_session: bool, pid_file: Path | None = None) -> int:
    """Runs ``cmd`` to its end; the return code as ``subprocess`` reports it (negative: a signal)."""
    child = subprocess.Popen(list(cmd), start_new_session=new_session)
    if pid_file is not None:  # the starter's handle on the command's session, should the guard be killed
        tmp = pid_file.with_suffix(".tmp")
        tmp.write_text(str(child.pid))
        tmp.replace(pid_file)

    def forward(signum: int, _frame: object) -> None:
        _kill(child.pid, signal.Signals(signum), group=False)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        while child.poll() is None:
            if not _starter_gone(watch_fd):
                continue
            _kill(child.pid, signal.SIGTERM, group=new_session)
            deadline = time.monotonic() + grace_s
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            _kill(child.pid, signal.SIGKILL, group=new_session)
            if not new_session:
                _kill(child.pid, signal.SIGKILL, group=False)
            child.wait()
    finally:
        if new_session:  # whatever the command left in its session's group
            _kill(child.pid, signal.SIGKILL, group=True)
    return child.returncode


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m server.process_guard", description=__doc__.split("\n")[0])
    parser.add_argument("--watch-fd", type=int, required=True, help="read end of the starter's pipe")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--new-session", action="store_true", help="the command leads its own session")
    parser.add_argument("--pid-file", type=Path, help="where to write the command's pid once started")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command after --")
    os.set_blocking(args.watch_fd, False)
    code = run(cmd, args.watch_fd, args.grace, args.new_session, args.pid_file)
    if code < 0:  # end as the command ended: by the same signal
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
