"""The djdeploy spec, version 1: pydantic models, derived defaults and cross-field rules."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from scaffold import grammar, messages
from scaffold.errors import SpecError
from scaffold.source import SourceMap

Slug = Annotated[str, AfterValidator(grammar.check_slug)]
Hostname = Annotated[str, AfterValidator(grammar.check_hostname)]
AbsPath = Annotated[str, AfterValidator(grammar.check_abs_path)]
UrlPath = Annotated[str, AfterValidator(grammar.check_url_path)]
UnixName = Annotated[str, AfterValidator(grammar.check_unix_name)]
Module = Annotated[str, AfterValidator(grammar.check_module)]
Email = Annotated[str, AfterValidator(grammar.check_email)]
NginxSize = Annotated[str, AfterValidator(grammar.check_nginx_size)]
NginxTime = Annotated[str, AfterValidator(grammar.check_nginx_time)]
Address = Annotated[str, AfterValidator(grammar.check_address)]
InventoryHost = Annotated[str, AfterValidator(grammar.check_inventory_host)]
IpOrNetwork = Annotated[str, AfterValidator(grammar.check_ip_or_network)]
Line = Annotated[str, AfterValidator(grammar.check_line)]
DjangoCheckId = Annotated[str, AfterValidator(grammar.check_django_check_id)]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[int, Field(ge=1, le=86400)]


def _workers(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError('must be an integer >= 1 or "auto" (2 x CPUs + 1, computed at start-up)')


def _version_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise PydanticCustomError("quoted_text", 'write the version as a quoted string, like "{value}"',
                                  {"value": value})
    if not isinstance(value, str):
        raise ValueError('must be a version string like "1.22"')
    return grammar.check_nginx_version(value)


def _yaml_off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `off` as false; where "off" is an allowed value, that is what it meant."""
    return "off" if value is False else value


def _section_off(value: Any) -> Any:
    """`tls: off` (or false, or "off") is short for `tls: {mode: off}`."""
    return {"mode": "off"} if value is False or value == "off" else value


def _schema(replacement: dict[str, Any]) -> Any:
    """A json_schema_extra that states a custom-validated type's JSON Schema (keeps default/title)."""
    def replace(schema: dict[str, Any]) -> None:
        for key in ("anyOf", "type"):
            schema.pop(key, None)
        schema.update(replacement)
    return replace


