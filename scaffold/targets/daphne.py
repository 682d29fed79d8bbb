"""Daphne: a launcher that serves the Django ASGI app on a socket the process manager owns.

Process model and proxy headers as in scaffold/targets/_launcher.py. Daphne has no multi-worker
mode and no config file; the launcher builds ``daphne.server.Server`` from keyword arguments (an
unknown one is a TypeError) on an adopted-socket endpoint (``fd:fileno=N:domain=UNIX|INET``).

Daphne's own shutdown cancels every open request at once (``Server.kill_all_applications`` runs
before the reactor stops), so the launcher handles TERM itself: it closes the listening port,
waits up to graceful_timeout for open requests, then stops the reactor.
"""

from __future__ import annotations

from scaffold.spec import Spec
from scaffold.targets import _launcher, appserver
from scaffold.targets._base import RenderJob
from scaffold.targets.appserver import graceful_timeout, stop_timeout  # noqa: F401 - part of the contract

NAME = "daphne"
# Seconds Daphne waits for a WebSocket's pong before it closes the connection (its default).
PING_TIMEOUT = 30


def jobs(spec: Spec) -> list[RenderJob]:
    """The Daphne launcher, when Daphne is the app server."""
    if spec.app_server.kind != NAME:
        return []
    return [_launcher.launcher_job(spec, settings(spec), graceful_timeout=spec.app_server.graceful_timeout)]


def settings(spec: Spec) -> dict[str, object]:
    """Keyword arguments of daphne.server.Server, by their Daphne names."""
    return {
        # nginx's proxy_read_timeout bounds a request; Daphne's own limit would answer 503 first.
        "http_timeout": None,
        "ping_interval": _launcher.ws_ping_interval(spec),
        "ping_timeout": PING_TIMEOUT,
        # The app gets this long to finish after its client went away; then it is cancelled.
        "application_close_timeout": spec.app_server.graceful_timeout,
    }


config_path = _launcher.launcher_path
command = _launcher.command
process_count = _launcher.process_count


def environment(spec: Spec) -> dict[str, str]:
    """Non-secret environment of the web program."""
    return appserver.environment(spec)


def stop_signal(spec: Spec) -> str:
    """TERM: the launcher stops accepting and lets open requests finish."""
    return "TERM"


def reload_signal(spec: Spec) -> str | None:
    """None: one Daphne process has no reload; restart the processes one after another."""
    return None


def uses_inherited_socket(spec: Spec) -> bool:
    """True: the process manager creates the listening socket at listen_address and passes it in."""
    return True


def listen_address(spec: Spec) -> str:
    """The socket the process manager creates: unix:/PATH or HOST:PORT."""
    return spec.app_server.bind or ""
