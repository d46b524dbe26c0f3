"""The Ray cluster this server uses: join the configured one or one already running here, or start
a private head it owns (with token authentication), and let go of it on exit. ``RayAttachment``
records what this process may tear down."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from server.config import Settings
from server.ray_head import PrivateRayHead

log = logging.getLogger("stackserve.ray_cluster")


@dataclass(slots=True)
class RayAttachment:
    """What this process may tear down on exit.

    ``owns_cluster``: Ray was started here (a local instance), so shutting it down harms no one.
    ``owned_apps``: Serve applications this process deployed; on a cluster it joined, only those
    are deleted, never what someone else deployed (``serve deploy``) and never Serve itself.
    """

    owns_cluster: bool
    owned_apps: list[str] = field(default_factory=list)
    head: PrivateRayHead | None = None  # the Ray head this process started, stopped last


def connect_ray(settings: Settings) -> RayAttachment:
    """Join the configured cluster (``ray.address`` / ``RAY_ADDRESS``), or one already running on
    this machine (``ray start --head``), or else start a local instance that this process owns."""
    import ray

    address = settings.ray.address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return RayAttachment(owns_cluster=False)
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
        log.info("joined the Ray cluster at %s", address)
        return RayAttachment(owns_cluster=False)
    recorded = _recorded_cluster()
    if recorded:
        ray.init(address=recorded, **kwargs)
        log.warning("joined the Ray cluster already running on this machine (%s); its applications are served "
                    "as deployed and left running on exit", recorded)
        return RayAttachment(owns_cluster=False)
    _private_ray_token(settings)
    for attempt in (1, 2):
        head = PrivateRayHead(settings.ray.num_cpus)  # its own session: server/ray_head.py says why
        try:
            ray.init(address=head.start(), **kwargs)
            break
        except Exception as exc:
            # Seen on a loaded 2-core machine: the node did not come up in time. A second start
            # has worked; a second failure is real.
            head.stop()
            if attempt == 2:
                raise
            log.warning("Ray failed to start (%s); retrying once", exc)
            ray.shutdown()
    _warn_if_unauthenticated()
    return RayAttachment(owns_cluster=True, head=head)


def _private_ray_token(settings: Settings) -> None:
    """Token authentication for the private head, with a token of this deployment's own
    (``data_dir/ray_auth_token``, mode 0600): ``ray start`` turns it on only when a token exists, and
    ~/.ray/auth_token may be another cluster's. An explicit RAY_AUTH_MODE / token is respected."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        path = settings.data_dir / "ray_auth_token"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    try:  # Ray reads its config once per process: make this process (the driver) see token mode too
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
        from ray._raylet import AuthenticationTokenLoader

        _enable_token_auth()
        AuthenticationTokenLoader.instance().reset_cache()
    except ImportError:
        log.warning("this Ray has no token authentication; the private head runs without it")


def _warn_if_unauthenticated() -> None:
    """Say so loudly when the embedded Ray runs without token authentication (RAY_AUTH_MODE=disabled):
    anyone who can reach its ports can then run code in this process's cluster."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:  # a Ray without token authentication
        return
    if not is_token_auth_enabled():
        log.warning("the embedded Ray runs WITHOUT token authentication (RAY_AUTH_MODE=%s): its GCS and raylet "
                    "ports accept any local or remote caller; unset RAY_AUTH_MODE or set it to token",
                    os.environ.get("RAY_AUTH_MODE", ""))


def _recorded_cluster() -> str | None:
    """The head that `ray start` last recorded on this machine, which a plain ``ray.init()`` would
    join; ``None`` when there is none, so we start (and own) a local instance."""
    try:
        from ray._private.services import find_bootstrap_address
    except ImportError:  # private helper moved: never assume we own a cluster we cannot rule out
        return "auto"
    return find_bootstrap_address(None)


# Replica logs as JSON lines (Ray Serve's encoding), like the gateway's own; per-call access logs off:
# the gateway writes one structured line per request already.


def disconnect_ray(attachment: RayAttachment) -> None:
    """For a driver that deployed nothing (a batch job): disconnect, and stop a head it started."""
    import ray

    ray.shutdown()
    if attachment.head is not None:
        attachment.head.stop()
