"""uvicorn: a launcher that serves the Django ASGI app on a socket the process manager owns.

uvicorn has no config file. djdeploy renders a small Python launcher instead of
an environment file of ``UVICORN_*`` variables because:

* the settings are keyword arguments of ``uvicorn.Config``: a misspelt one stops
  the start with a TypeError, where an unknown ``UVICORN_*`` variable is ignored;
* supervisor has no EnvironmentFile; one launcher serves supervisor and systemd alike,
  with no settings on a ``command=``/``ExecStart=`` line to quote for two syntaxes;
* it finds the inherited socket itself (fd 0 from supervisor, fd 3 from systemd)
  and refuses to start, with a message, when there is none.

Process model: ``process_count(spec)`` copies of ``command(spec)``, one uvicorn
process each, all accepting on one listening socket that the process manager
creates and keeps (supervisor ``[fcgi-program]`` passes it as fd 0, systemd
socket activation as fd 3; the launcher tells them apart by ``LISTEN_PID``).
uvicorn's own ``--workers`` supervisor is not used: when it is SIGKILLed its
spawned workers live on, holding the port and serving old code. With one
process per worker the process manager sees and restarts every one, and while
one restarts the socket stays open, so connections wait in its backlog.

The socket is created by the process manager with owner ``django.user``, group
``app_server.socket_group``, mode ``appserver.SOCKET_MODE`` (0660) — never by
uvicorn, which would make it 0666 (Kludex/uvicorn#2731).

Under pm2, which cannot hand a socket over, the launcher binds ``app_server.bind``
itself and runs uvicorn's own supervisor (``workers``: N processes sharing that one
listener). That supervisor replaces each worker that dies, and on SIGHUP starts a
new worker, waits until it serves, then stops an old one, one at a time: the
listener never closes, so a reload loses no request. The objection above to
uvicorn's ``--workers`` (workers outliving a SIGKILLed master) is answered by the
launcher itself: each worker asks the kernel for SIGTERM when its parent dies
(prctl PR_SET_PDEATHSIG), so a killed master takes its workers with it and pm2
starts a fresh set. uvicorn makes a unix socket 0666: the run directory (0750,
group ``app_server.socket_group``) is what keeps everyone but nginx out, as for
gunicorn's socket.

Processes are not recycled after a number of requests (``limit_max_requests``):
under load every process reaches the limit within seconds of the others, and
supervisor counts exits that come sooner than ``startsecs`` as failed starts,
gives up, and closes the shared socket. A spec rule refuses
``app_server.max_requests`` with uvicorn; gunicorn with the uvicorn worker class
recycles workers under its master instead. A clean exit is still restarted
(supervisor ``autorestart=true``, systemd ``Restart=always``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from scaffold import grammar
from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets.appserver import graceful_timeout, stop_timeout  # noqa: F401 - part of the contract
from scaffold.targets._base import RenderJob

NAME = "uvicorn"
LAUNCHER_NAME = "uvicorn_launcher.py"
SUPERVISOR_FD = 0  # supervisor docs, [fcgi-program]: "the socket ... as file descriptor 0"
SYSTEMD_FD = 3  # sd_listen_fds(3): SD_LISTEN_FDS_START


def jobs(spec: Spec) -> list[RenderJob]:
    """The uvicorn launcher, when uvicorn is the app server."""
    if spec.app_server.kind != "uvicorn":
        return []
    context = {"name": spec.name, "app": app(spec), "app_dir": spec.django.root, "settings": settings(spec),
               "command": " ".join(command(spec)), "supervisor_fd": SUPERVISOR_FD, "systemd_fd": SYSTEMD_FD,
               "own_listener": own_listener(spec)}
    return [RenderJob("uvicorn/uvicorn_launcher.py.j2", PurePosixPath("uvicorn", LAUNCHER_NAME), context)]


def launcher_path(spec: Spec) -> str:
    """Where the rendered launcher is installed on the host."""
    return f"{appserver.config_dir(spec)}/{LAUNCHER_NAME}"


config_path = launcher_path


def command(spec: Spec) -> list[str]:
    """The argv of one web process: the venv's python running the launcher (no exec bit needed)."""
    return [f"{spec.django.venv}/bin/python", launcher_path(spec)]


