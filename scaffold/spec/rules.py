"""Cross-field rules: what each field allows depends on others; every problem names its field."""

from __future__ import annotations

import re

from scaffold import grammar
from scaffold.spec.facts import is_singleton, remote_servers, split_command, static_origin
from scaffold.spec.kinds import INTERFACES, MASTER_KINDS, PROCESS_PER_WORKER
from scaffold.spec.models import Background, Cache, Database, Django, Spec, Tls
from scaffold.spec.values import NGINX_OLDEST, NGINX_RESOLVE_SINCE, Problem, WEB_PROGRAM

def _check_names(spec: Spec) -> list[Problem]:
    problems: list[Problem] = []
    seen = {spec.domain}
    for i, alias in enumerate(spec.aliases):
        if alias in seen:
            what = "the domain" if alias == spec.domain else "another alias"
            problems.append((("aliases", i), f"{alias!r} repeats {what}"))
        seen.add(alias)
    return problems


def _check_django(spec: Spec) -> list[Problem]:
    d = spec.django
    problems: list[Problem] = []
    for field in ("user", "group"):
        if getattr(d, field) == "root":
            problems.append((("django", field), "the app never runs as root; use a dedicated account"))
    if d.settings_module == d.base_settings:
        problems.append((("django", "settings_module"), "must differ from base_settings (it imports it)"))
    db = d.database
    if db is not None and db.engine == "sqlite":
        for field in ("user", "host", "port"):
            if field in db.model_fields_set:
                problems.append((("django", "database", field), "not used by sqlite; remove it"))
        try:
            grammar.check_abs_path(db.name or "")
        except ValueError as e:
            problems.append((("django", "database", "name"), f"for sqlite, {e}"))
    elif db is not None:
        problems.extend(_check_db_values(db))
    if d.cache is not None:
        problems.extend(_check_cache(d.cache))
    return problems + _check_relay(d)


def _check_relay(d: Django) -> list[Problem]:
    """The relay the settings send to must be the one the runbook provides or checks."""
    if d.email_relay == "postfix" and d.email_host not in (None, "localhost"):
        return [(("django", "email_relay"), f"postfix runs on each app host, but email_host is {d.email_host}; "
                 "use email_relay: external for a relay elsewhere, or drop email_host")]
    if d.email_relay == "external" and d.email_host is None:
        return [(("django", "email_relay"), "external needs django.email_host: the relay's host name")]
    return []


def _check_db_values(db: Database) -> list[Problem]:
    problems: list[Problem] = []
    if not grammar.IDENTIFIER_LIKE.fullmatch(db.name or ""):
        problems.append((("django", "database", "name"), "use letters, digits, '_' or '-' only"))
    return problems


def _check_cache(cache: Cache) -> list[Problem]:
    location = cache.location or ""
    ok = {
        "redis": grammar.REDIS_URL.fullmatch(location),
        "memcached": _is_address(location),
        "locmem": grammar.IDENTIFIER_LIKE.fullmatch(location),
    }[cache.backend]
    if ok:
        return []
    shapes = {"redis": "redis://HOST:PORT/DB or rediss://...", "memcached": "HOST:PORT or unix:/PATH",
              "locmem": "a name of letters, digits, '_' or '-'"}
    return [(("django", "cache", "location"), f"{location!r} is not {shapes[cache.backend]}")]


def _is_address(value: str) -> bool:
    try:
        grammar.split_address(value)
    except ValueError:
        return False
    return True


def _check_app_server(spec: Spec) -> list[Problem]:
    a = spec.app_server
    problems: list[Problem] = []
    if a.interface not in INTERFACES[a.kind]:
        other = "gunicorn or uwsgi" if a.interface == "wsgi" else "gunicorn, uvicorn, daphne or hypercorn"
        problems.append((("app_server", "interface"),
                         f"{a.kind} serves {INTERFACES[a.kind][0].upper()} only; use kind: {other} for "
                         f"{a.interface.upper()}"))
    if a.kind in PROCESS_PER_WORKER and a.max_requests and "max_requests" in a.model_fields_set:
        problems.append((("app_server", "max_requests"),
                         f"{a.kind} processes are not recycled (they would all exit together under load); "
                         "use kind: gunicorn with interface: asgi to recycle workers"))
    if a.threads > 1 and (a.kind not in MASTER_KINDS or a.interface == "asgi"):
        problems.append((("app_server", "threads"),
                         "threads is for WSGI under gunicorn (its gthread worker) or uwsgi only"))
    if a.trusted_proxies is None:
        problems.append((("app_server", "trusted_proxies"),
                         "required when upstream.servers lists other hosts: the addresses nginx connects from"))
    for i, proxy in enumerate(a.trusted_proxies or []):
        if proxy in ("0.0.0.0/0", "::/0"):
            problems.append((("app_server", "trusted_proxies", i),
                             "trusting every address lets any client forge X-Forwarded-Proto; list nginx's addresses"))
    return problems


