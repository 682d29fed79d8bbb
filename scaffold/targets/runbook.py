"""runbook: INSTALL.md, the commands that put this deployment on a fresh Debian/Ubuntu host, in order.

Every path and name comes from the spec and from the other targets' own functions
(config paths, unit names, file lists), so the runbook cannot drift from the files
it installs. Values reach the shell through ``shlex.quote`` (spec grammar already
keeps them free of shell syntax; quoting makes that independent of the grammar).
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import Any

from scaffold.spec import Spec, remote_servers
from scaffold.targets import appserver, nginx, supervisor, systemd
from scaffold.targets import django as django_target
from scaffold.targets._base import MARKDOWN, RenderJob
from scaffold.targets._programs import (SECRET_FILE_MODE, SECRETS_DIR_MODE, Program, programs, secret_files,
                                        secrets_dir, state_dir)

NAME = "runbook"
NGINX_SITES = "/etc/nginx/sites-available"
NGINX_ENABLED = "/etc/nginx/sites-enabled"
TMPFILES_DIR = "/etc/tmpfiles.d"
SHARED_DIR_MODE = 0o2750  # owner rwx, nginx's group r-x, setgid so new files get nginx's group
PRIVATE_DIR_MODE = 0o750
SQLITE_FILE_MODE = 0o640  # the app user reads and writes, its group reads, nobody else
# Enough entropy for SECRET_KEY (Django's get_random_secret_key makes 50 characters).
KEY_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(50), end=\"\")'"
LOOPBACK = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}
_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target")
# uWSGI from PyPI, built against the virtualenv's own Python (Debian's uwsgi-plugin-python3 is
# built for the system Python only, and is older); 2.0.28 is the first release for Python 3.13.
APP_SERVER_PACKAGES = {"gunicorn": ["gunicorn>=23"], "uvicorn": ["uvicorn[standard]>=0.36"],
                       "uwsgi": ["uwsgi>=2.0.28"], "daphne": ["daphne>=4.1"], "hypercorn": ["hypercorn>=0.17"]}
# uvicorn's "standard" extra brings the websockets library: without one, uvicorn answers a WebSocket
# upgrade (which nginx passes to ASGI apps) with "Unsupported upgrade request".
ASGI_WORKER_PACKAGES = ["uvicorn-worker>=0.4", "uvicorn[standard]>=0.36"]
# The client library each backend loads: Django's postgresql, mysql, redis and pymemcache backends.
DATABASE_PACKAGES = {"postgresql": ["psycopg[binary]>=3.1"], "mysql": ["mysqlclient>=2.2"], "sqlite": []}
POOLED_POSTGRESQL = ["psycopg[binary,pool]>=3.1"]
CACHE_PACKAGES = {"redis": ["redis>=5"], "memcached": ["pymemcache>=4"], "locmem": []}
# mysqlclient has no Linux wheels: pip builds it (mysqlclient's README, "Linux").
MYSQL_BUILD_PACKAGES = ["python3-dev", "default-libmysqlclient-dev", "build-essential", "pkg-config"]
# uWSGI has no wheels: pip compiles it (uWSGI docs, "Installing uWSGI": a C compiler and the Python headers).
UWSGI_BUILD_PACKAGES = ["build-essential", "python3-dev"]


def jobs(spec: Spec) -> list[RenderJob]:
    """INSTALL.md at the top of the output, for every spec."""
    return [RenderJob("runbook/INSTALL.md.j2", PurePosixPath("INSTALL.md"), context(spec), comment=MARKDOWN)]


def q(value: object) -> str:
    """One shell word."""
    return shlex.quote(str(value))


def context(spec: Spec) -> dict[str, Any]:
    """Everything the runbook lays out, already quoted for the shell where it lands in a command."""
    d = spec.django
    return {
        "name": spec.name, "domain": spec.domain, "user": q(d.user), "group": q(d.group),
        "socket_group": q(spec.app_server.socket_group), "multi_host": bool(remote_servers(spec)),
        "packages": " ".join(q(p) for p in system_packages(spec)),
        "home": q(PurePosixPath(d.root or "").parent), "root": q(d.root), "venv": q(d.venv),
        "manage_py": q(f"{d.root}/manage.py"), "python": q(f"{d.venv}/bin/python"),
        "pip_packages": " ".join(q(p) for p in app_server_packages(spec)),
        "directories": directories(spec), "sqlite": sqlite_file(spec), "installs": rendered_installs(spec),
        "executables": sorted({q(p.argv[0]) for p in programs(spec)}),
        "secrets": [(name, q(path)) for name, path in secret_files(spec).items()],
        "key_command": KEY_COMMAND, "secret_mode": f"{SECRET_FILE_MODE:04o}",
        "manage_env": manage_environment(spec),
        "nginx_files": [(q(f), q(f"{NGINX_SITES}/{f.name}"), q(f"{NGINX_ENABLED}/{f.name}"))
                        for f in nginx.output_files(spec)],
        "tls": tls_steps(spec), "supervisor": supervisor_steps(spec), "systemd": systemd_steps(spec),
        "checks": checks(spec), "log_dir": q(spec.paths.log_dir), "mail": mail_steps(spec),
    }


def mail_steps(spec: Spec) -> dict[str, Any]:
    """The relay error mail goes to: postfix installed here (loopback only), or an existing one checked."""
    d = spec.django
    relay = django_target.smtp_options(spec)
    return {"postfix": d.email_relay == "postfix", "admins": bool(d.admins),
            # The host's own name, not the site's: postfix delivers mail for its mailname locally,
            # and error mail to an address at the site's domain must leave the host.
            "mailname": '"postfix postfix/mailname string $(hostname --fqdn)"',
            "relay": f"{relay['host']}:{relay['port']}"}


def system_packages(spec: Spec) -> list[str]:
    """Debian packages: Python, nginx, the process manager, certbot for Let's Encrypt, curl for checks."""
    found = ["python3", "python3-venv", "nginx", "curl"]
    if spec.process_manager in ("supervisor", "both"):
        found.append("supervisor")
    if spec.tls.mode == "letsencrypt":
        found.append("certbot")
    if spec.django.database is not None and spec.django.database.engine == "mysql":
        found += MYSQL_BUILD_PACKAGES
    if spec.app_server.kind == "uwsgi":
        found += [p for p in UWSGI_BUILD_PACKAGES if p not in found]
    return found


