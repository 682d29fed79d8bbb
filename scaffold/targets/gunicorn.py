"""gunicorn: a gunicorn.conf.py whose every name is a real gunicorn setting."""

from __future__ import annotations

from pathlib import PurePosixPath

from scaffold.spec import Spec
from scaffold.targets._base import RenderJob

NAME = "gunicorn"
UVICORN_WORKER = "uvicorn_worker.UvicornWorker"


def jobs(spec: Spec) -> list[RenderJob]:
    """The gunicorn config, when gunicorn is the app server."""
    if spec.app_server.kind != "gunicorn":
        return []
    return [RenderJob("gunicorn/gunicorn.conf.py.j2", PurePosixPath("gunicorn", "gunicorn.conf.py"),
                      {"settings": settings(spec), "workers": spec.app_server.workers})]


def settings(spec: Spec) -> dict[str, object]:
    """The gunicorn settings, by their gunicorn names, in the order they are written."""
    a = spec.app_server
    return {
        "wsgi_app": f"{spec.django.project}.{a.interface}:application",
        "bind": [a.bind],
        "worker_class": worker_class(spec),
        "threads": a.threads,
        "timeout": a.timeout,
        "graceful_timeout": a.graceful_timeout,
        "keepalive": a.keepalive,
        "max_requests": a.max_requests,
        "max_requests_jitter": a.max_requests // 10,
        "worker_tmp_dir": "/dev/shm",
        "umask": 0o007,
        "forwarded_allow_ips": ",".join(a.trusted_proxies or []),
        "secure_scheme_headers": {"X-FORWARDED-PROTO": "https"},
        "proc_name": spec.name,
        "accesslog": "-",
        "errorlog": "-",
        "chdir": spec.django.root,
        "raw_env": [f"DJANGO_SETTINGS_MODULE={spec.django.settings_module}"],
    }


def worker_class(spec: Spec) -> str:
    """sync, gthread when threads > 1, the uvicorn worker for ASGI."""
    if spec.app_server.interface == "asgi":
        return UVICORN_WORKER
    return "gthread" if spec.app_server.threads > 1 else "sync"