def _check_app_process(spec: Spec) -> list[Problem]:
    """Rules between the app server, its socket and the process manager that runs it."""
    a = spec.app_server
    problems: list[Problem] = []
    if a.stop_timeout is not None and a.stop_timeout <= a.graceful_timeout:
        problems.append((("app_server", "stop_timeout"),
                         f"must be more than graceful_timeout ({a.graceful_timeout}s), or the process manager "
                         "kills requests that are still being finished"))
    if a.kind in PROCESS_PER_WORKER and a.workers == "auto":
        problems.append((("app_server", "workers"),
                         f"{a.kind} runs one process per worker, started by the process manager, which needs a "
                         'number: set workers: N ("auto" is computed at start-up by gunicorn and uwsgi only)'))
    socket_dir = (a.bind or "").removeprefix("unix:").rpartition("/")[0]
    if (a.bind or "").startswith("unix:") and socket_dir != spec.paths.run_dir:
        problems.append((("app_server", "bind"),
                         f"put the unix socket directly in paths.run_dir ({spec.paths.run_dir}), the directory "
                         "only the app user and nginx's group may enter; elsewhere anyone could reach it"))
    return problems


def _check_upstream(spec: Spec) -> list[Problem]:
    u = spec.upstream
    if u is None:
        return []
    problems: list[Problem] = []
    if u.method == "hash" and not u.hash_key:
        problems.append((("upstream", "hash_key"), "required with method: hash (for example $request_uri)"))
    seen: set[str] = set()
    for i, server in enumerate(u.servers):
        if server.backup and u.method in ("ip_hash", "hash", "random"):
            problems.append((("upstream", "servers", i, "backup"),
                             f"nginx does not allow backup servers with method: {u.method}"))
        if server.address in seen:
            problems.append((("upstream", "servers", i, "address"), f"{server.address!r} is listed twice"))
        seen.add(server.address)
    if u.servers and all(s.backup or s.down for s in u.servers):
        problems.append((("upstream", "servers"), "at least one server must be neither backup nor down"))
    return problems + _check_bind_matches_upstream(spec)


def _check_bind_matches_upstream(spec: Spec) -> list[Problem]:
    """Each app host runs the same app-server config, so every upstream address must be its bind."""
    bind = spec.app_server.bind or ""
    problems: list[Problem] = []
    for i, server in enumerate(spec.upstream.servers if spec.upstream else []):
        if not _bind_accepts(bind, server.address):
            problems.append((("upstream", "servers", i, "address"),
                             f"the app server listens on {bind} (app_server.bind), so nginx cannot reach it at "
                             f"{server.address}; every app host must listen on the same port or socket"))
    return problems


def _bind_accepts(bind: str, address: str) -> bool:
    if bind.startswith("unix:") or address.startswith("unix:"):
        return bind == address
    bind_host, bind_port = grammar.split_address(bind)
    host, port = grammar.split_address(address)
    return port == bind_port and bind_host in ("0.0.0.0", "[::]", host)


def _check_tls(spec: Spec) -> list[Problem]:
    t = spec.tls
    problems: list[Problem] = []
    if t.mode == "files":
        for field in ("certificate", "certificate_key"):
            if getattr(t, field) is None:
                problems.append((("tls", field), "required with mode: files"))
    if t.mode == "off":
        for field in ("certificate", "certificate_key"):
            if field in t.model_fields_set:
                problems.append((("tls", field), "not used with mode: off; remove it"))
    if t.hsts_preload and (not t.hsts_include_subdomains or t.hsts_seconds < 31536000):
        problems.append((("tls", "hsts_preload"),
                         "the preload list needs hsts_include_subdomains: true and hsts_seconds >= 31536000"))
    return problems


def check_explicit_tls(t: Tls) -> list[Problem]:
    """Rules about what the user wrote, checked before defaults are filled in."""
    if t.mode == "letsencrypt" and {"certificate", "certificate_key"} & t.model_fields_set:
        return [(("tls", "certificate"),
                 "derived from the domain with mode: letsencrypt; use mode: files for your own paths")]
    return []