def app_server_packages(spec: Spec) -> list[str]:
    """What the virtualenv needs beyond the project's requirements: app server, drivers, cache client."""
    found = list(APP_SERVER_PACKAGES[spec.app_server.kind])
    if spec.app_server.kind == "gunicorn" and spec.app_server.interface == "asgi":
        found += ASGI_WORKER_PACKAGES
    db, cache = spec.django.database, spec.django.cache
    if db is not None:
        found += POOLED_POSTGRESQL if django_target.uses_pool(spec) else DATABASE_PACKAGES[db.engine]
    if cache is not None:
        found += CACHE_PACKAGES[cache.backend]
    return found


def directories(spec: Spec) -> list[tuple[str, str, str, str, str]]:
    """(owner, group, mode, path, why) for every directory the app needs, created with install -d."""
    d, user, group, web = spec.django, spec.django.user, spec.django.group, spec.app_server.socket_group
    found = [
        ("root", group, PRIVATE_DIR_MODE, d.root, "the code: the app reads it, never writes it"),
        ("root", group, PRIVATE_DIR_MODE, appserver.config_dir(spec), "app-server config"),
        ("root", group, SECRETS_DIR_MODE, secrets_dir(spec), "secrets: root writes, the app reads"),
        (user, web, SHARED_DIR_MODE, spec.static.root, "collectstatic writes, nginx reads"),
        (user, web, SHARED_DIR_MODE, spec.media.root, "uploads: the app writes, nginx reads"),
        (user, group, PRIVATE_DIR_MODE, spec.paths.log_dir, "logs"),
        (user, group, PRIVATE_DIR_MODE, state_dir(spec), "state (celery beat's schedule, sqlite)"),
    ]
    db = d.database
    sqlite_dir = str(PurePosixPath(db.name or "").parent) if db and db.engine == "sqlite" else None
    if sqlite_dir and sqlite_dir != state_dir(spec):
        found.append((user, group, PRIVATE_DIR_MODE, sqlite_dir, "the sqlite database"))
    return [(q(o), q(g), f"{m:04o}", q(p), why) for o, g, m, p, why in found]


