"""pm2: an ecosystem file with every program, run by a pm2 daemon of the app user that systemd starts at boot.

Files:

* ``ecosystem.config.js`` (installed as ``/etc/<name>/ecosystem.config.js``): one pm2 app per
  process, the web app first. Every key is one of pm2's own options (a test checks them against
  the schema of the pinned pm2). Values are JSON, which JavaScript reads as they are. The file
  refuses to load for any user but ``django.user``: pm2 can only switch users when its daemon
  runs as root, so the daemon runs as the app user and the file makes sure of it.
* ``<name>.tmpfiles``: the run directory at every boot, as for supervisor.
* ``<name>.logrotate``: pm2 never rotates its log files; logrotate does, as the app user.
* ``pm2-<user>.conf``: a drop-in for the ``pm2-<user>.service`` that ``pm2 startup`` writes.

What pm2 does differently from supervisor and systemd, and what is rendered for it:

* pm2 stops a program with the one signal its daemon was started with (``PM2_KILL_SIGNAL``,
  SIGINT unless set), sent to the whole process tree (``treekill``), then SIGKILL after
  ``kill_timeout``. SIGINT makes gunicorn drop its open requests, so the daemon runs with
  SIGTERM (the drop-in, and the runbook's ``pm2`` wrapper); a spec rule refuses other
  ``stop_signal`` values.
* ``pm2 reload`` of a fork-mode program is a restart: stop, then start, with no listener in
  between, so nginx gets errors meanwhile. A deploy sends the app server its own reload signal
  instead (``pm2 sendSignal SIGHUP``): gunicorn starts new workers and retires the old ones,
  uvicorn's supervisor (under pm2) replaces its workers one at a time, the listener stays open.
* pm2 cannot create a socket and hand it over, so the app server binds ``app_server.bind``
  itself (see the uvicorn target for uvicorn).
* pm2 cannot start a one-shot job on a schedule (``cron_restart`` restarts a running program),
  so a spec rule refuses ``schedule`` under pm2.
* The environment is the ecosystem's only (``filter_env``): the variables of whoever ran
  ``pm2 start`` never reach the app, and pm2's saved process list holds no secret.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets._base import Comment, HASH, RenderJob
from scaffold.targets._programs import Program, programs, secret_files, state_dir, tmpfiles_line

NAME = "pm2"
# The pm2 the runbook installs from the npm registry and the ecosystem file is checked against.
PM2_VERSION = "7.0.4"
ECOSYSTEM_NAME = "ecosystem.config.js"
SLASHES = Comment("//")
KILL_SIGNAL = "SIGTERM"
# A crash loop ends in pm2's `errored` state: MAX_RESTARTS starts in a row that each lived less
# than the program's startsecs (pm2's min_uptime); RESTART_DELAY between them, as systemd's RestartSec.
MAX_RESTARTS = 10
RESTART_DELAY_MS = 2000
# logrotate: what supervisor does by itself (50MB, 10 files) for each program's log.
LOG_MAXSIZE = "50M"
LOG_ROTATIONS = 10
_NODE_NAME = "--hostname={name}@%h"


def jobs(spec: Spec) -> list[RenderJob]:
    """The ecosystem file, the run-directory snippet, log rotation and the daemon's drop-in, under pm2."""
    if spec.process_manager != NAME:
        return []
    base = PurePosixPath(NAME)
    user = spec.django.user or ""
    return [
        RenderJob("pm2/ecosystem.config.js.j2", base / ECOSYSTEM_NAME, ecosystem_context(spec), comment=SLASHES),
        RenderJob("pm2/tmpfiles.conf.j2", base / f"{spec.name}.tmpfiles", {"line": tmpfiles_line(spec)}, comment=HASH),
        RenderJob("pm2/logrotate.j2", base / f"{spec.name}.logrotate", logrotate_context(spec), comment=HASH),
        RenderJob("pm2/dropin.conf.j2", base / f"pm2-{user}.conf", {"environment": daemon_environment(spec)},
                  comment=HASH),
    ]


def ecosystem_path(spec: Spec) -> str:
    """Where the ecosystem file is installed on the host (root:<group>, 0640)."""
    return f"{appserver.config_dir(spec)}/{ECOSYSTEM_NAME}"


def pm2_home(spec: Spec) -> str:
    """The daemon's PM2_HOME: `pm2 startup --hp <state dir>` puts it in <state dir>/.pm2, which the app user owns."""
    return f"{state_dir(spec)}/.pm2"