def environment(spec: Spec) -> dict[str, str]:
    """Non-secret environment of the web program."""
    return appserver.environment(spec)


def stop_signal(spec: Spec) -> str:
    """TERM: uvicorn stops accepting and waits up to graceful_timeout for open requests."""
    return "TERM"


def reload_signal(spec: Spec) -> str | None:
    """HUP to uvicorn's own supervisor (pm2); else None: a single uvicorn process has no reload
    signal, so the process manager restarts the processes one at a time instead."""
    return None if uses_inherited_socket(spec) else "HUP"


def uses_inherited_socket(spec: Spec) -> bool:
    """Whether the process manager creates the listening socket and passes it in (not under pm2)."""
    return appserver.manager_passes_socket(spec)


def process_count(spec: Spec) -> int:
    """How many launcher processes to run: one per worker, or one (uvicorn's supervisor) under pm2."""
    workers = spec.app_server.workers
    if not isinstance(workers, int):
        raise ValueError('uvicorn needs a number of workers; spec validation rejects "auto"')
    return workers if uses_inherited_socket(spec) else 1


def own_listener(spec: Spec) -> dict[str, object] | None:
    """Where the launcher binds and how many workers serve there, when no socket is passed in."""
    if uses_inherited_socket(spec):
        return None
    path = appserver.socket_path(spec)
    if path:
        return {"uds": path, "workers": spec.app_server.workers}
    host, port = grammar.split_address(spec.app_server.bind or "")
    return {"host": host.strip("[]"), "port": port, "workers": spec.app_server.workers}


def listen_address(spec: Spec) -> str:
    """The socket the process manager creates: unix:/PATH or HOST:PORT."""
    return spec.app_server.bind or ""


def app(spec: Spec) -> str:
    """The ASGI callable, as uvicorn imports it."""
    return f"{spec.django.project}.asgi:application"


def forwarded_allow_ips(spec: Spec) -> list[str]:
    """Peers whose X-Forwarded-Proto/-For are believed.

    Over a unix socket uvicorn sees no peer address and trusts nobody unless told
    '*' (Kludex/uvicorn#713, #931); the socket's mode makes nginx the only peer.
    Over TCP: nginx's addresses only.
    """
    if appserver.socket_path(spec):
        return ["*"]
    return list(spec.app_server.trusted_proxies or [])


# uvicorn's default ping interval (uvicorn.Config ws_ping_interval).
WS_PING_INTERVAL = 20.0


def ws_ping_interval(spec: Spec) -> float:
    """Seconds between WebSocket pings: uvicorn's 20, or less so that a quiet WebSocket stays open.

    nginx closes a proxied connection that sends nothing for proxy_read_timeout (app_server.timeout
    + 5 s, see nginx.PROXY_READ_MARGIN); a ping from the app resets that timer.
    """
    from scaffold.targets.nginx import PROXY_READ_MARGIN

    return min(WS_PING_INTERVAL, (spec.app_server.timeout + PROXY_READ_MARGIN) / 2)


def settings(spec: Spec) -> dict[str, object]:
    """Keyword arguments of uvicorn.Config, by their uvicorn names."""
    a = spec.app_server
    return {
        "proxy_headers": True,
        "forwarded_allow_ips": forwarded_allow_ips(spec),
        "timeout_keep_alive": a.keepalive,
        "ws_ping_interval": ws_ping_interval(spec),
        "timeout_graceful_shutdown": a.graceful_timeout,
        "limit_concurrency": a.limit_concurrency,
        # Django's ASGI handler rejects the lifespan protocol.
        "lifespan": "off",
        "access_log": True,
        "log_level": "info",
    }