def _check_files(spec: Spec) -> list[Problem]:
    problems: list[Problem] = []
    cdn, static_path = static_origin(spec)
    if static_path == spec.media.url:
        problems.append((("media", "url"), "must differ from static.url"))
    if cdn is not None and cdn in (spec.domain, *spec.aliases):
        problems.append((("static", "url"), f"{cdn} is this site: write the path only, like {static_path}"))
    static_root, media_root = spec.static.root or "", spec.media.root or ""
    if _nested(static_root, media_root):
        problems.append((("media", "root"),
                         "must be outside static.root and not contain it (uploads must never be served as code)"))
    problems += _check_protected(spec, static_path)
    if spec.nginx.http_port == spec.nginx.https_port:
        problems.append((("nginx", "https_port"), "must differ from nginx.http_port"))
    return problems


def _check_protected(spec: Spec, static_path: str) -> list[Problem]:
    """Protected files live apart from what nginx serves to anyone."""
    protected = spec.media.protected
    if protected is None:
        return []
    problems: list[Problem] = []
    for field, url in (("static.url", static_path), ("media.url", spec.media.url)):
        if _nested(protected.url.rstrip("/"), url.rstrip("/")):
            problems.append((("media", "protected", "url"), f"must be outside {field} ({url}) and not contain it"))
    for field, root in (("static.root", spec.static.root or ""), ("media.root", spec.media.root or "")):
        if _nested(protected.root or "", root):
            problems.append((("media", "protected", "root"),
                             f"must be outside {field} ({root}) and not contain it: nginx serves that to anyone"))
    return problems


def _check_locations(spec: Spec) -> list[Problem]:
    """The health and admin paths go to the app, so they must not fall inside a files location."""
    _, static_path = static_origin(spec)
    files = [("static.url", static_path), ("media.url", spec.media.url)]
    if spec.media.protected is not None:
        files.append(("media.protected.url", spec.media.protected.url))
    problems: list[Problem] = []
    for where, path in ((("health", "path"), spec.health.path), (("nginx", "admin", "path"), spec.nginx.admin.path)):
        for field, url in files:
            if path.startswith(url) or url.startswith(path.rstrip("/") + "/"):
                problems.append((where, f"{path!r} overlaps {field} ({url}), which nginx serves from files"))
    if spec.health.path.startswith(spec.nginx.admin.path):
        problems.append((("health", "path"), f"must be outside nginx.admin.path ({spec.nginx.admin.path})"))
    return problems


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _check_background(spec: Spec) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, program in enumerate(spec.background):
        if program.name == WEB_PROGRAM:
            problems.append((("background", i, "name"), f"{WEB_PROGRAM!r} is the web app's program name"))
        elif program.name in seen:
            problems.append((("background", i, "name"), f"{program.name!r} is used by another background program"))
        seen.add(program.name)
        if program.schedule is not None and program.numprocs > 1:
            problems.append((("background", i, "numprocs"), "a scheduled program runs once per run; use numprocs: 1"))
    return problems



# supervisor's ini parser starts an inline comment at ';' or '#' after whitespace (supervisor 4.3.0
# UnhosedConfigParser, inline_comment_prefixes); no quoting escapes it.
_SUPERVISOR_COMMENT = re.compile(r"\s[;#]")
_EXECUTABLE = re.compile(r"^[A-Za-z0-9._+-]+$")
HOME_DIRS = ("/home", "/root", "/run/user")








def _check_programs(spec: Spec) -> list[Problem]:
    """Rules the process managers need: commands they can run, schedules they can express."""
    problems: list[Problem] = []
    for i, program in enumerate(spec.background):
        problems.extend(((("background", i) + loc), msg) for loc, msg in _program_problems(spec, program))
    if spec.process_manager in ("systemd", "both"):
        problems.extend(_check_home_paths(spec))
    return problems + _check_pm2(spec)


