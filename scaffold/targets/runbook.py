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

from scaffold import grammar
from scaffold.spec import Spec, is_db_worker, remote_servers
from scaffold.targets import appserver, firewall, nginx, pm2, supervisor, systemd
from scaffold.targets import django as django_target
from scaffold.targets._base import MARKDOWN, RenderJob
from scaffold.targets._programs import (SECRET_FILE_MODE, SECRETS_DIR_MODE, Program, optional_secret_files,
                                        programs, secret_files, secrets_dir, state_dir)

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
# The static storage of the rendered settings (django.STATIC_STORAGE): .gz copies at collectstatic;
# the brotli extra adds the .br copies static.brotli serves.
STATIC_PACKAGES = {False: ["whitenoise>=6.6"], True: ["whitenoise[brotli]>=6.6"]}
# Debian's brotli_static module for nginx (bookworm and later), with static.brotli.
NGINX_BROTLI_PACKAGE = "libnginx-mod-http-brotli-static"
# What only the host that runs nginx needs, when the app runs elsewhere.
NGINX_HOST_PACKAGES = ("nginx", NGINX_BROTLI_PACKAGE, "certbot")
CACHE_PACKAGES = {"redis": ["redis>=5"], "memcached": ["pymemcache>=4"], "locmem": []}
# pm2 itself comes from the npm registry at a pinned version (pm2.PM2_VERSION); Debian's Node.js runs
# it (pm2 7 needs Node 18 or newer: Debian 12 has 18, Ubuntu 24.04 has 18). logrotate rotates its logs.
PM2_PACKAGES = ["nodejs", "npm", "logrotate"]
PM2_PATH = "/usr/local/bin:/usr/bin:/bin"
SENTRY_PACKAGES = ["sentry-sdk>=2"]
TASKS_PACKAGES = ["django-tasks-db>=0.13"]
# django-tasks-db on Django 5.2 needs the tasks framework's backport (its `compat` extra, which
# would also pin Django below 6, so the backport is installed on its own).
TASKS_BACKPORT = "django-tasks>=0.12"
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
        "socket_group": q(spec.app_server.socket_group),
        "packages": " ".join(q(p) for p in system_packages(spec)),
        "home": q(PurePosixPath(d.root or "").parent), "root": q(d.root), "venv": q(d.venv),
        "manage_py": q(f"{d.root}/manage.py"), "python": q(f"{d.venv}/bin/python"),
        "pip_packages": " ".join(q(p) for p in app_server_packages(spec)),
        "tasks_backport": q(TASKS_BACKPORT) if any(is_db_worker(b) for b in spec.background) else None,
        "static_root": q(spec.static.root), "brotli": spec.static.brotli,
        "directories": directories(spec), "sqlite": sqlite_file(spec), "installs": rendered_installs(spec),
        "executables": sorted({q(p.argv[0]) for p in programs(spec)}),
        "secrets": [(name, q(path)) for name, path in secret_files(spec).items()],
        "optional_secrets": [(name, q(path)) for name, path in optional_secret_files(spec).items()],
        "key_command": KEY_COMMAND, "secret_mode": f"{SECRET_FILE_MODE:04o}",
        "manage_env": manage_environment(spec),
        "nginx_files": [(q(f), q(f"{NGINX_SITES}/{f.name}"), q(f"{NGINX_ENABLED}/{f.name}"))
                        for f in nginx.output_files(spec)],
        "tls": tls_steps(spec), "supervisor": supervisor_steps(spec), "systemd": systemd_steps(spec),
        "pm2": pm2_steps(spec),
        "checks": checks(spec), "log_dir": q(spec.paths.log_dir), "mail": mail_steps(spec),
        "fleet": fleet_steps(spec),
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
    if spec.process_manager == "pm2":
        found += PM2_PACKAGES
    if spec.tls.mode == "letsencrypt":
        found.append("certbot")
    if spec.django.database is not None and spec.django.database.engine == "mysql":
        found += MYSQL_BUILD_PACKAGES
    if spec.static.brotli:
        found.append(NGINX_BROTLI_PACKAGE)
    if spec.app_server.kind == "uwsgi":
        found += [p for p in UWSGI_BUILD_PACKAGES if p not in found]
    return found


def lb_packages(spec: Spec) -> list[str]:
    """An nginx host's, when the app runs elsewhere: nginx (and its brotli module), curl for checks,
    certbot for Let's Encrypt."""
    return [p for p in system_packages(spec) if p in NGINX_HOST_PACKAGES] + ["curl"]


def app_packages(spec: Spec) -> list[str]:
    """An app host's, when nginx runs elsewhere: nothing of nginx's; nftables where it guards the port."""
    found = [p for p in system_packages(spec) if p not in NGINX_HOST_PACKAGES]
    return found + (["nftables"] if firewall.jobs(spec) else [])