def service_name(spec: Spec) -> str:
    """The systemd service `pm2 startup systemd -u <user>` writes and enables."""
    return f"pm2-{spec.django.user}.service"


def daemon_environment(spec: Spec) -> dict[str, str]:
    """What the pm2 daemon itself needs in its environment, whoever starts it."""
    return {"PM2_HOME": pm2_home(spec), "PM2_KILL_SIGNAL": KILL_SIGNAL}


def ecosystem_context(spec: Spec) -> dict[str, Any]:
    apps = [app for program in programs(spec) for app in pm2_apps(spec, program)]
    return {"name": spec.name, "path": ecosystem_path(spec), "user_name": spec.django.user,
            "user": json.dumps(spec.django.user), "apps": [json.dumps(a, indent=2) for a in apps]}


def pm2_apps(spec: Spec, program: Program) -> list[dict[str, Any]]:
    """One pm2 app per process: `<program>` alone, or `<program>-0` ... `<program>-N-1`.

    pm2's own `instances` runs copies that differ only in an environment variable, and a
    celery worker's node name is a command-line option, so each process is an app of its own.
    """
    if program.schedule is not None:
        raise ValueError(f"{program.name}: pm2 runs no scheduled program (spec validation refuses it)")
    if program.stop_signal != "TERM":
        raise ValueError(f"{program.name}: pm2 stops programs with {KILL_SIGNAL} only")
    if program.numprocs == 1:
        return [pm2_app(spec, program, program.name)]
    return [pm2_app(spec, program, f"{program.name}-{n}") for n in range(program.numprocs)]


def app_names(spec: Spec, program: Program) -> list[str]:
    """The pm2 app names of one program, as pm2_apps names them."""
    return [app["name"] for app in pm2_apps(spec, program)]


def pm2_app(spec: Spec, program: Program, name: str) -> dict[str, Any]:
    """One pm2 app: what it runs, as whom it checks, how pm2 restarts, stops and logs it."""
    args = list(program.argv[1:])
    if program.needs_node_name:
        args.append(_NODE_NAME.format(name=name))
    log = f"{spec.paths.log_dir}/{name}.log"
    return {
        "name": name,
        "script": program.argv[0],
        "args": args,
        # The script is an executable (the venv's python, gunicorn, celery): no interpreter in front.
        "interpreter": "none",
        "exec_mode": "fork",
        "cwd": spec.django.root,
        # Only `env` below, none of the variables of whoever runs `pm2 start`: pm2 drops each variable
        # whose name contains a listed string, and every name contains "" (pm2 7.0 ignores `true` here).
        "filter_env": [""],
        "env": environment(spec, program),
        "autorestart": True,
        "min_uptime": program.startsecs * 1000,
        "max_restarts": MAX_RESTARTS,
        "restart_delay": RESTART_DELAY_MS,
        # Milliseconds from the stop signal to SIGKILL, above graceful_timeout as for the other managers.
        "kill_timeout": program.stop_timeout * 1000,
        "treekill": True,
        # Both streams into one file per process, as supervisor's redirect_stderr.
        "out_file": log,
        "error_file": log,
        # pm2 would read the git metadata of cwd and watch nothing; neither is wanted.
        "vizion": False,
        "watch": False,
    }


def environment(spec: Spec, program: Program) -> dict[str, str]:
    """The program's environment: no secret values, only the files that hold them (<VAR>_FILE)."""
    files = {f"{name}_FILE": path for name, path in secret_files(spec).items()}
    return dict(sorted({**program.environment, **files}.items()))


def logrotate_context(spec: Spec) -> dict[str, Any]:
    return {"pattern": f"{spec.paths.log_dir}/*.log", "user": spec.django.user, "group": spec.django.group,
            "size": LOG_MAXSIZE, "rotations": LOG_ROTATIONS}


def web_reload_command(spec: Spec) -> list[str]:
    """The pm2 arguments that load new code into the web app with no lost request: its own reload signal.

    `pm2 reload` would restart it (stop, then start) in fork mode.
    """
    web = programs(spec)[0]
    signal = appserver.module_for(spec).reload_signal(spec)
    if signal is None:
        raise ValueError(f"{spec.app_server.kind} has no reload signal under pm2")
    return ["sendSignal", f"SIG{signal}", web.name]
