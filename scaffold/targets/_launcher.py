"""What the launcher-based ASGI targets (daphne, hypercorn) share with uvicorn's process model.

Each renders ``<kind>_launcher.py``: one server process on the listening socket the process
manager owns (supervisor ``[fcgi-program]`` fd 0, systemd socket activation fd 3), one process per
worker, as described in scaffold/targets/uvicorn.py. Neither server can be told which peers to
believe forwarded headers from (Daphne's --proxy-headers believes anyone; Hypercorn's
ProxyFixMiddleware counts hops), so the launcher wraps the Django app in a middleware that takes
the scheme and client address from X-Forwarded-Proto and X-Forwarded-For only when the peer is in
``app_server.trusted_proxies`` or is the unix socket, which only nginx's group can reach.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets._base import RenderJob

SUPERVISOR_FD = 0  # supervisor docs, [fcgi-program]: "the socket ... as file descriptor 0"
SYSTEMD_FD = 3  # sd_listen_fds(3): SD_LISTEN_FDS_START
# Servers' usual WebSocket ping interval (uvicorn's and Daphne's default).
WS_PING_INTERVAL = 20.0


def launcher_name(kind: str) -> str:
    """The launcher's file name for one kind."""
    return f"{kind}_launcher.py"


def launcher_path(spec: Spec) -> str:
    """Where the rendered launcher is installed on the host."""
    return f"{appserver.config_dir(spec)}/{launcher_name(spec.app_server.kind)}"


def command(spec: Spec) -> list[str]:
    """The argv of one web process: the venv's python running the launcher (no exec bit needed)."""
    return [f"{spec.django.venv}/bin/python", launcher_path(spec)]


def process_count(spec: Spec) -> int:
    """How many launcher processes to run: one per worker (a spec rule refuses "auto")."""
    workers = spec.app_server.workers
    if not isinstance(workers, int):
        raise ValueError(f'{spec.app_server.kind} needs a number of workers; spec validation rejects "auto"')
    return workers


def app(spec: Spec) -> str:
    """The ASGI callable, as module:name."""
    return f"{spec.django.project}.asgi:application"


def ws_ping_interval(spec: Spec) -> float:
    """Seconds between WebSocket pings, so that a quiet WebSocket outlives nginx's proxy_read_timeout."""
    from scaffold.targets.nginx import PROXY_READ_MARGIN

    return min(WS_PING_INTERVAL, (spec.app_server.timeout + PROXY_READ_MARGIN) / 2)


def launcher_job(spec: Spec, settings: dict[str, object], **extra: object) -> RenderJob:
    """The launcher of this spec's kind, with its server's settings."""
    kind = spec.app_server.kind
    context = {"name": spec.name, "app": app(spec), "app_dir": spec.django.root, "settings": settings,
               "command": " ".join(command(spec)), "supervisor_fd": SUPERVISOR_FD, "systemd_fd": SYSTEMD_FD,
               "trusted_proxies": list(spec.app_server.trusted_proxies or []), **extra}
    return RenderJob(f"{kind}/{launcher_name(kind)}.j2", PurePosixPath(kind, launcher_name(kind)), context)
