"""gunicorn: a gunicorn.conf.py whose every name is a real gunicorn setting.

On the host the file lives at ``/etc/<name>/gunicorn.conf.py`` (``config_path``)
and the process manager runs ``command(spec)`` in ``django.root``. gunicorn
binds its own listener (``app_server.bind``); under systemd socket activation
it takes the inherited socket instead (it reads ``LISTEN_FDS`` itself), so
``uses_inherited_socket`` is False: a ``.socket`` unit is optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets.appserver import graceful_timeout, stop_timeout  # noqa: F401 - part of the contract
from scaffold.targets._base import RenderJob

NAME = "gunicorn"
CONFIG_NAME = "gunicorn.conf.py"
# The uvicorn-worker package; uvicorn.workers is deprecated (uvicorn 0.54 DeprecationWarning).
UVICORN_WORKER = "uvicorn_worker.UvicornWorker"
# Applied only while gunicorn creates its unix socket and heartbeat files (gunicorn/sock.py,
# workers/workertmp.py). gunicorn then chowns the socket to its own user and group, so no socket
# mode can admit nginx's group without admitting everyone: the socket stays 0777 and the run
# directory (0750, group nginx's; see appserver.RUN_DIR_MODE) is the gate. Heartbeat files are 0600.
UMASK = 0o000
# Only the header nginx overwrites on every request; gunicorn's default also trusts
# X-Forwarded-Protocol and X-Forwarded-Ssl, which nginx passes through (benoitc/gunicorn#2350).
SCHEME_HEADERS = {"X-FORWARDED-PROTO": "https"}
# Client address first (the socket peer is nginx, or empty over a unix socket), then
# gunicorn's default fields and the request time in milliseconds.
ACCESS_LOG_FORMAT = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


class Octal(int):
    """An int written as an octal literal (0o007), as file modes are read."""

    def __repr__(self) -> str:
        return f"0o{int(self):03o}"


@dataclass(frozen=True)
class Setting:
    """One line of gunicorn.conf.py: a gunicorn setting name, its value and why it has it."""

    name: str
    value: object
    why: str


def jobs(spec: Spec) -> list[RenderJob]:
    """The gunicorn config, when gunicorn is the app server."""
    if spec.app_server.kind != "gunicorn":
        return []
    context = {"settings": settings(spec), "auto_workers": spec.app_server.workers == "auto",
               "name": spec.name, "config_path": config_path(spec)}
    return [RenderJob("gunicorn/gunicorn.conf.py.j2", PurePosixPath("gunicorn", CONFIG_NAME), context)]


def config_path(spec: Spec) -> str:
    """Where the rendered gunicorn.conf.py is installed on the host."""
    return f"{appserver.config_dir(spec)}/{CONFIG_NAME}"


def command(spec: Spec) -> list[str]:
    """The argv that starts the web app (gunicorn's master, in the foreground)."""
    return [f"{spec.django.venv}/bin/gunicorn", "-c", config_path(spec)]


def environment(spec: Spec) -> dict[str, str]:
    """Non-secret environment of the web program."""
    return appserver.environment(spec)


def stop_signal(spec: Spec) -> str:
    """TERM: the master stops accepting and gives workers graceful_timeout to finish (QUIT/INT would not)."""
    return "TERM"


def reload_signal(spec: Spec) -> str | None:
    """HUP: new config and code in fresh workers, old ones finish their requests (no preload_app)."""
    return "HUP"




def uses_inherited_socket(spec: Spec) -> bool:
    """False: gunicorn binds app_server.bind itself (or takes systemd's LISTEN_FDS if given)."""
    return False


def process_count(spec: Spec) -> int:
    """One master per host; it forks the workers itself."""
    return 1


def listen_address(spec: Spec) -> str:
    """Where the app listens: unix:/PATH or HOST:PORT (nginx's upstream address on this host)."""
    return spec.app_server.bind or ""


def settings(spec: Spec) -> list[Setting]:
    """The gunicorn settings, by their gunicorn names, in the order they are written."""
    return [*_app(spec), *_listener(spec), *_workers(spec), *_proxy(spec), *_logging(spec), *_process(spec)]


def worker_class(spec: Spec) -> str:
    """sync, gthread when threads > 1, the uvicorn worker for ASGI."""
    if spec.app_server.interface == "asgi":
        return UVICORN_WORKER
    return "gthread" if spec.app_server.threads > 1 else "sync"


def forwarded_allow_ips(spec: Spec) -> str:
    """Peers whose X-Forwarded-* headers are believed: nginx's addresses, never '*' on TCP.

    The uvicorn worker sees no peer address on a unix socket and trusts nobody there
    unless told '*' (Kludex/uvicorn#931); the socket's permissions then restrict the
    peers to nginx. gunicorn's own workers trust unix peers unconditionally.
    """
    a = spec.app_server
    if worker_class(spec) == UVICORN_WORKER and appserver.socket_path(spec):
        return "*"
    return ",".join(a.trusted_proxies or [])


def worker_tmp_dir(spec: Spec) -> str:
    """A tmpfs for the worker heartbeat files: the run directory when it is under /run, else /dev/shm.

    A disk-backed tmp can stall the heartbeat and get workers killed (gunicorn FAQ, #1863).
    """
    run_dir = spec.paths.run_dir or ""
    return run_dir if run_dir.startswith("/run/") else "/dev/shm"


def _app(spec: Spec) -> list[Setting]:
    d, a = spec.django, spec.app_server
    env = [f"{k}={v}" for k, v in sorted(environment(spec).items())]
    return [
        Setting("wsgi_app", f"{d.project}.{a.interface}:application", f"the {a.interface.upper()} callable"),
        Setting("chdir", d.root, "the project directory; gunicorn also puts it on sys.path"),
        Setting("raw_env", env, "the same environment the process manager sets, so -c alone is enough"),
    ]


def _listener(spec: Spec) -> list[Setting]:
    if not appserver.socket_path(spec):
        return [Setting("bind", [spec.app_server.bind], "TCP; the host firewall admits only the trusted proxies")]
    return [
        Setting("bind", [spec.app_server.bind], "unix socket in the run directory, which only nginx's group may enter"),
        Setting("umask", Octal(UMASK), "socket 0777: gunicorn chowns it to the app's group, so the run directory "
                "(group nginx's, no access for others) decides who reaches it"),
    ]


def _workers(spec: Spec) -> list[Setting]:
    a, wclass = spec.app_server, worker_class(spec)
    found = [] if a.workers == "auto" else [Setting("workers", a.workers, "fixed by the spec")]
    found.append(Setting("worker_class", wclass, "sync; gthread when threads > 1; the uvicorn worker for ASGI"))
    if wclass == "gthread":
        found += [Setting("threads", a.threads, "threads per gthread worker"),
                  Setting("worker_connections", a.limit_concurrency, "connections one gthread worker holds")]
    return found + [
        Setting("timeout", a.timeout, timeout_reason(spec)),
        Setting("graceful_timeout", a.graceful_timeout, "seconds workers get to finish requests on TERM or HUP"),
        Setting("keepalive", a.keepalive, "idle seconds of a kept-alive nginx connection (the sync worker has none)"),
        Setting("max_requests", a.max_requests, "recycle a worker after this many requests (0 = never)"),
        Setting("max_requests_jitter", a.max_requests // 10, "so workers do not all restart at once"),
        Setting("worker_tmp_dir", worker_tmp_dir(spec), "heartbeat files on tmpfs, never on a disk"),
    ]


def bounds_requests(spec: Spec) -> bool:
    """Whether gunicorn's timeout bounds a request: only for the sync worker.

    The arbiter kills a worker whose heartbeat is older than timeout. A sync worker beats between
    requests only, so a request that runs longer gets its worker killed. gthread and the uvicorn
    worker beat from their main loop while other threads or tasks serve requests, so a slow request
    never stops the beat (docs.gunicorn.org, settings: timeout).
    """
    return worker_class(spec) == "sync"


def timeout_reason(spec: Spec) -> str:
    """The timeout setting's comment, true for this worker class."""
    if bounds_requests(spec):
        return "a worker busy with one request this long is killed and replaced: this bounds every request"
    return ("a worker whose main loop is stuck this long is killed; a slow request does not stop that "
            "loop, so nginx's proxy_read_timeout is what bounds a request (see the README)")


def _proxy(spec: Spec) -> list[Setting]:
    return [
        Setting("forwarded_allow_ips", forwarded_allow_ips(spec), "X-Forwarded-* is believed from nginx only"),
        Setting("secure_scheme_headers", SCHEME_HEADERS, "nginx overwrites X-Forwarded-Proto; nothing else"),
    ]


def _logging(spec: Spec) -> list[Setting]:
    return [
        Setting("accesslog", "-", "stdout: the process manager collects it"),
        Setting("errorlog", "-", "stderr: the process manager collects it"),
        Setting("access_log_format", ACCESS_LOG_FORMAT, "client address as nginx forwarded it"),
    ]


def _process(spec: Spec) -> list[Setting]:
    # No daemon, pidfile, user or group: the process manager runs gunicorn in the foreground,
    # tracks its pid and starts it as django.user.
    return [
        Setting("proc_name", spec.name, "the name ps and top show"),
        Setting("control_socket", f"{spec.paths.run_dir}/gunicorn.ctl",
                "gunicornc's socket (gunicorn >= 25.1), mode 0600; $HOME may not be writable"),
    ]
