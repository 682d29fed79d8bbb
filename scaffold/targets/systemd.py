"""systemd: a hardened service per program, a socket for the web app, a timer per scheduled program.

Units (installed in /etc/systemd/system/):

* ``<name>-web.socket``: systemd creates the listening socket (owner ``django.user``,
  group ``app_server.socket_group``, mode 0660) and keeps it across restarts of the
  app, so connections wait in the backlog instead of failing. gunicorn and uWSGI read
  ``LISTEN_FDS`` themselves; the uvicorn, Daphne and Hypercorn launchers take fd 3.
* ``<name>-web.service``, or the template ``<name>-web@.service`` with instances
  1..N when the app server runs one process per worker (uvicorn, Daphne, Hypercorn).
* ``<name>-<program>.service`` (``@.service`` when numprocs > 1) per background
  program; a scheduled one is ``Type=oneshot`` with a ``<name>-<program>.timer``.
* ``<name>.tmpfiles``: the run directory. It is not a ``RuntimeDirectory=``:
  that is owned by the service's own group (nginx's is needed) and removed when the
  service stops, taking the socket unit's socket with it (gunicorn #1524, #2053).

Hardening follows appserver-process.md §4.1, measured at 1.2 "OK" by
``systemd-analyze security`` (systemd 252), minus the directives that break
ordinary Django deployments at run time: ``MemoryDenyWriteExecute=`` (libffi
trampolines, JITs), ``ProcSubset=pid`` (psutil reads /proc/meminfo) and
``SystemCallFilter=~@resources`` (setrlimit, nice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from scaffold import grammar
from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets._base import HASH, RenderJob
from scaffold.targets._programs import Program, programs, secret_files, state_dir, tmpfiles_line

NAME = "systemd"
UNIT_DIR = "/etc/systemd/system"
KILL = "/bin/kill"
RESTART_SEC = 2
# A crash loop ends in `failed` (where `systemctl --failed` and monitoring look): START_LIMIT_BURST
# starts within START_LIMIT_INTERVAL. With RestartSec=2 ten starts take 20-30 s, inside the 60 s
# window; systemd's default window (10 s) is never reached at that pace (systemd.unit(5)). Starts by
# hand count too: ten deploys in a minute leave the unit failed until `systemctl reset-failed`.
START_LIMIT_BURST = 10
START_LIMIT_INTERVAL = 60
# Exit statuses of a start that failed before the program ran (systemd.exec(5), "Process Exit Codes"):
# CHDIR, EXEC, GROUP, USER, NAMESPACE (a missing ReadWritePaths= entry), LOGS_DIRECTORY,
# STATE_DIRECTORY, CREDENTIALS (a missing LoadCredential= file). Retrying cannot fix them.
SETUP_FAILURES = "200 203 216 217 226 233 238 243"
STATE_DIRECTORY_MODE = 0o750
# App servers whose master tells systemd when it is ready (sd_notify READY=1).
NOTIFYING_SERVERS = ("gunicorn", "uwsgi")
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_NODE_NAME = "--hostname={program}-%i@%%h"

# systemd.exec(5); each line lowers the exposure score without taking anything a
# Django app, celery or a manage.py command needs.
HARDENING = (
    ("UMask", "0027"),
    ("NoNewPrivileges", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateMounts", "yes"),
    ("PrivateUsers", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("RemoveIPC", "yes"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged"),
    ("SystemCallErrorNumber", "EPERM"),
    ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""),
    ("DevicePolicy", "closed"),
    ("KeyringMode", "private"),
)


@dataclass(frozen=True)
class Unit:
    """One unit file: its name and its sections, each a list of (key, value) lines."""

    filename: str
    sections: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def jobs(spec: Spec) -> list[RenderJob]:
    """The unit files and the run-directory snippet, when systemd manages the app."""
    if spec.process_manager not in ("systemd", "both"):
        return []
    found = [_unit_job(u) for u in units(spec)]
    found.append(RenderJob("systemd/tmpfiles.conf.j2", PurePosixPath(NAME, f"{spec.name}.tmpfiles"),
                           {"line": tmpfiles_line(spec)}, comment=HASH))
    return found


def _unit_job(unit: Unit) -> RenderJob:
    return RenderJob("systemd/unit.j2", PurePosixPath(NAME, unit.filename), {"sections": unit.sections})


def units(spec: Spec) -> list[Unit]:
    """Every unit, the web app's first (its socket, and the target that holds its instances)."""
    found = [socket_unit(spec)]
    if programs(spec)[0].numprocs > 1:
        found.append(web_target(spec))
    for program in programs(spec):
        found.append(service_unit(spec, program))
        if program.schedule:
            found.append(timer_unit(program))
    return found


def service_name(program: Program) -> str:
    """``<program>.service``, or the template ``<program>@.service`` for several processes."""
    return f"{program.name}@.service" if program.numprocs > 1 else f"{program.name}.service"


