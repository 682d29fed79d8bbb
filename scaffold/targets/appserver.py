"""What process managers need to know about the app server, whichever kind the spec chose.

The app-server target modules (gunicorn, uwsgi, uvicorn, daphne, hypercorn) each
provide the same public functions (``config_path``, ``command``, ``environment``,
``stop_signal``, ``graceful_timeout``, ``stop_timeout``, ``reload_signal``,
``uses_inherited_socket``, ``process_count``, ``listen_address``);
:func:`module_for` picks the one the spec uses, so a process-manager target never
branches on the kind itself.

Host layout shared by every target (the runbook copies ``<out>/<kind>/`` here):

* ``/etc/<name>/`` holds the rendered app-server file (``config_dir``).
* ``paths.run_dir`` is created by the process manager before the app starts,
  owned by ``django.user``, group ``app_server.socket_group`` (nginx's group),
  mode ``RUN_DIR_MODE`` (0750). The app's unix socket is directly inside it
  (a spec rule), so only the app user and nginx's group can reach the socket,
  whatever the socket's own mode: gunicorn chowns its socket to the app's group,
  and uvicorn would make its own 0666. The other kinds take the socket the process
  manager made (``SOCKET_MODE``).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from scaffold.spec import Spec

# rwx for the app user, r-x (enough to connect to a socket inside) for nginx's group, nothing for others.
RUN_DIR_MODE = 0o750
# The socket a process manager creates for uvicorn: the app user and nginx's group may
# connect (connect(2) on a unix socket needs write permission), nobody else.
SOCKET_MODE = 0o660


def manager_passes_socket(spec: Spec) -> bool:
    """Whether the process manager can create the listening socket and hand it to the app's processes.

    supervisor ([fcgi-program], fd 0) and systemd (socket units, fd 3) can; pm2 cannot (it only
    starts programs), so under pm2 every app server binds its own listener.
    """
    return spec.process_manager in ("supervisor", "systemd", "both")


def module_for(spec: Spec) -> ModuleType:
    """The target module (named after app_server.kind) that runs this spec's web app."""
    return import_module(f"scaffold.targets.{spec.app_server.kind}")


def config_dir(spec: Spec) -> str:
    """The directory on the host that holds the rendered app-server file."""
    return f"/etc/{spec.name}"


def environment(spec: Spec) -> dict[str, str]:
    """Non-secret environment of the web program; secrets are read by the settings module itself."""
    return {
        "DJANGO_SETTINGS_MODULE": spec.django.settings_module or "",
        # Log lines reach the process manager as they are written, not when a buffer fills.
        "PYTHONUNBUFFERED": "1",
    }


def graceful_timeout(spec: Spec) -> int:
    """Seconds open requests get to finish after the stop (or reload) signal."""
    return spec.app_server.graceful_timeout


def stop_timeout(spec: Spec) -> int:
    """Seconds the process manager waits after the stop signal before SIGKILL (> graceful_timeout).

    resolve_spec fills app_server.stop_timeout when the spec leaves it out.
    """
    return int(spec.app_server.stop_timeout or 0)


def socket_path(spec: Spec) -> str | None:
    """The unix socket path the app listens on, or None for a TCP listener."""
    bind = spec.app_server.bind or ""
    return bind.removeprefix("unix:") if bind.startswith("unix:") else None
