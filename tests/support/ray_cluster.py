"""A Ray cluster the server did not start: ``ray start --head`` plus a worker node, as an operator runs it.

One such cluster serves every test that attaches to an external cluster (``test_ray_cluster_attach.py``,
``test_two_node_cluster.py``): starting a head, a worker and Serve's controller costs tens of seconds on
2 cores, so it is paid once per session. Each test deploys the application config it needs itself
(``serve deploy`` is idempotent), so no test depends on another's state or on their order.

Nothing machine-global is touched: ``RAY_TMPDIR`` points every process of the cluster (and the
gateways and ``serve deploy`` calls the tests run against it) at a private directory, so the
cluster records itself there, not in ``/tmp/ray/ray_current_cluster``, and nothing has to be
restored or ``pkill``-ed afterwards: each node runs ``ray start --block`` in a session of its own,
and stopping a node kills that session's process group and the node's process tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from server.launcher import free_port
from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
ANOMALY_CONFIG = ROOT / "deployments" / "configs" / "anomaly.yaml"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop_node(proc: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    """SIGTERM to the node's session (``ray start --block`` stops its processes), then SIGKILL to what is
    left of it: its process group, and every process it started (collected first: a Ray process that
    moved to a session of its own is still a descendant). Nothing is looked up by name."""
    if proc is None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)  # measured: `ray start --block` can take > 30 s to exit on SIGTERM
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    psutil.wait_procs(descendants, timeout=10)


@dataclass
class ExternalCluster:
    """A head node (1 CPU) and a worker node (2 CPUs) with token authentication, on 127.0.0.1 ports."""

    tmp: Path
    env: dict[str, str]
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    head: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def token(self) -> str:
        return Path(self.env["RAY_AUTH_TOKEN_PATH"]).read_text()

    @classmethod
    def create(cls, tmp: Path, data_dir: Path) -> ExternalCluster:
        ray_tmp = Path(tempfile.mkdtemp(prefix="sst-ray-", dir="/tmp"))  # short: Ray's socket paths
        token = tmp / "auth_token"
        token.write_text(secrets.token_hex(32))
        env = {**os.environ, "STACKSERVE_DATA_DIR": str(data_dir), "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
               "STACKSERVE__LLM__ENABLED": "false", "STACKSERVE__RAG__ENABLED": "false"}
        env.pop("TRITON_INTERPRET", None)
        env.pop("RAY_ADDRESS", None)
        return cls(tmp=tmp, env=env)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "w") as out:
            return subprocess.Popen([str(BIN / "ray"), "start", *args, "--disable-usage-stats", "--block"],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

    def log_tail(self, name: str = "head", chars: int = 4000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _alive(self, proc: subprocess.Popen | None, name: str) -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"ray {name} exited with {proc.returncode}:\n{self.log_tail(name)}")
        return True

    def start_head(self) -> None:
        self.head = self._start("head", ["--head", f"--port={self.gcs_port}", "--num-cpus=1",
                                         "--include-dashboard=true", f"--dashboard-port={self.dashboard_port}",
                                         "--dashboard-host=127.0.0.1", f"--ray-client-server-port={free_port()}"])
        wait_until(lambda: self._alive(self.head, "head") and port_open(self.gcs_port)
                   and port_open(self.dashboard_port), 120, "ray head up", interval=0.25)

    def ensure_worker(self) -> subprocess.Popen:
        """The worker node (2 CPUs), started again if a test killed it."""
        if self.worker is None or self.worker.poll() is not None:
            self.worker = self._start("worker", [f"--address={self.address}", "--num-cpus=2"])
        return self.worker

    def applications(self) -> dict:
        request = urllib.request.Request(f"{self.dashboard}/api/serve/applications/",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return json.load(r).get("applications", {})
        except OSError:
            return {}

    def deploy(self, config: Path, timeout: float = 240) -> None:
        """``serve deploy config`` (retried while the dashboard's Serve agent starts), then wait until the
        ``anomaly`` application is RUNNING with that config."""
        cmd = [str(BIN / "serve"), "deploy", str(config), "--address", self.dashboard]
        attempts = self.tmp / "deploy.log"

        def deployed() -> bool:
            self._alive(self.head, "head")
            done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
            with open(attempts, "a") as out:
                out.write(f"--- exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}\n")
            return done.returncode == 0

        wait_until(deployed, timeout, f"serve deploy {config.name} accepted", interval=1.0)
        wait_until(lambda: self._alive(self.head, "head")
                   and self.applications().get("anomaly", {}).get("status") == "RUNNING",
                   180, "anomaly app RUNNING", interval=0.5)

    def stop(self) -> None:
        for proc in (self.worker, self.head):
            _stop_node(proc)
        shutil.rmtree(self.env["RAY_TMPDIR"], ignore_errors=True)
