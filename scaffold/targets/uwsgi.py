"""uWSGI: an ini file with only options uWSGI knows, a master that forks the workers, a socket from
the process manager, and nginx speaking the uwsgi protocol to it.

The file lives at ``/etc/<name>/uwsgi.ini`` (``config_path``); the process manager runs
``command(spec)`` in ``django.root``. ``strict = true`` makes uWSGI refuse to start on an option it
does not know (it would otherwise take it as a placeholder and say nothing).

The listening socket belongs to the process manager, as for uvicorn (``uses_inherited_socket``):
supervisor's ``[fcgi-program]`` hands it over as fd 0, systemd socket activation in ``LISTEN_FDS``,
and uWSGI adopts either by itself when its config names no socket. A reload (HUP) or a restart
keeps it open, so connections wait in its backlog; a config started without one refuses to start.

Signals (uWSGI 2.0, core/master.c): HUP reloads gracefully (workers finish their requests, then
the master execs itself again, keeping the socket); TERM would be a "brutal reload", so a
master-start hook makes it the graceful shutdown (``gracefully_kill_them_all``), and an accepting
hook makes a worker that gets TERM itself (supervisor signals the whole process group) finish its
request first instead of exiting at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets.appserver import graceful_timeout, stop_timeout  # noqa: F401 - part of the contract
from scaffold.targets._base import SEMICOLON, RenderJob

NAME = "uwsgi"
CONFIG_NAME = "uwsgi.ini"
# The uwsgi packet's header is at most 64 KiB (its size field has 16 bits); uWSGI's 4 KiB default
# refuses requests whose headers nginx accepts (large_client_header_buffers 4 8k) with "invalid
# request block size". 32 KiB holds nginx's largest header set.
BUFFER_SIZE = 32768
# SIGTERM is 15 on Linux; the functions are uWSGI's own (core/uwsgi.c), found by the unix_signal hook.
MASTER_TERM_HOOK = "unix_signal:15 gracefully_kill_them_all"
WORKER_TERM_HOOK = "unix_signal:15 gracefully_kill"
# "auto": uWSGI's placeholder arithmetic on %k, the CPUs it sees at start-up (2 x CPUs + 1).
AUTO_PROCESSES = "%(%k * 2 + 1)"
# Characters uWSGI's ini reader expands in a value: %-magic variables, $(ENV), @(file) includes.
_EXPANDED = ("%", "$(", "@(")


@dataclass(frozen=True)
class Option:
    """One line of uwsgi.ini: a uWSGI option, its value and why it has it."""

    name: str
    value: str
    why: str = ""


def jobs(spec: Spec) -> list[RenderJob]:
    """The uWSGI ini, when uWSGI is the app server."""
    if spec.app_server.kind != NAME:
        return []
    context = {"options": options(spec), "name": spec.name, "command": " ".join(command(spec))}
    return [RenderJob("uwsgi/uwsgi.ini.j2", PurePosixPath(NAME, CONFIG_NAME), context, comment=SEMICOLON)]


def config_path(spec: Spec) -> str:
    """Where the rendered uwsgi.ini is installed on the host."""
    return f"{appserver.config_dir(spec)}/{CONFIG_NAME}"


def command(spec: Spec) -> list[str]:
    """The argv that starts the web app: uWSGI's master, in the foreground."""
    return [f"{spec.django.venv}/bin/uwsgi", "--ini", config_path(spec)]


def environment(spec: Spec) -> dict[str, str]:
    """Non-secret environment of the web program."""
    return appserver.environment(spec)


def stop_signal(spec: Spec) -> str:
    """TERM: with the master-start hook, workers finish their requests, then everything exits."""
    return "TERM"


def reload_signal(spec: Spec) -> str | None:
    """HUP: workers finish their requests, the master execs itself with the new code, socket kept."""
    return "HUP"


def uses_inherited_socket(spec: Spec) -> bool:
    """True: the process manager creates the socket at listen_address; uWSGI adopts it."""
    return True


def process_count(spec: Spec) -> int:
    """One master per host; it forks the workers itself."""
    return 1


def listen_address(spec: Spec) -> str:
    """The socket the process manager creates: unix:/PATH or HOST:PORT."""
    return spec.app_server.bind or ""


def options(spec: Spec) -> list[Option]:
    """The uWSGI options, in the order they are written; every value checked for uWSGI's expansions."""
    found = [*_base(spec), *_app(spec), *_workers(spec), *_lifecycle(spec), *_logging(spec)]
    for option in found:
        if option.value != AUTO_PROCESSES and any(mark in option.value for mark in _EXPANDED):
            raise ValueError(f"{option.value!r}: uWSGI would expand it ({option.name})")
    return found


def _base(spec: Spec) -> list[Option]:
    return [
        Option("strict", "true", "an option uWSGI does not know stops the start"),
        Option("master", "true", "a master forks, watches and reloads the workers"),
        Option("need-app", "true", "exit when the app cannot be imported, instead of serving errors"),
        Option("no-orphans", "true", "workers exit when their master dies, so none outlives a SIGKILL"),
    ]


def _app(spec: Spec) -> list[Option]:
    d = spec.django
    found = [Option("chdir", d.root or "", "the project directory"),
             Option("virtualenv", d.venv or "", "the venv whose packages the app imports"),
             Option("module", f"{d.project}.wsgi:application", "the WSGI callable"),
             Option("single-interpreter", "true", "one Python interpreter per worker, as Django expects")]
    env = sorted(environment(spec).items())
    found += [Option("env", f"{key}={value}", "the environment the process manager sets, for --ini alone"
                     if i == 0 else "") for i, (key, value) in enumerate(env)]
    return found


def _workers(spec: Spec) -> list[Option]:
    a = spec.app_server
    processes = AUTO_PROCESSES if a.workers == "auto" else str(a.workers)
    found = [Option("processes", processes, "2 x CPUs + 1, counted at start-up" if a.workers == "auto"
                    else "fixed by the spec")]
    if a.threads > 1:
        found.append(Option("threads", str(a.threads), "threads per worker"))
    found += [
        Option("enable-threads", "true", "threads the app starts itself run (Python's GIL is released)"),
        Option("thunder-lock", "true", "one worker at a time in accept(), so a connection wakes one worker"),
        Option("buffer-size", str(BUFFER_SIZE), "room for every header nginx accepts"),
        Option("harakiri", str(a.timeout), "a worker busy this long with one request is killed and replaced: "
               "this bounds every request, before nginx's uwsgi_read_timeout"),
    ]
    if a.max_requests:
        found += [Option("max-requests", str(a.max_requests), "recycle a worker after this many requests"),
                  Option("max-requests-delta", str(max(1, a.max_requests // 20)),
                         "worker N waits N x this many more, so workers do not all restart at once")]
    return found


def _lifecycle(spec: Spec) -> list[Option]:
    grace = str(spec.app_server.graceful_timeout)
    return [
        Option("hook-master-start", MASTER_TERM_HOOK, "TERM (the process manager's stop) is a graceful "
               "shutdown, not uWSGI 2.0's brutal reload"),
        Option("hook-accepting", WORKER_TERM_HOOK, "a worker sent TERM finishes its request, then exits"),
        Option("worker-reload-mercy", grace, "seconds a worker gets to finish on reload (HUP) or stop"),
        Option("reload-mercy", grace, "the same bound for the whole reload or shutdown"),
    ]


def _logging(spec: Spec) -> list[Option]:
    # Logs go to stderr, which the process manager collects; no daemonize, pidfile, uid or gid.
    return [
        Option("auto-procname", "true", "names ps and top show"),
        Option("procname-prefix-spaced", spec.name),
    ]