def instance_names(program: Program) -> list[str]:
    """The service names to enable: the unit itself, or instances 1..numprocs of the template."""
    if program.numprocs == 1:
        return [f"{program.name}.service"]
    return [f"{program.name}@{i}.service" for i in range(1, program.numprocs + 1)]


def web_target_name(spec: Spec) -> str:
    """``<name>-web.target``: the web app's instances as one unit."""
    return f"{spec.name}-web.target"


def web_units(spec: Spec) -> list[str]:
    """What the operator enables and restarts for the web app: its service, or the target of its instances."""
    web = programs(spec)[0]
    return [web_target_name(spec)] if web.numprocs > 1 else instance_names(web)


def web_target(spec: Spec) -> Unit:
    """The instances 1..N of the web template, started, stopped and restarted together.

    The number of instances lives here, so a changed ``workers`` is a changed file (``render
    --check`` sees it). Bound to the socket: a socket restart restarts the target, which starts
    every instance again, not only the one the socket's ``Service=`` names.
    """
    web = programs(spec)[0]
    socket = f"{web.name}.socket"
    return Unit(web_target_name(spec), (
        ("Unit", (("Description", escape_specifiers(f"{web.description}: {web.numprocs} instances")),
                  ("Wants", " ".join(instance_names(web))), ("BindsTo", socket), ("After", socket))),
        ("Install", (("WantedBy", "multi-user.target"),)),
    ))


def socket_unit(spec: Spec) -> Unit:
    """The web app's listening socket, created and owned by systemd."""
    web = programs(spec)[0]
    address = appserver.module_for(spec).listen_address(spec)
    listen = [("ListenStream", address.removeprefix("unix:"))]
    if address.startswith("unix:"):
        listen += [("SocketUser", spec.django.user or ""), ("SocketGroup", spec.app_server.socket_group),
                   ("SocketMode", f"{appserver.SOCKET_MODE:04o}")]
    else:
        listen += tcp_admission(spec, address)
    unit = [("Description", escape_specifiers(f"{web.description}: listening socket"))]
    if web.numprocs > 1:
        # A socket names one service to start on traffic; the others inherit the socket
        # (Sockets=), and starting the socket starts the target of all of them.
        listen.append(("Service", instance_names(web)[0]))
        unit.append(("Wants", web_target_name(spec)))
    return Unit(f"{web.name}.socket", (
        ("Unit", tuple(unit)),
        ("Socket", tuple(listen)),
        ("Install", (("WantedBy", "sockets.target"),)),
    ))


def tcp_admission(spec: Spec, address: str) -> list[tuple[str, str]]:
    """Only nginx's addresses may connect to a TCP socket: what nginx does for requests is skipped otherwise.

    The access list on a socket unit applies to the sockets it creates (systemd.resource-control(5),
    IPAddressAllow=). FreeBind= lets the socket bind an address before the network has it at boot.
    """
    found = [("IPAddressAllow", " ".join(spec.app_server.trusted_proxies or [])), ("IPAddressDeny", "any")]
    host, _ = grammar.split_address(address)
    if host not in ("0.0.0.0", "::"):
        found.append(("FreeBind", "yes"))
    return found


def service_unit(spec: Spec, program: Program) -> Unit:
    """A hardened service for one program."""
    sections = [("Unit", tuple(_unit_section(spec, program))),
                ("Service", tuple(_service_section(spec, program)))]
    if not program.schedule and not (program.web and program.numprocs > 1):
        sections.append(("Install", (("WantedBy", "multi-user.target"),)))
    return Unit(service_name(program), tuple(sections))


def _unit_section(spec: Spec, program: Program) -> list[tuple[str, str]]:
    lines = [("Description", escape_specifiers(program.description)), ("After", "network.target")]
    if program.web:
        socket = f"{program.name}.socket"
        lines += [("Requires", socket), ("After", socket)]
        if program.numprocs > 1:
            # `systemctl restart/stop <name>-web.target` reaches every instance.
            lines.append(("PartOf", web_target_name(spec)))
    if not program.schedule and not program.restart_on_clean_exit:
        # uvicorn instances are left out: each exits cleanly after max_requests and is started again,
        # which a busy site can do more than five times a minute.
        lines += [("StartLimitIntervalSec", str(START_LIMIT_INTERVAL)), ("StartLimitBurst", str(START_LIMIT_BURST))]
    return lines


def _service_section(spec: Spec, program: Program) -> list[tuple[str, str]]:
    return [*_start(spec, program), *_stop(program), *_secrets(spec), *_writable(spec), *HARDENING]


