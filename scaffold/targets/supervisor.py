"""supervisor: a program per process, in a group, escaped for supervisor's own ini parser.

Files (installed in /etc/supervisor/conf.d/, which Debian's supervisord.conf includes):

* ``<name>.conf``: the ``[group:<name>]`` and its programs — the web app (unless it is
  an ``[fcgi-program]``, see below) and every background program that may run on
  every app host.
* ``<name>-<program>.conf``: one per singleton (celery beat): installed on exactly one
  host, so the scheduler runs once however many app hosts there are.
* ``<name>.tmpfiles``: the systemd-tmpfiles.d line that creates ``paths.run_dir`` at
  every boot (/run is a tmpfs and supervisor creates no directories).

When the app server takes its socket from the process manager (every kind but gunicorn), the web
app is an ``[fcgi-program]``: supervisor creates the socket once and hands it to
every process as fd 0, so a SIGKILLed process leaves no orphan holding the port
and connections wait in the backlog while it restarts. supervisor ignores the
``socket`` of an fcgi-program listed in a ``[group:]`` (it parses it as a plain
program: supervisor 4.3.0 options.py ``process_groups_from_parser``), so that
program stays outside the group.

Scheduled programs are not rendered here: supervisor cannot start a program
periodically; they are systemd timers (spec validation enforces systemd or both).
Nothing here opens ``[inet_http_server]``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath

from scaffold.spec import Spec
from scaffold.targets import appserver
from scaffold.targets._base import HASH, SEMICOLON, RenderJob
from scaffold.targets._programs import Program, programs, secret_files, tmpfiles_line

NAME = "supervisor"
INCLUDE_DIR = "/etc/supervisor/conf.d"
# Log rotation by supervisor itself (its defaults, written out): 10 files of 50MB per program.
LOG_MAXBYTES = "50MB"
LOG_BACKUPS = 10
STARTRETRIES = 3
# configparser, as supervisor configures it, ends a value at ';' or '#' after whitespace.
_INLINE_COMMENT = re.compile(r"\s[;#]")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE_NAME = "--hostname=%(program_name)s-%(process_num)d@%%h"


def jobs(spec: Spec) -> list[RenderJob]:
    """The program files and the run-directory snippet, when supervisor manages the app."""
    if spec.process_manager not in ("supervisor", "both"):
        return []
    shared = [p for p in _supervised(spec) if not p.singleton]
    found = [_conf_job(spec, f"{spec.name}.conf", _group_sections(spec, shared))]
    found += [_conf_job(spec, f"{p.name}.conf", [_program_section(spec, p)])
              for p in _supervised(spec) if p.singleton]
    found.append(RenderJob("supervisor/tmpfiles.conf.j2", PurePosixPath(NAME, f"{spec.name}.tmpfiles"),
                           {"line": tmpfiles_line(spec)}, comment=HASH))
    return found


def _supervised(spec: Spec) -> list[Program]:
    return [p for p in programs(spec) if p.schedule is None]


def _conf_job(spec: Spec, filename: str, sections: list[tuple[str, dict[str, str]]]) -> RenderJob:
    return RenderJob("supervisor/programs.conf.j2", PurePosixPath(NAME, filename),
                     {"sections": sections}, comment=SEMICOLON)


def _group_sections(spec: Spec, members: list[Program]) -> list[tuple[str, dict[str, str]]]:
    sections = [_program_section(spec, p) for p in members]
    grouped = [p.name for p in members if not uses_fcgi(spec, p)]
    if grouped:
        sections.insert(0, (f"group:{spec.name}", {"programs": ",".join(grouped)}))
    return sections


def uses_fcgi(spec: Spec, program: Program) -> bool:
    """Whether supervisor owns this program's listening socket ([fcgi-program])."""
    return program.web and appserver.module_for(spec).uses_inherited_socket(spec)


def _program_section(spec: Spec, program: Program) -> tuple[str, dict[str, str]]:
    kind = "fcgi-program" if uses_fcgi(spec, program) else "program"
    options = {**_identity(spec, program), **_lifecycle(program), **_logging(spec, program)}
    if kind == "fcgi-program":
        options.update(_socket(spec))
    return f"{kind}:{program.name}", options