def sqlite_file(spec: Spec) -> dict[str, str] | None:
    """The SQLite file, made before the app first opens it so that it is never world-readable.

    SQLite creates a missing file with the process's umask (0644 under supervisor) and gives its
    journal and WAL files the database file's mode (sqlite.org/src, os_unix.c findCreateFileMode).
    """
    db = spec.django.database
    if db is not None and db.engine != "sqlite":
        return None
    path = db.name if db is not None else django_target.sqlite_file(spec)
    used = "" if db is not None else " (used only if the base settings keep SQLite)"
    return {"path": q(path), "owner": q(spec.django.user), "group": q(spec.django.group),
            "mode": f"{SQLITE_FILE_MODE:04o}", "why": f"the SQLite database{used}"}


def rendered_installs(spec: Spec) -> list[tuple[str, str, str]]:
    """(rendered file, host path, group) for the app-server file and the settings module."""
    source = f"{spec.app_server.kind}/{PurePosixPath(_server_file(spec)).name}"
    settings = django_target.jobs(spec)[0].dest
    module_path = (spec.django.settings_module or "").replace(".", "/") + ".py"
    return [(q(source), q(_server_file(spec)), q(spec.django.group)),
            (q(settings), q(f"{spec.django.root}/{module_path}"), q(spec.django.group))]


def _server_file(spec: Spec) -> str:
    return appserver.module_for(spec).config_path(spec)


def manage_environment(spec: Spec) -> str:
    """The env(1) assignments a manage.py command needs: settings module and secret files."""
    env = {**appserver.environment(spec), **{f"{n}_FILE": p for n, p in secret_files(spec).items()}}
    return " ".join(q(f"{key}={value}") for key, value in sorted(env.items()))


def tls_steps(spec: Spec) -> dict[str, Any]:
    """What the TLS section needs: the mode, certificate paths, certbot's names and hooks."""
    t = spec.tls
    names = [spec.domain, *spec.aliases]
    contact = f"-m {q(spec.django.admins[0])}" if spec.django.admins else "--register-unsafely-without-email"
    return {"mode": t.mode, "certificate": q(t.certificate), "certificate_key": q(t.certificate_key),
            "domains": " ".join(f"-d {q(n)}" for n in names), "contact": contact,
            "webroot": q(nginx.ACME_WEBROOT), "cert_name": q(spec.domain)}


def supervisor_steps(spec: Spec) -> dict[str, Any] | None:
    """The supervisor files to install, the shared ones apart from the one-host ones."""
    if spec.process_manager not in ("supervisor", "both"):
        return None
    files = [job.dest for job in supervisor.jobs(spec)]
    tmpfiles = next(f for f in files if f.suffix == ".tmpfiles")
    confs = [f for f in files if f.suffix == ".conf"]
    shared = [(q(f), q(f"{supervisor.INCLUDE_DIR}/{f.name}")) for f in confs if f.name == f"{spec.name}.conf"]
    single = [(q(f), q(f"{supervisor.INCLUDE_DIR}/{f.name}")) for f in confs if f.name != f"{spec.name}.conf"]
    web = programs(spec)[0]
    return {"tmpfiles": (q(tmpfiles), q(f"{TMPFILES_DIR}/{spec.name}.conf")), "shared": shared,
            "singletons": single, "timers": _timer_units(spec), "web": _supervisor_web(spec, web),
            "status": " ".join(q(g) for g in supervisor_groups(spec)),
            "reload_web": _supervisor_reload(spec, web), "restart_background": _restart_background(spec)}