def _start(spec: Spec, program: Program) -> list[tuple[str, str]]:
    lines = [("Type", service_type(spec, program))]
    if lines[0][1] == "notify":
        lines.append(("NotifyAccess", "main"))
    if program.web and program.numprocs > 1:
        # The instances share one open listening socket, O_NONBLOCK flag included. Without
        # NonBlocking=yes systemd clears that flag for each instance it starts, and a running
        # instance's event loop then blocks inside accept() with a connection it accepted a
        # moment before left unanswered until the next one arrives (systemd.service(5)).
        lines += [("Sockets", f"{program.name}.socket"), ("NonBlocking", "yes")]
    lines += [("User", spec.django.user or ""), ("Group", spec.django.group or ""),
              ("WorkingDirectory", spec.django.root or ""),
              ("Environment", format_environment(program.environment)),
              ("ExecStart", exec_start(program))]
    if program.reload_signal:
        lines.append(("ExecReload", f"{KILL} -s {program.reload_signal} $MAINPID"))
    return lines


def service_type(spec: Spec, program: Program) -> str:
    """notify for gunicorn and uWSGI (their master sends READY=1), oneshot for a scheduled run, exec otherwise."""
    if program.schedule:
        return "oneshot"
    return "notify" if program.web and spec.app_server.kind in NOTIFYING_SERVERS else "exec"


def exec_start(program: Program) -> str:
    """The ExecStart= value, with a per-instance celery node name where one is needed."""
    line = format_exec(program.argv)
    if program.needs_node_name:
        line = f"{line} {_NODE_NAME.format(program=program.name)}"
    return line


def _stop(program: Program) -> list[tuple[str, str]]:
    # mixed: the stop signal to the main process only (it drains its workers), SIGKILL to
    # everything left in the cgroup after TimeoutStopSec (systemd.kill(5)).
    lines = [("KillMode", "mixed"), ("KillSignal", f"SIG{program.stop_signal}"),
             ("TimeoutStopSec", str(program.stop_timeout))]
    if not program.schedule:
        restart = "always" if program.restart_on_clean_exit else "on-failure"
        lines += [("Restart", restart), ("RestartSec", str(RESTART_SEC)),
                  ("RestartPreventExitStatus", SETUP_FAILURES)]
    return lines


def _secrets(spec: Spec) -> list[tuple[str, str]]:
    # Read by PID 1 into $CREDENTIALS_DIRECTORY, readable by this service only; never the
    # environment, which leaks to D-Bus clients and children (systemd.exec(5), Credentials).
    return [("LoadCredential", f"{name}:{path}") for name, path in secret_files(spec).items()]


def _writable(spec: Spec) -> list[tuple[str, str]]:
    """What the app may write under ProtectSystem=strict: state, logs, run dir, uploads."""
    # Without a mode systemd resets the directory to 0755 at every start, and the sqlite file in it
    # would be readable by every local user (systemd.exec(5), StateDirectoryMode=).
    lines = [("StateDirectory", state_dir(spec).removeprefix("/var/lib/")),
             ("StateDirectoryMode", f"{STATE_DIRECTORY_MODE:04o}")]
    log_dir = spec.paths.log_dir or ""
    paths = [spec.paths.run_dir or "", spec.media.root or ""]
    if log_dir.startswith("/var/log/"):
        lines.append(("LogsDirectory", log_dir.removeprefix("/var/log/")))
        lines.append(("LogsDirectoryMode", "0750"))
    else:
        paths.append(log_dir)
    database = spec.django.database
    if database is not None and database.engine == "sqlite":
        sqlite_dir = PurePosixPath(database.name or "").parent
        # By path components: /var/lib/<name>-db is not inside /var/lib/<name>.
        if not sqlite_dir.is_relative_to(state_dir(spec)):
            paths.append(str(sqlite_dir))
    return lines + [("ReadWritePaths", " ".join(paths))]


def timer_unit(program: Program) -> Unit:
    """The timer that starts a scheduled program; Persistent catches up runs missed while off."""
    return Unit(f"{program.name}.timer", (
        ("Unit", (("Description", escape_specifiers(f"{program.description}: schedule")),)),
        ("Timer", (("OnCalendar", escape_specifiers(program.schedule or "")), ("Persistent", "true"))),
        ("Install", (("WantedBy", "timers.target"),)),
    ))


def escape_specifiers(text: str) -> str:
    """'%' doubled: systemd expands %-specifiers in most unit settings (systemd.unit(5))."""
    return text.replace("%", "%%")


def quote_word(word: str) -> str:
    """One word of a command line, as systemd.service(5) "Command lines" reads it.

    Plain words stay as they are; others are double-quoted with backslash escapes.
    Then '%' and '$' are doubled, since systemd expands specifiers and $VARIABLES in
    ExecStart= (a quoted ';' is a literal, not a command separator).
    """
    if not word or not _SAFE_WORD.match(word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escape_specifiers(word).replace("$", "$$")


def format_exec(argv: tuple[str, ...] | list[str]) -> str:
    """A whole ExecStart= value from an argv."""
    if not argv or not argv[0].startswith("/"):
        raise ValueError("systemd runs an absolute executable path")
    return " ".join(quote_word(word) for word in argv)


def format_environment(env: dict[str, str]) -> str:
    """An Environment= value: "KEY=value" words, sorted; no '$' expansion happens there."""
    words = (f"{key}={value}" for key, value in sorted(env.items()))
    return " ".join(escape_specifiers('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"') for w in words)
