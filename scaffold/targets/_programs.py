"""The programs a deployment runs, as both process managers see them: the web app and each background entry.

supervisor and systemd lay these out in their own syntax; what runs, as whom,
with which signal and timeouts is decided once, here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from scaffold.spec import Background, Spec, is_celery_beat, is_singleton
from scaffold.targets import appserver
from scaffold.targets import django as django_target

MANAGE_PY = "manage.py"
SECRETS_DIR_MODE = 0o750  # root:<group>: the app user reads its secrets, nobody else lists them
SECRET_FILE_MODE = 0o640
# Seconds a background program must stay up to count as started (celery's supervisor example).
BACKGROUND_STARTSECS = 10
WEB_STARTSECS = 5


@dataclass(frozen=True)
class Program:
    """One program: what it runs and how its process manager starts, stops and reloads it."""

    name: str
    argv: tuple[str, ...]
    environment: dict[str, str]
    numprocs: int = 1
    stop_signal: str = "TERM"
    stop_timeout: int = 60
    startsecs: int = BACKGROUND_STARTSECS
    reload_signal: str | None = None
    schedule: str | None = None
    singleton: bool = False
    # celery workers on one host need distinct node names: the manager appends
    # --hostname=<program>-<process number>@%h in its own syntax.
    needs_node_name: bool = False
    # One uvicorn process per worker slot: whatever its exit status, a slot left empty is restarted.
    restart_on_clean_exit: bool = False
    web: bool = False
    description: str = ""


def web_program(spec: Spec) -> Program:
    """The web app as the app-server target runs it."""
    server = appserver.module_for(spec)
    return Program(
        name=f"{spec.name}-web", argv=tuple(server.command(spec)),
        environment=program_environment(spec, server.environment(spec)),
        numprocs=server.process_count(spec), stop_signal=server.stop_signal(spec),
        stop_timeout=server.stop_timeout(spec), startsecs=WEB_STARTSECS,
        reload_signal=server.reload_signal(spec), restart_on_clean_exit=server.uses_inherited_socket(spec),
        web=True, description=f"{spec.name} web app ({spec.app_server.kind}, {spec.domain})",
    )


def background_program(spec: Spec, entry: Background) -> Program:
    """One `background` entry, its command resolved to the virtualenv."""
    words = shlex.split(entry.command or "")
    return Program(
        name=f"{spec.name}-{entry.name}", argv=tuple(resolve_argv(spec, words)),
        environment=program_environment(spec, appserver.environment(spec)), numprocs=entry.numprocs,
        stop_signal=entry.stop_signal, stop_timeout=entry.stop_timeout, schedule=entry.schedule,
        singleton=is_singleton(entry), needs_node_name=_needs_node_name(entry, words),
        description=f"{spec.name} {entry.name} ({words[0]})",
    )


def programs(spec: Spec) -> list[Program]:
    """The web app, then the background programs in spec order."""
    return [web_program(spec), *(background_program(spec, b) for b in spec.background)]


def resolve_argv(spec: Spec, words: list[str]) -> list[str]:
    """Absolute argv: the first word from <venv>/bin, manage.py run by the venv's python."""
    venv_bin = f"{spec.django.venv}/bin"
    if words[0] == MANAGE_PY:
        argv = [f"{venv_bin}/python", f"{spec.django.root}/{MANAGE_PY}", *words[1:]]
    else:
        argv = [f"{venv_bin}/{words[0]}", *words[1:]]
    if is_celery_beat(words) and not _has_option(words, "-s", "--schedule"):
        # beat writes its schedule file to the working directory by default, which the app
        # user must not be able to write (and ProtectSystem=strict makes read-only).
        argv.append(f"--schedule={state_dir(spec)}/celerybeat-schedule")
    return argv


def _needs_node_name(entry: Background, words: list[str]) -> bool:
    worker = words[0] == "celery" and "worker" in words
    return worker and entry.numprocs > 1 and not _has_option(words, "-n", "--hostname")


def _has_option(words: list[str], short: str, long: str) -> bool:
    return any(w == short or w == long or w.startswith(long + "=") for w in words)


def state_dir(spec: Spec) -> str:
    """Persistent state of the app (celery beat's schedule): systemd's StateDirectory=<name>."""
    return f"/var/lib/{spec.name}"


def secret_names(spec: Spec) -> list[str]:
    """The secrets the rendered settings require: systemd credential names, *_FILE variable stems.

    Optional ones (DJANGO_SECRET_KEY_FALLBACKS) are left out: LoadCredential= fails the
    unit when its file is missing, and so would a *_FILE naming a missing file.
    """
    return [name for name in django_target.secrets(spec) if name not in django_target.OPTIONAL_SECRETS]


def secrets_dir(spec: Spec) -> str:
    """Where each secret is a file named after it on the host (root:<group>, 0640)."""
    return f"{appserver.config_dir(spec)}/secrets"


def secret_files(spec: Spec) -> dict[str, str]:
    """Each secret name and the file it is read from."""
    return {name: f"{secrets_dir(spec)}/{name}" for name in secret_names(spec)}


def optional_secret_files(spec: Spec) -> dict[str, str]:
    """Optional secrets that live in a file all the same (SENTRY_DSN): named in <VAR>_FILE, never
    loaded as a systemd credential, since a missing credential file fails the unit."""
    return {name: f"{secrets_dir(spec)}/{name}" for name in django_target.secrets(spec)
            if name in django_target.OPTIONAL_FILE_SECRETS}


def program_environment(spec: Spec, base: dict[str, str]) -> dict[str, str]:
    """*base* plus <VAR>_FILE for each optional secret file: a path, never a value."""
    return {**base, **{f"{name}_FILE": path for name, path in optional_secret_files(spec).items()}}


def tmpfiles_line(spec: Spec) -> str:
    """The tmpfiles.d(5) line that creates the run directory at boot, as appserver describes it."""
    return (f"d {spec.paths.run_dir} {appserver.RUN_DIR_MODE:04o} {spec.django.user} "
            f"{spec.app_server.socket_group} -")
