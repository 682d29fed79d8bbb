"""Defaults derived from other fields, filled in after the models validate."""

from __future__ import annotations


from scaffold import grammar
from scaffold.spec.facts import remote_servers
from scaffold.spec.kinds import INTERFACES
from scaffold.spec.models import Spec
from scaffold.spec.values import Problem

LOOPBACK = ("127.0.0.1", "::1")
STOP_MARGIN = 10
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
_CACHE_LOCATIONS = {"redis": "redis://127.0.0.1:6379/0", "memcached": "127.0.0.1:11211"}
# What each background preset runs (django-tasks-db's README, "Worker").
PRESET_COMMANDS = {"db_worker": "manage.py db_worker"}
ACCOUNTS_LOGIN = "/accounts/login/"  # django.contrib.auth's LOGIN_URL default





def derive_django(spec: Spec) -> None:
    d, name = spec.django, spec.name
    d.settings_module = d.settings_module or f"{d.project}.settings_production"
    d.base_settings = d.base_settings or f"{d.project}.settings"
    d.root = d.root or f"/srv/{name}/app"
    d.venv = d.venv or f"/srv/{name}/venv"
    d.user = d.user or name
    d.group = d.group or name
    if d.database is not None and d.database.engine != "sqlite":
        db = d.database
        db.name = db.name or name
        db.user = db.user or name
        db.host = db.host or "127.0.0.1"
        db.port = db.port or _DEFAULT_PORTS[db.engine]
    elif d.database is not None:
        d.database.name = d.database.name or f"/var/lib/{name}/db.sqlite3"
    if d.email_relay is None:
        d.email_relay = "external" if d.email_host else "postfix"
    if d.cache is not None and d.cache.location is None:
        d.cache.location = _CACHE_LOCATIONS.get(d.cache.backend, name)


def derive_app_server(spec: Spec) -> None:
    a = spec.app_server
    if a.interface is None:
        a.interface = INTERFACES[a.kind][0]
    if a.bind is None:
        a.bind = _default_bind(spec)
    if a.trusted_proxies is None and not remote_servers(spec):
        a.trusted_proxies = list(LOOPBACK)
    if a.stop_timeout is None:
        # Room for the master to exit after its workers used all of graceful_timeout.
        a.stop_timeout = a.graceful_timeout + STOP_MARGIN


def _default_bind(spec: Spec) -> str:
    servers = spec.upstream.servers if spec.upstream else []
    unix = [s.address for s in servers if s.address.startswith("unix:")]
    tcp = [grammar.split_address(s.address) for s in servers if not s.address.startswith("unix:")]
    if unix and not tcp:
        return unix[0]
    if tcp:
        host, port = tcp[0]
        return f"[::]:{port}" if host.startswith("[") else f"0.0.0.0:{port}"
    return f"unix:{spec.paths.run_dir}/app.sock"


def derive_tls(spec: Spec) -> None:
    t = spec.tls
    if t.mode == "letsencrypt":
        live = f"/etc/letsencrypt/live/{spec.domain}"
        t.certificate, t.certificate_key = f"{live}/fullchain.pem", f"{live}/privkey.pem"


def derive_paths(spec: Spec) -> None:
    p = spec.paths
    p.run_dir = p.run_dir or f"/run/{spec.name}"
    p.log_dir = p.log_dir or f"/var/log/{spec.name}"
    spec.static.root = spec.static.root or f"/srv/{spec.name}/static"
    spec.media.root = spec.media.root or f"/srv/{spec.name}/media"
    protected = spec.media.protected
    if protected is not None:
        protected.root = protected.root or f"/srv/{spec.name}/protected"


def derive_programs(spec: Spec) -> None:
    """A preset's command, when the entry names none."""
    for program in spec.background:
        if program.command is None and program.preset is not None:
            program.command = PRESET_COMMANDS[program.preset]


def derive_nginx(spec: Spec) -> None:
    """The login paths to rate-limit follow the admin's path."""
    limit = spec.nginx.login_rate_limit
    if limit is not None and limit.paths is None:
        limit.paths = [f"{spec.nginx.admin.path}login/", ACCOUNTS_LOGIN]


def derive_hosts(spec: Spec) -> list[Problem]:
    """app defaults to each upstream server's host; singleton to the first app host; ansible to several hosts."""
    h, servers = spec.hosts, spec.upstream.servers if spec.upstream else []
    tcp = [grammar.split_address(s.address)[0].strip("[]") for s in servers if not s.address.startswith("unix:")]
    if h.app is None:
        h.app = tcp if len(tcp) == len(servers) and tcp else ["localhost"]
    elif servers and len(h.app) != len(servers):
        return [(("hosts", "app"), f"lists {len(h.app)} host(s) for {len(servers)} upstream.servers: "
                                   "give one per server, in the same order")]
    if h.ansible is None:
        h.ansible = len({*h.nginx, *h.app}) > 1
    if h.singleton is None:
        h.singleton = h.app[0]
    elif h.singleton not in h.app:
        return [(("hosts", "singleton"), f"{h.singleton!r} is not one of hosts.app ({', '.join(h.app)})")]
    return []