def _identity(spec: Spec, program: Program) -> dict[str, str]:
    command = format_command(program.argv)
    if program.needs_node_name:
        command = f"{command} {_NODE_NAME}"
    options = {"command": command}
    if program.numprocs > 1:
        options["process_name"] = "%(program_name)s-%(process_num)d"
        options["numprocs"] = str(program.numprocs)
    return {**options, "directory": escape_value(spec.django.root or ""), "user": spec.django.user or "",
            "environment": format_environment(environment(spec, program))}


def _lifecycle(program: Program) -> dict[str, str]:
    return {
        "autostart": "true",
        # true, not the default "unexpected": a long-running program that exits is restarted
        # whatever its status.
        "autorestart": "true",
        "startsecs": str(program.startsecs),
        "startretries": str(STARTRETRIES),
        "stopsignal": program.stop_signal,
        "stopwaitsecs": str(program.stop_timeout),
        # The whole process group gets the stop signal and, after stopwaitsecs, SIGKILL:
        # a master killed alone would orphan its workers (Supervisor PR #199).
        "stopasgroup": "true",
        "killasgroup": "true",
    }


def _logging(spec: Spec, program: Program) -> dict[str, str]:
    name = "%(program_name)s-%(process_num)d" if program.numprocs > 1 else program.name
    return {
        # One file per process: two writers rotating one file corrupt it (supervisor docs).
        "redirect_stderr": "true",
        "stdout_logfile": f"{escape_value(spec.paths.log_dir or '')}/{name}.log",
        "stdout_logfile_maxbytes": LOG_MAXBYTES,
        "stdout_logfile_backups": str(LOG_BACKUPS),
    }


def _socket(spec: Spec) -> dict[str, str]:
    server = appserver.module_for(spec)
    address = server.listen_address(spec)
    if not address.startswith("unix:"):
        # supervisord refuses socket_owner/socket_mode on TCP sockets.
        return {"socket": escape_value(f"tcp://{address}")}
    return {"socket": escape_value(f"unix://{address.removeprefix('unix:')}"),
            "socket_owner": f"{spec.django.user}:{spec.app_server.socket_group}",
            "socket_mode": f"{appserver.SOCKET_MODE:04o}"}


def environment(spec: Spec, program: Program) -> dict[str, str]:
    """The program's environment: no secret values, only the files that hold them (<VAR>_FILE)."""
    files = {f"{name}_FILE": path for name, path in secret_files(spec).items()}
    return dict(sorted({**program.environment, **files}.items()))


def escape_value(text: str) -> str:
    """A value for supervisor's ini parser: '%' doubled (values are %-format strings).

    Raises ValueError on ';' or '#' after whitespace, which the parser would cut off as
    a comment whatever the quoting.
    """
    if _INLINE_COMMENT.search(text):
        raise ValueError(f"supervisor would read the rest of {text!r} as a comment")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{text!r}: supervisor values are single lines")
    return text.replace("%", "%%")


def format_command(argv: tuple[str, ...] | list[str]) -> str:
    """A command= value: words quoted for shlex.split (which supervisor uses), then escaped."""
    return escape_value(shlex.join(argv))


def format_environment(env: dict[str, str]) -> str:
    """An environment= value: KEY="value" pairs, as supervisor's dict_of_key_value_pairs reads them.

    That reader keeps no escapes inside quotes and strips quote characters at either end
    of a value, so such values are refused rather than silently changed.
    """
    return ",".join(f'{_env_key(key)}="{_env_value(value)}"' for key, value in env.items())


def _env_key(key: str) -> str:
    if not _ENV_KEY.match(key):
        raise ValueError(f"{key!r} is not an environment variable name")
    return key


def _env_value(value: str) -> str:
    if '"' in value or value[-1:] == "'" or value[:1] == "'":
        raise ValueError(f"{value!r}: supervisor's environment= cannot carry this quote")
    return escape_value(value)