def _program_problems(spec: Spec, program: Background) -> list[Problem]:
    if program.command is None:
        return [(("command",), "required: the program to run (or preset: db_worker)")]
    words = split_command(program.command)
    if program.preset == "db_worker" and (words or [])[:2] != ["manage.py", "db_worker"]:
        return [(("command",), "preset db_worker runs `manage.py db_worker [options]`; "
                               "remove command, or start it with manage.py db_worker")]
    if not words:
        return [(("command",), "must be words as a shell splits them (check the quotes)")]
    problems: list[Problem] = []
    if not _EXECUTABLE.match(words[0]):
        problems.append((("command",), f"{words[0]!r}: the first word names an executable in "
                         "<venv>/bin (like celery) or is manage.py; no paths"))
    if words[0] == "celery" and "worker" in words and {"-B", "--beat"} & set(words):
        problems.append((("command",), "runs beat inside the worker, once per worker process and host; "
                         "run `celery ... beat` as its own background program instead"))
    if is_singleton(program) and program.numprocs > 1:
        problems.append((("numprocs",), "a singleton (such as celery beat) runs exactly once; use numprocs: 1"))
    if spec.process_manager in ("supervisor", "both") and _SUPERVISOR_COMMENT.search(program.command):
        problems.append((("command",), "supervisor reads ';' or '#' after a space as a comment"))
    return problems + _schedule_problems(spec, program)


def _schedule_problems(spec: Spec, program: Background) -> list[Problem]:
    if program.schedule is None:
        return []
    if spec.process_manager == "supervisor":
        return [(("schedule",), "supervisor cannot run a program periodically; use process_manager: "
                 "systemd or both (a systemd timer), or a scheduler such as celery beat")]
    if spec.process_manager == "pm2":
        return [(("schedule",), "pm2 cannot run a program periodically: its cron_restart restarts a running "
                 "program, it does not start a job that exits; use process_manager: systemd or both "
                 "(a systemd timer), or a scheduler such as celery beat")]
    if not grammar.CALENDAR.fullmatch(program.schedule):
        return [(("schedule",), f"{program.schedule!r} is not a systemd OnCalendar expression "
                 "(like daily, hourly or Mon *-*-* 04:00:00)")]
    return []


# The app servers pm2 runs: gunicorn's master owns its socket; uvicorn's own supervisor binds one.
PM2_KINDS = ("gunicorn", "uvicorn")


def _check_pm2(spec: Spec) -> list[Problem]:
    """What pm2 cannot do: a stop signal per program, or hand a listening socket to several processes."""
    if spec.process_manager != "pm2":
        return []
    problems: list[Problem] = [
        (("background", i, "stop_signal"), "pm2 stops every program with one signal, SIGTERM (its daemon's "
         "PM2_KILL_SIGNAL, which gunicorn needs to finish its requests); remove stop_signal, or use "
         "process_manager: supervisor or systemd")
        for i, program in enumerate(spec.background) if program.stop_signal != "TERM"]
    a = spec.app_server
    if a.kind not in PM2_KINDS:
        problems.append((("app_server", "kind"), f"pm2 cannot hand {a.kind} a listening socket, which it needs for "
                         "a reload that loses no request; use kind: gunicorn or uvicorn, or process_manager: "
                         "supervisor or systemd"))
    if a.kind == "uvicorn" and isinstance(a.workers, int) and a.workers < 2:
        problems.append((("app_server", "workers"), "under pm2, uvicorn's own supervisor runs the workers on one "
                         "socket and replaces them one at a time on reload, which needs workers: 2 or more"))
    return problems


def _check_home_paths(spec: Spec) -> list[Problem]:
    """The hardened units hide home directories (ProtectHome=yes), so the app must live elsewhere."""
    fields = {("django", "root"): spec.django.root, ("django", "venv"): spec.django.venv,
              ("static", "root"): spec.static.root, ("media", "root"): spec.media.root}
    return [(loc, f"{path} is in a home directory, which the systemd units hide (ProtectHome=yes); "
                  "use /srv or /opt") for loc, path in fields.items()
            if any(_nested(path or "", home) for home in HOME_DIRS)]

def _check_nginx(spec: Spec) -> list[Problem]:
    """Rules for what the nginx site is built from."""
    n = spec.nginx
    problems: list[Problem] = []
    if grammar.parse_nginx_version(n.version) < NGINX_OLDEST:
        problems.append((("nginx", "version"),
                         "must be 1.19.4 or newer: the catch-all server needs ssl_reject_handshake"))
    for i, network in enumerate(n.real_ip_from):
        if network in ("0.0.0.0/0", "::/0"):
            problems.append((("nginx", "real_ip_from", i),
                             "trusting every address lets any client forge its IP; list the load balancers"))
    for where, networks in ((("nginx", "admin", "allow"), n.admin.allow), (("health", "allow"), spec.health.allow)):
        problems += [((*where, i), "every address is no restriction; list the networks that may connect")
                     for i, network in enumerate(networks) if network in ("0.0.0.0/0", "::/0")]
    return problems + _check_login_paths(spec) + _check_upstream_hosts(spec) + _check_load_balancer(spec)