def supervisor_grouped(spec: Spec) -> list[str]:
    """The programs of the shared file that supervisor puts in the [group:<name>]."""
    return [p.name for p in programs(spec) if p.schedule is None and not p.singleton
            and not supervisor.uses_fcgi(spec, p)]


def supervisor_groups(spec: Spec) -> list[str]:
    """`supervisorctl status` arguments for what the shared file defines: only groups that exist.

    An fcgi-program is a group of its own (named after it); the spec's group exists only when it
    has a member. Naming a group that does not exist makes supervisorctl exit 4 (ERROR no such group).
    """
    web = programs(spec)[0]
    found = [f"{web.name}:*"] if supervisor.uses_fcgi(spec, web) else []
    return found + ([f"{spec.name}:*"] if supervisor_grouped(spec) else [])


def _restart_background(spec: Spec) -> str | None:
    """Restart each background process of the shared file (not the whole group: that holds the web app)."""
    names = []
    for p in programs(spec)[1:]:
        if p.schedule is None and not p.singleton:
            names += [f"{p.name}-{n}" for n in range(p.numprocs)] if p.numprocs > 1 else [p.name]
    return " ".join(q(f"{spec.name}:{n}") for n in names) or None


def _supervisor_reload(spec: Spec, web: Program) -> str:
    """New code with no lost request: HUP where the server reloads itself, else one process at a time.

    Restarting every process of an fcgi-program at once would close supervisor's socket.
    """
    if web.reload_signal is not None and not supervisor.uses_fcgi(spec, web):
        return f"supervisorctl signal {web.reload_signal} {q(f'{spec.name}:{web.name}')}"
    names = [f"{web.name}:{web.name}-{n}" for n in range(web.numprocs)]
    return " && ".join(f"supervisorctl restart {q(name)}" for name in names)


def _supervisor_web(spec: Spec, web: Program) -> str | None:
    """The web app's own group when it is an fcgi-program, outside the spec's group."""
    return q(f"{web.name}:*") if supervisor.uses_fcgi(spec, web) else None


def systemd_steps(spec: Spec) -> dict[str, Any] | None:
    """The unit files to install, what to enable on every host and what on one host only."""
    if spec.process_manager not in ("systemd", "both"):
        return None
    names = [u.filename for u in systemd.units(spec)]  # the .tmpfiles snippet is not a unit
    every, one = [f"{spec.name}-web.socket", *systemd.web_units(spec)], []
    for program in programs(spec)[1:]:
        target = one if program.singleton or program.schedule else every
        target += [f"{program.name}.timer"] if program.schedule else systemd.instance_names(program)
    web = programs(spec)[0]
    return {"units": " ".join(q(f"{systemd.NAME}/{n}") for n in names),
            "verify": " ".join(q(f"{systemd.UNIT_DIR}/{n}") for n in names),
            "tmpfiles": (q(f"{systemd.NAME}/{spec.name}.tmpfiles"), q(f"{TMPFILES_DIR}/{spec.name}.conf")),
            "every": " ".join(q(u) for u in every), "one": " ".join(q(u) for u in one),
            "reload_web": _systemd_reload(web), "reload_background": _background_services(spec),
            "instances": _surplus_instances(web), "prefix": q(f"{spec.name}-"),
            "journal": " ".join(f"-u {q(u)}" for u in _journal_units(spec))}


def _systemd_reload(web: Program) -> str:
    """New code with no lost request: HUP to gunicorn, else one uvicorn instance after the other.

    The socket stays open meanwhile (systemd owns it), so connections wait in its backlog.
    """
    if web.reload_signal is not None:
        return f"systemctl reload {q(systemd.instance_names(web)[0])}"
    return " && ".join(f"systemctl restart {q(name)}" for name in systemd.instance_names(web))