def fleet_steps(spec: Spec) -> dict[str, Any] | None:
    """What differs with several hosts: who installs what, static files to the nginx hosts, the firewall."""
    if not remote_servers(spec):
        return None
    h = spec.hosts
    table = firewall.jobs(spec)
    return {"nginx_hosts": ", ".join(h.nginx), "singleton": h.singleton, "ansible": bool(h.ansible),
            "app_packages": " ".join(q(p) for p in app_packages(spec)),
            "lb_packages": " ".join(q(p) for p in lb_packages(spec)),
            "static_dir": q(spec.static.root),
            "socket_group": q(spec.app_server.socket_group),
            "media": q(spec.media.root) if spec.media.shared else None,
            "nftables": (q(table[0].dest), q(firewall.installed_path(spec))) if table else None,
            "nftables_dir": q(firewall.INCLUDE_DIR),
            "apps": [q(f"http://{s.address}/") for s in remote_servers(spec)],
            "connects": [connect_check(s.address) for s in remote_servers(spec)] if nginx.speaks_uwsgi(spec) else [],
            "health": [] if nginx.speaks_uwsgi(spec) else
            [q(f"http://{s.address}{spec.health.path}") for s in remote_servers(spec)]}


def connect_check(address: str) -> str:
    """A command that connects to *address* (unix:/PATH or HOST:PORT) and says so, or fails naming why.

    For uWSGI's socket, which speaks the uwsgi protocol: curl would send it HTTP and report an
    empty reply; a connection the server accepts is what nginx needs.
    """
    if address.startswith("unix:"):
        code = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
        return f"python3 -c {q(code)} {q(address.removeprefix('unix:'))} && echo connected"
    host, port = grammar.split_address(_local(address))
    code = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
    return f"python3 -c {q(code)} {q(host.strip('[]'))} {port} && echo connected"


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
    found += STATIC_PACKAGES[spec.static.brotli]  # the static storage, also with static.server whitenoise
    if spec.django.error_tracking is not None:
        found += SENTRY_PACKAGES
    if any(is_db_worker(b) for b in spec.background):
        found += TASKS_PACKAGES
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
        *([(user, web, SHARED_DIR_MODE, spec.media.protected.root,
            "protected files: the app writes, nginx sends them on X-Accel-Redirect")] if spec.media.protected else []),
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
    files = {**secret_files(spec), **optional_secret_files(spec)}
    env = {**appserver.environment(spec), **{f"{n}_FILE": p for n, p in files.items()}}
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


def pm2_steps(spec: Spec) -> dict[str, Any] | None:
    """pm2 from npm, its daemon as the app user at boot, the programs started (the one-host ones apart)."""
    if spec.process_manager != pm2.NAME:
        return None
    user, files = spec.django.user or "", {job.dest.name: job.dest for job in pm2.jobs(spec)}
    every, one = [], []
    for program in programs(spec):
        (one if program.singleton else every).extend(pm2.app_names(spec, program))
    env = {"PATH": PM2_PATH, "HOME": state_dir(spec), **pm2.daemon_environment(spec)}
    unit = pm2.service_name(spec)
    return {
        "version": q(f"pm2@{pm2.PM2_VERSION}"), "home": q(state_dir(spec)), "user": q(user),
        "service": q(unit), "service_name": q(unit.removesuffix(".service")),
        "tmpfiles": (q(files[f"{spec.name}.tmpfiles"]), q(f"{TMPFILES_DIR}/{spec.name}.conf")),
        "ecosystem": (q(files[pm2.ECOSYSTEM_NAME]), q(pm2.ecosystem_path(spec))),
        "logrotate": (q(files[f"{spec.name}.logrotate"]), q(f"/etc/logrotate.d/{spec.name}")),
        "dropin": (q(files[f"pm2-{user}.conf"]), q(f"{systemd.UNIT_DIR}/{unit}.d"),
                   q(f"{systemd.UNIT_DIR}/{unit}.d/djdeploy.conf")),
        "env": " ".join(q(f"{k}={v}") for k, v in env.items()),
        "every": q(",".join(every)), "one": q(",".join(one)) if one else None,
        "reload_web": " ".join(q(w) for w in pm2.web_reload_command(spec)),
        "restart_background": " ".join(q(n) for p in programs(spec)[1:] if not p.singleton
                                       for n in pm2.app_names(spec, p)) or None,
    }


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
    health = spec.health.path
    return {"socket": q(socket) if socket else None, "tcp": None if socket else q(f"http://{_local(address)}/"),
            "connect": connect_check(address) if nginx.speaks_uwsgi(spec) else None,
            "url": q(url), "resolve": q(f"{spec.domain}:{port}:127.0.0.1"), "host": q(f"Host: {spec.domain}"),
            "cacert": cacert,
            "load_balancer": q(f"https://{spec.domain}/") if spec.nginx.load_balancer is not None else None,
            # curl speaks HTTP, not the uwsgi protocol: uWSGI's health is checked through nginx only.
            "health_local": None if nginx.speaks_uwsgi(spec) else
            q(f"http://localhost{health}") if socket else q(f"http://{_local(address)}{health}"), "health_url": q(url.rstrip("/") + health)}


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