def _check_load_balancer(spec: Spec) -> list[Problem]:
    """A load balancer that terminates TLS: nginx behind it serves plain HTTP, trusting it alone."""
    lb = spec.nginx.load_balancer
    if lb is None:
        return []
    problems: list[Problem] = []
    if spec.tls.mode != "off":
        problems.append((("nginx", "load_balancer"), "the load balancer terminates TLS and passes plain HTTP "
                         "to nginx: set tls.mode: off (for a proxy in front of an nginx that keeps its own "
                         "certificate, use nginx.real_ip_from instead)"))
    if spec.nginx.real_ip_from:
        problems.append((("nginx", "real_ip_from"), "not used with load_balancer: list the load balancer's "
                         "addresses in load_balancer.addresses only"))
    for i, network in enumerate(lb.addresses):
        if network in ("0.0.0.0/0", "::/0"):
            problems.append((("nginx", "load_balancer", "addresses", i),
                             "trusting every address lets any client forge its IP and scheme; "
                             "list the load balancer's addresses"))
    return problems


def _check_login_paths(spec: Spec) -> list[Problem]:
    limit = spec.nginx.login_rate_limit
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, path in enumerate(limit.paths if limit else []):
        where = ("nginx", "login_rate_limit", "paths", i)
        if path in seen:
            problems.append((where, f"{path!r} is listed twice"))
        for field, url in (("static.url", static_origin(spec)[1]), ("media.url", spec.media.url)):
            if path.startswith(url):
                problems.append((where, f"{path!r} is inside {field}, which nginx serves from files"))
        seen.add(path)
    return problems


def _check_upstream_hosts(spec: Spec) -> list[Problem]:
    """Before 1.27.3 nginx resolves a host name once, at start-up; from it, `resolve` needs a resolver."""
    servers = spec.upstream.servers if spec.upstream else []
    named = [(("upstream", "servers", i, "address"), s.address) for i, s in enumerate(servers)
             if _is_named_host(s.address)]
    problems: list[Problem] = []
    if _is_named_host(spec.app_server.bind or ""):
        problems.append((("app_server", "bind"), f"{spec.app_server.bind}: the app server listens on an IP "
                         "address, localhost or a unix socket, not a host name"))
    if not named:
        return problems
    if grammar.nginx_syntax_version(spec.nginx.version) < NGINX_RESOLVE_SINCE:
        return problems + [(loc, f"{address}: nginx before 1.27.3 resolves host names only when it starts; "
                                 "use an IP address, localhost or a unix socket, or nginx.version 1.27.3 or "
                                 "newer with nginx.resolver") for loc, address in named]
    if not spec.nginx.resolver:
        problems.append((("nginx", "resolver"), f"required: {named[0][1]} names a host, which nginx resolves "
                         "at run time through these DNS servers (like [127.0.0.53] for systemd-resolved)"))
    return problems


def _is_named_host(address: str) -> bool:
    if address.startswith("unix:"):
        return False
    host, _ = grammar.split_address(address)
    if host == "localhost" or host.startswith("["):
        return False
    return not _is_ip(host)


def _is_ip(host: str) -> bool:
    try:
        grammar.check_ip_or_network(host)
    except ValueError:
        return False
    return True


def _check_shared_media(spec: Spec) -> list[Problem]:
    """Each upload lands on the app host that took the POST: several hosts need one shared media root."""
    if len(remote_servers(spec)) > 1 and not spec.media.shared:
        return [(("media", "shared"), "upstream.servers lists several app hosts, so uploads land on whichever "
                                      "host took the request: put media.root on a file system shared by every "
                                      "app host and the nginx host (e.g. NFS), then set media.shared: true")]
    return []


def _check_shared_database(spec: Spec) -> list[Problem]:
    """SQLite is a file on one host: app hosts that each had their own would each have their own data."""
    db = spec.django.database
    if len(remote_servers(spec)) > 1 and db is not None and db.engine == "sqlite":
        return [(("django", "database", "engine"), "upstream.servers lists several app hosts, and SQLite keeps the "
                                                   "database in a file on each of them (each host its own users, "
                                                   "sessions and orders; migrations run on one): use postgresql or "
                                                   "mysql on a server every app host reaches")]
    return []


CHECKS = (_check_names, _check_django, _check_app_server, _check_upstream, _check_tls, _check_files,
        _check_shared_media, _check_shared_database, _check_locations, _check_background, _check_programs, _check_app_process, _check_nginx)
