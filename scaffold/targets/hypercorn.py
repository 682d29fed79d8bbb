"""Hypercorn: a launcher that serves the Django ASGI app on a socket the process manager owns.

Process model and proxy headers as in scaffold/targets/_launcher.py: Hypercorn's own worker
processes are not used (``workers`` = 0 runs the server in the launcher's process), for the reason
uvicorn's are not. The launcher builds ``hypercorn.config.Config`` from the settings below and
refuses a name Config does not define (Hypercorn would take it silently), then runs
``hypercorn.asyncio.serve``, which on TERM stops accepting and gives open requests
``graceful_timeout``.
"""

from __future__ import annotations

from scaffold.spec import Spec
from scaffold.targets import _launcher, appserver
from scaffold.targets._base import RenderJob
from scaffold.targets.appserver import graceful_timeout, stop_timeout  # noqa: F401 - part of the contract

NAME = "hypercorn"
# Hypercorn calls listen() again on the adopted socket with its backlog (default 100); Linux's
# SOMAXCONN keeps the queue the process manager made.
BACKLOG = 4096


def jobs(spec: Spec) -> list[RenderJob]:
    """The Hypercorn launcher, when Hypercorn is the app server."""
    if spec.app_server.kind != NAME:
        return []
    return [_launcher.launcher_job(spec, settings(spec))]


def settings(spec: Spec) -> dict[str, object]:
    """Attributes of hypercorn.config.Config, by their Hypercorn names."""
    a = spec.app_server
    return {
        "workers": 0,
        "backlog": BACKLOG,
        "keep_alive_timeout": a.keepalive,
        "graceful_timeout": a.graceful_timeout,
        "websocket_ping_interval": _launcher.ws_ping_interval(spec),
        # Client address as nginx forwarded it (the peer is nginx), request with its query string.
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": '%({x-forwarded-for}i)s %(l)s %(t)s "%(R)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)ss',
        "include_server_header": False,
    }


config_path = _launcher.launcher_path
command = _launcher.command
process_count = _launcher.process_count


def environment(spec: Spec) -> dict[str, str]:
    """Non-secret environment of the web program."""
    return appserver.environment(spec)


def stop_signal(spec: Spec) -> str:
    """TERM: Hypercorn stops accepting and waits up to graceful_timeout for open requests."""
    return "TERM"


def reload_signal(spec: Spec) -> str | None:
    """None: one Hypercorn process has no reload; restart the processes one after another."""
    return None


def uses_inherited_socket(spec: Spec) -> bool:
    """True: the process manager creates the listening socket at listen_address and passes it in."""
    return True


def listen_address(spec: Spec) -> str:
    """The socket the process manager creates: unix:/PATH or HOST:PORT."""
    return spec.app_server.bind or ""