Workers = Annotated[
    Union[int, str],
    PlainValidator(_workers),
    Field(json_schema_extra=_schema({"oneOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}]})),
]
NginxVersion = Annotated[
    str,
    PlainValidator(_version_text),
    Field(json_schema_extra=_schema({"type": "string", "pattern": r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"})),
]


class _Section(BaseModel):
    """Base of every spec section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=False)


class Database(_Section):
    """DATABASES['default']; the password is a secret and never appears here."""

    engine: Literal["postgresql", "mysql", "sqlite"] = "postgresql"
    name: Optional[str] = Field(None, description="Database name; for sqlite an absolute file path. Default: <name>, or <root>/../db.sqlite3 for sqlite.")
    user: Optional[UnixName] = Field(None, description="Default: <name> (not used by sqlite).")
    host: Optional[str] = Field(None, description="Host name, IP address, or the absolute path of a unix socket directory. Default: 127.0.0.1.")
    port: Optional[Port] = Field(None, description="Default: 5432 (postgresql), 3306 (mysql).")
    conn_max_age: int = Field(60, ge=0, le=3600, description="Seconds a WSGI worker keeps a connection (CONN_MAX_AGE); ASGI always uses 0.")


class Cache(_Section):
    """CACHES['default']."""

    backend: Literal["redis", "memcached", "locmem"] = "redis"
    location: Optional[Line] = Field(None, description="redis://HOST:PORT/DB, HOST:PORT or unix:/PATH for memcached, a name for locmem.")


class Django(_Section):
    """The Django project and where it lives on the host."""

    project: Module = Field(description="Import package holding wsgi.py / asgi.py.")
    settings_module: Optional[Module] = Field(None, description="Default: <project>.settings_production.")
    base_settings: Optional[Module] = Field(None, description="Default: <project>.settings.")
    root: Optional[AbsPath] = Field(None, description="Directory holding manage.py. Default: /srv/<name>/app.")
    venv: Optional[AbsPath] = Field(None, description="Virtualenv. Default: /srv/<name>/venv.")
    user: Optional[UnixName] = Field(None, description="Unix user the app runs as. Default: <name>.")
    group: Optional[UnixName] = Field(None, description="Unix group the app runs as. Default: <name>.")
    database: Optional[Database] = None
    cache: Optional[Cache] = None
    admins: list[Email] = Field(default_factory=list, description="Receive 500 error mails.")
    email_host: Optional[Hostname] = Field(None, description="SMTP relay for outgoing mail. Default: localhost.")
    email_port: Port = Field(25, description="SMTP port: 25, 465 (implicit TLS) or 587 (STARTTLS).")
    email_user: Optional[Line] = Field(None, description="SMTP user name; its password is the secret EMAIL_HOST_PASSWORD.")
    server_email: Optional[Email] = Field(None, description="From address of error mails. Default: root@<domain>.")
    silenced_checks: list[DjangoCheckId] = Field(default_factory=list, description="Extra Django system check ids to silence (SILENCED_SYSTEM_CHECKS); ids in Django's security, async, caches and mail namespaces must exist.")


class AppServer(_Section):
    """gunicorn or uvicorn, as it runs on each app host."""

    kind: Literal["gunicorn", "uvicorn"] = "gunicorn"
    interface: Optional[Literal["wsgi", "asgi"]] = Field(None, description="Default: wsgi for gunicorn, asgi for uvicorn.")
    workers: Workers = "auto"
    threads: int = Field(1, ge=1, le=256, description="gunicorn only; > 1 selects the gthread worker.")
    bind: Optional[Address] = Field(None, description="unix:/ABS/PATH or HOST:PORT. Default: unix:<run_dir>/app.sock, or TCP on the upstream servers' port.")
    timeout: Seconds = Field(30, description="Seconds a request may take before the worker is restarted.")
    graceful_timeout: Seconds = Field(30, description="Seconds workers get to finish requests on stop or reload.")
    keepalive: int = Field(5, ge=0, le=3600, description="Seconds an idle connection from nginx stays open.")
    max_requests: int = Field(1000, ge=0, description="gunicorn: restart a worker after this many requests (0 = never), with 10% jitter. Not used by uvicorn.")
    trusted_proxies: Optional[list[IpOrNetwork]] = Field(None, description="Addresses nginx connects from. Default: loopback.")
    stop_timeout: Optional[Seconds] = Field(None, description="Seconds the process manager waits after the stop signal before SIGKILL; must exceed graceful_timeout. Default: graceful_timeout + 10.")
    limit_concurrency: int = Field(1000, ge=1, le=100000, description="Connections one process serves at once, idle keep-alive ones included: uvicorn's limit_concurrency (more get 503), gunicorn gthread's worker_connections.")
    socket_group: UnixName = Field("www-data", description="The group nginx runs as; only it (and the app user) may enter paths.run_dir and connect to the unix socket.")


class UpstreamServer(_Section):
    """One app host in the nginx upstream group."""

    address: Address
    weight: Optional[int] = Field(None, ge=1, le=1000)
    max_fails: Optional[int] = Field(None, ge=0, le=1000)
    fail_timeout: Optional[NginxTime] = None
    max_conns: Optional[int] = Field(None, ge=0)
    backup: bool = False
    down: bool = False


class Upstream(_Section):
    """Load balancing over several app hosts."""

    method: Literal["round_robin", "least_conn", "ip_hash", "hash", "random"] = "round_robin"
    hash_key: Optional[Annotated[str, AfterValidator(grammar.check_nginx_variable_expr)]] = None
    keepalive: int = Field(16, ge=0, le=10000, description="Idle keep-alive connections per nginx worker; 0 = off.")
    servers: list[UpstreamServer] = Field(default_factory=list, min_length=1)


class Tls(_Section):
    """HTTPS at nginx."""

    mode: Annotated[Literal["off", "files", "letsencrypt"], BeforeValidator(_yaml_off)] = "letsencrypt"
    certificate: Optional[AbsPath] = None
    certificate_key: Optional[AbsPath] = None
    profile: Literal["intermediate", "modern"] = "intermediate"
    hsts_seconds: int = Field(63072000, ge=0)
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False


class Static(_Section):
    """STATIC_URL and STATIC_ROOT; nginx serves them."""

    url: UrlPath = "/static/"
    root: Optional[AbsPath] = Field(None, description="Default: /srv/<name>/static.")


class Media(_Section):
    """MEDIA_URL and MEDIA_ROOT; nginx serves them and never executes them."""

    url: UrlPath = "/media/"
    root: Optional[AbsPath] = Field(None, description="Default: /srv/<name>/media.")
    shared: bool = Field(False, description="root is one shared file system (e.g. NFS) on every app host and nginx host; required for uploads when upstream.servers lists several hosts.")


class RateLimit(_Section):
    """A request rate limit for login paths."""

    paths: list[UrlPath] = Field(default_factory=lambda: ["/admin/login/", "/accounts/login/"])
    rate: Annotated[str, Field(pattern=r"^[1-9][0-9]*r/[sm]$")] = "10r/m"
    burst: int = Field(5, ge=0, le=10000)


class Nginx(_Section):
    """The nginx the configs are written for, and its ports."""

    version: NginxVersion = "1.22"
    http_port: Port = 80
    https_port: Port = 443
    client_max_body_size: NginxSize = "10m"
    ipv6: bool = Field(True, description="Listen on IPv6 beside IPv4.")
    real_ip_from: list[IpOrNetwork] = Field(default_factory=list, description="Load balancers in front of nginx whose X-Forwarded-For is trusted (set_real_ip_from).")
    login_rate_limit: Optional[RateLimit] = None


class Background(_Section):
    """A long-running (or scheduled) program beside the web app."""

    name: Slug
    command: Line = Field(description="First word is an executable in <venv>/bin, or manage.py.")
    numprocs: int = Field(1, ge=1, le=64)
    schedule: Optional[Line] = Field(None, description="systemd OnCalendar= expression: run periodically instead of continuously (systemd).")
    stop_signal: Literal["TERM", "INT", "QUIT", "HUP"] = "TERM"
    stop_timeout: Seconds = Field(60, description="Seconds to wait after stop_signal before SIGKILL.")
    singleton: Optional[bool] = Field(None, description="Runs on exactly one host (a scheduler such as celery beat): numprocs 1, its own supervisor file, enabled on one host only. Default: true for `celery ... beat`.")


class Hosts(_Section):
    """Where each part runs: the hosts of the Ansible inventory."""

    nginx: list[InventoryHost] = Field(default_factory=lambda: ["localhost"], min_length=1, description="The nginx host(s), the load balancer. Default: localhost (this host).")
    app: Optional[list[InventoryHost]] = Field(None, min_length=1, description="How Ansible reaches each app host, in the order of upstream.servers. Default: the host part of each upstream.servers address.")
    singleton: Optional[InventoryHost] = Field(None, description="The app host that runs the singleton background programs (celery beat). Default: the first app host.")
    ssh_user: Optional[UnixName] = Field(None, description="The SSH user Ansible logs in as. Default: Ansible's own.")


class Paths(_Section):
    """Run-time directories on the host."""

    run_dir: Optional[AbsPath] = Field(None, description="Sockets, pid files. Default: /run/<name>.")
    log_dir: Optional[AbsPath] = Field(None, description="Default: /var/log/<name>.")
    nginx_log_dir: AbsPath = "/var/log/nginx"


class Spec(_Section):
    """A djdeploy spec, version 1."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"$id": "https://example.invalid/djdeploy.schema.json"},
    )

    version: Literal[1]
    name: Slug
    domain: Hostname
    aliases: list[Hostname] = Field(default_factory=list)
    django: Django
    app_server: AppServer = Field(default_factory=AppServer)
    upstream: Optional[Upstream] = None
    tls: Annotated[Tls, BeforeValidator(_section_off)] = Field(default_factory=Tls)
    static: Static = Field(default_factory=Static)
    media: Media = Field(default_factory=Media)
    nginx: Nginx = Field(default_factory=Nginx)
    process_manager: Literal["supervisor", "systemd", "both"] = "supervisor"
    background: list[Background] = Field(default_factory=list)
    hosts: Hosts = Field(default_factory=Hosts)
    paths: Paths = Field(default_factory=Paths)


WEB_PROGRAM = "web"
LOOPBACK = ("127.0.0.1", "::1")
STOP_MARGIN = 10
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
_CACHE_LOCATIONS = {"redis": "redis://127.0.0.1:6379/0", "memcached": "127.0.0.1:11211"}

Problem = tuple[tuple[Union[str, int], ...], str]


def resolve_spec(spec: Spec) -> list[Problem]:
    """Fill the defaults SPEC.md derives from other fields, then check cross-field rules.

    Returns the problems found, each as (field path, message); the spec is
    complete only when the list is empty.
    """
    problems = _check_explicit_tls(spec.tls)
    _derive_django(spec)
    _derive_paths(spec)
    _derive_app_server(spec)
    _derive_tls(spec)
    problems.extend(_derive_hosts(spec))
    for check in _CHECKS:
        problems.extend(check(spec))
    return problems


def _derive_django(spec: Spec) -> None:
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
    if d.cache is not None and d.cache.location is None:
        d.cache.location = _CACHE_LOCATIONS.get(d.cache.backend, name)


def _derive_app_server(spec: Spec) -> None:
    a = spec.app_server
    if a.interface is None:
        a.interface = "asgi" if a.kind == "uvicorn" else "wsgi"
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


def _derive_tls(spec: Spec) -> None:
    t = spec.tls
    if t.mode == "letsencrypt":
        live = f"/etc/letsencrypt/live/{spec.domain}"
        t.certificate, t.certificate_key = f"{live}/fullchain.pem", f"{live}/privkey.pem"


def _derive_paths(spec: Spec) -> None:
    p = spec.paths
    p.run_dir = p.run_dir or f"/run/{spec.name}"
    p.log_dir = p.log_dir or f"/var/log/{spec.name}"
    spec.static.root = spec.static.root or f"/srv/{spec.name}/static"
    spec.media.root = spec.media.root or f"/srv/{spec.name}/media"


def _derive_hosts(spec: Spec) -> list[Problem]:
    """app defaults to each upstream server's host; singleton to the first app host."""
    h, servers = spec.hosts, spec.upstream.servers if spec.upstream else []
    tcp = [grammar.split_address(s.address)[0].strip("[]") for s in servers if not s.address.startswith("unix:")]
    if h.app is None:
        h.app = tcp if len(tcp) == len(servers) and tcp else ["localhost"]
    elif servers and len(h.app) != len(servers):
        return [(("hosts", "app"), f"lists {len(h.app)} host(s) for {len(servers)} upstream.servers: "
                                   "give one per server, in the same order")]
    if h.singleton is None:
        h.singleton = h.app[0]
    elif h.singleton not in h.app:
        return [(("hosts", "singleton"), f"{h.singleton!r} is not one of hosts.app ({', '.join(h.app)})")]
    return []


def _check_shared_media(spec: Spec) -> list[Problem]:
    """Each upload lands on the app host that took the POST: several hosts need one shared media root."""
    if len(remote_servers(spec)) > 1 and not spec.media.shared:
        return [(("media", "shared"), "upstream.servers lists several app hosts, so uploads land on whichever "
                                      "host took the request: put media.root on a file system shared by every "
                                      "app host and the nginx host (e.g. NFS), then set media.shared: true")]
    return []


def remote_servers(spec: Spec) -> list[UpstreamServer]:
    """Upstream servers on another host (TCP to a non-loopback address)."""
    servers = spec.upstream.servers if spec.upstream else []
    return [s for s in servers if _is_remote(s.address)]


def _is_remote(address: str) -> bool:
    if address.startswith("unix:"):
        return False
    host, _ = grammar.split_address(address)
    return not (host == "localhost" or host.startswith("127.") or host == "[::1]")


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
    return problems


def _check_db_values(db: Database) -> list[Problem]:
    problems: list[Problem] = []
    if not grammar.IDENTIFIER_LIKE.fullmatch(db.name or ""):
        problems.append((("django", "database", "name"), "use letters, digits, '_' or '-' only"))
    host = db.host or ""
    checker = grammar.check_abs_path if host.startswith("/") else grammar.check_host
    try:
        checker(host)
    except ValueError as e:
        problems.append((("django", "database", "host"), str(e)))
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
    if a.kind == "uvicorn" and a.interface == "wsgi":
        problems.append((("app_server", "interface"), "uvicorn serves ASGI only; use kind: gunicorn for WSGI"))
    if a.kind == "uvicorn" and a.max_requests and "max_requests" in a.model_fields_set:
        problems.append((("app_server", "max_requests"),
                         "uvicorn processes are not recycled (they would all exit together under load); "
                         "use kind: gunicorn with interface: asgi to recycle workers"))
    if a.threads > 1 and (a.kind == "uvicorn" or a.interface == "asgi"):
        problems.append((("app_server", "threads"), "threads is for gunicorn's WSGI gthread worker only"))
    if a.graceful_timeout > 600:
        problems.append((("app_server", "graceful_timeout"), "must be at most 600 seconds"))
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
    if a.kind == "uvicorn" and a.workers == "auto":
        problems.append((("app_server", "workers"),
                         "uvicorn runs one process per worker, started by the process manager, which needs a "
                         'number: set workers: N ("auto" is computed at start-up by gunicorn only)'))
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


def _check_explicit_tls(t: Tls) -> list[Problem]:
    """Rules about what the user wrote, checked before defaults are filled in."""
    if t.mode == "letsencrypt" and {"certificate", "certificate_key"} & t.model_fields_set:
        return [(("tls", "certificate"),
                 "derived from the domain with mode: letsencrypt; use mode: files for your own paths")]
    return []


def _check_files(spec: Spec) -> list[Problem]:
    problems: list[Problem] = []
    if spec.static.url == spec.media.url:
        problems.append((("media", "url"), "must differ from static.url"))
    static_root, media_root = spec.static.root or "", spec.media.root or ""
    if _nested(static_root, media_root):
        problems.append((("media", "root"),
                         "must be outside static.root and not contain it (uploads must never be served as code)"))
    if spec.nginx.http_port == spec.nginx.https_port:
        problems.append((("nginx", "https_port"), "must differ from nginx.http_port"))
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



# Characters an OnCalendar= expression uses (systemd.time(7)); nothing systemd reads as a specifier.
_CALENDAR = re.compile(r"^[A-Za-z0-9 *:,./~+-]+$")
# supervisor's ini parser starts an inline comment at ';' or '#' after whitespace (supervisor 4.3.0
# UnhosedConfigParser, inline_comment_prefixes); no quoting escapes it.
_SUPERVISOR_COMMENT = re.compile(r"\s[;#]")
_EXECUTABLE = re.compile(r"^[A-Za-z0-9._+-]+$")
HOME_DIRS = ("/home", "/root", "/run/user")


def is_celery_beat(words: Sequence[str]) -> bool:
    """Whether a background command runs the celery beat scheduler."""
    return bool(words) and words[0] == "celery" and "beat" in words[1:]


def is_singleton(program: Background) -> bool:
    """Whether a background program must run on exactly one host."""
    if program.singleton is not None:
        return program.singleton
    return is_celery_beat(_split_command(program.command) or [])


def _split_command(command: str) -> list[str] | None:
    try:
        return shlex.split(command)
    except ValueError:
        return None


def _check_programs(spec: Spec) -> list[Problem]:
    """Rules the process managers need: commands they can run, schedules they can express."""
    problems: list[Problem] = []
    for i, program in enumerate(spec.background):
        problems.extend(((("background", i) + loc), msg) for loc, msg in _program_problems(spec, program))
    if spec.process_manager != "supervisor":
        problems.extend(_check_home_paths(spec))
    return problems


def _program_problems(spec: Spec, program: Background) -> list[Problem]:
    words = _split_command(program.command)
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
    if spec.process_manager != "systemd" and _SUPERVISOR_COMMENT.search(program.command):
        problems.append((("command",), "supervisor reads ';' or '#' after a space as a comment"))
    return problems + _schedule_problems(spec, program)


def _schedule_problems(spec: Spec, program: Background) -> list[Problem]:
    if program.schedule is None:
        return []
    if spec.process_manager == "supervisor":
        return [(("schedule",), "supervisor cannot run a program periodically; use process_manager: "
                 "systemd or both (a systemd timer), or a scheduler such as celery beat")]
    if not _CALENDAR.match(program.schedule):
        return [(("schedule",), f"{program.schedule!r} is not a systemd OnCalendar expression "
                 "(like daily, hourly or Mon *-*-* 04:00:00)")]
    return []


def _check_home_paths(spec: Spec) -> list[Problem]:
    """The hardened units hide home directories (ProtectHome=yes), so the app must live elsewhere."""
    fields = {("django", "root"): spec.django.root, ("django", "venv"): spec.django.venv,
              ("static", "root"): spec.static.root, ("media", "root"): spec.media.root}
    return [(loc, f"{path} is in a home directory, which the systemd units hide (ProtectHome=yes); "
                  "use /srv or /opt") for loc, path in fields.items()
            if any(_nested(path or "", home) for home in HOME_DIRS)]

# nginx CHANGES 1.19.4: ssl_reject_handshake, which the catch-all default server is built on.
NGINX_OLDEST = (1, 19, 4)


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
    return problems + _check_login_paths(spec) + _check_upstream_hosts(spec)


def _check_login_paths(spec: Spec) -> list[Problem]:
    limit = spec.nginx.login_rate_limit
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, path in enumerate(limit.paths if limit else []):
        where = ("nginx", "login_rate_limit", "paths", i)
        if path in seen:
            problems.append((where, f"{path!r} is listed twice"))
        for field, url in (("static.url", spec.static.url), ("media.url", spec.media.url)):
            if path.startswith(url):
                problems.append((where, f"{path!r} is inside {field}, which nginx serves from files"))
        seen.add(path)
    return problems


def _check_upstream_hosts(spec: Spec) -> list[Problem]:
    """nginx resolves a host name once, at start-up (re-resolving needs nginx 1.27.3 and a resolver)."""
    servers = spec.upstream.servers if spec.upstream else []
    named = [(("upstream", "servers", i, "address"), s.address) for i, s in enumerate(servers)]
    if not servers:
        named = [(("app_server", "bind"), spec.app_server.bind or "")]
    return [(loc, f"{address}: nginx resolves host names only when it starts; use an IP address, "
                  "localhost or a unix socket") for loc, address in named if _is_named_host(address)]


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


_CHECKS = (_check_names, _check_django, _check_app_server, _check_upstream, _check_tls, _check_files,
           _check_shared_media, _check_background, _check_programs, _check_app_process, _check_nginx)


def parse_spec(text: str, *, source: str = "<spec>") -> Spec:
    """Parse and validate spec YAML; raise SpecError listing every problem with its field and line."""
    from scaffold.source import YamlProblem, read_yaml  # PyYAML loads only when a file is read

    try:
        data, where = read_yaml(text)
    except YamlProblem as e:
        line = f" (line {e.line})" if e.line else ""
        raise SpecError(source, [f"{e}{line}"]) from None
    return validate_data(data, source=source, where=where)


def load_spec(path: Path) -> Spec:
    """Read the spec file at *path* and parse it."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(str(path), [f"cannot read the file: {e.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(str(path), ["the file is not UTF-8 text"]) from None
    return parse_spec(text, source=str(path))


def validate_data(data: Any, *, source: str = "<spec>", where: SourceMap | None = None) -> Spec:
    """Validate already-parsed data (the wizard uses this too); raise SpecError on any problem."""
    where = where or SourceMap()
    if not isinstance(data, dict):
        raise SpecError(source, ["(top level): the spec must be a mapping of keys, starting with `version: 1`"])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        raise SpecError(source, messages.describe_errors(e.errors(), data, where, Spec)) from None
    cross = resolve_spec(spec)
    if cross:
        raise SpecError(source, [messages.format_problem(loc, msg, where) for loc, msg in cross])
    return spec


def schema_json() -> str:
    """The JSON Schema of the spec, as committed in schemas/djdeploy.schema.json."""
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", **Spec.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