def _background_services(spec: Spec) -> str:
    """The long-running background services: try-restart restarts them where they run (a singleton
    only on its host). A scheduled program picks up new code at its next run."""
    names = [n for p in programs(spec)[1:] if not p.schedule for n in systemd.instance_names(p)]
    return " ".join(q(n) for n in names)


def _surplus_instances(web: Program) -> str | None:
    """A pipeline that stops and disables web instances beyond ``workers`` (after a scale-down)."""
    if web.numprocs == 1:
        return None
    keep = "|".join(str(i) for i in range(1, web.numprocs + 1))
    pattern = q(f"{web.name}@*.service")
    return (f"systemctl list-units --all --plain --no-legend {pattern} | awk '{{print $1}}' "
            f"| grep -Ev {q(f'^{web.name}@({keep})[.]service$')} | xargs -r systemctl disable --now")


def _journal_units(spec: Spec) -> list[str]:
    """Every service whose output is in the journal: templates by a glob."""
    return [f"{p.name}@*" if p.numprocs > 1 else f"{p.name}.service" for p in programs(spec)]


def _timer_units(spec: Spec) -> list[str]:
    return [q(f"{p.name}.timer") for p in programs(spec) if p.schedule]


def checks(spec: Spec) -> dict[str, Any]:
    """How to see the app answer: on its socket or port as nginx reaches it, then through nginx."""
    address = appserver.module_for(spec).listen_address(spec)
    https = spec.tls.mode != "off"
    port = spec.nginx.https_port if https else spec.nginx.http_port
    scheme = "https" if https else "http"
    url = f"{scheme}://{spec.domain}" + (f":{port}" if port not in (80, 443) else "") + "/"
    socket = address.removeprefix("unix:") if address.startswith("unix:") else None
    # A certificate from files may be self-signed or from an internal CA: curl trusts the chain
    # file itself (a partial chain, which curl accepts with OpenSSL by default since 7.68).
    cacert = f"--cacert {q(spec.tls.certificate)} " if spec.tls.mode == "files" else ""
    return {"socket": q(socket) if socket else None, "tcp": None if socket else q(f"http://{_local(address)}/"),
            "url": q(url), "resolve": q(f"{spec.domain}:{port}:127.0.0.1"), "host": q(f"Host: {spec.domain}"),
            "cacert": cacert}


def _local(address: str) -> str:
    """HOST:PORT as this host reaches it: a wildcard listen address becomes loopback."""
    host, _, port = address.rpartition(":")
    return f"{LOOPBACK.get(host, host)}:{port}"


def removal_steps(dests: list[PurePosixPath]) -> list[str]:
    """Host commands that retire what removed files installed (units, programs, sites)."""
    steps: list[str] = []
    units = [d.name for d in dests if d.parts[0] == "systemd" and d.suffix in _UNIT_SUFFIXES]
    plain = [u for u in units if "@." not in u]
    templates = [u for u in units if "@." in u]
    if plain:
        steps.append(f"systemctl disable --now {' '.join(q(u) for u in plain)}")
    for unit in templates:   # an instance is enabled by name, so stop and unlink every instance
        instances = unit.replace("@.", "@*.")
        steps.append(f"systemctl stop {q(instances)}; rm -f {systemd.UNIT_DIR}/*.wants/{instances}")
    if units:
        steps.append(f"rm -f {' '.join(q(f'{systemd.UNIT_DIR}/{u}') for u in units)} && systemctl daemon-reload")
    programs_ = [d.name for d in dests if d.parts[0] == "supervisor" and d.suffix == ".conf"]
    if programs_:
        steps.append(f"rm -f {' '.join(q(f'{supervisor.INCLUDE_DIR}/{p}') for p in programs_)} "
                     "&& supervisorctl reread && supervisorctl update")
    sites = [d.name for d in dests if d.parts[0] == "nginx"]
    if sites:
        paths = [q(f"{base}/{s}") for s in sites for base in (NGINX_ENABLED, NGINX_SITES)]
        steps.append(f"rm -f {' '.join(paths)} && nginx -t && systemctl reload nginx")
    return steps
