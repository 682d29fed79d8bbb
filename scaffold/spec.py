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

WEB_PROGRAM = "web"
# nginx CHANGES 1.19.4: ssl_reject_handshake, which the catch-all default server is built on.
NGINX_OLDEST = (1, 19, 4)


class _JsonSchema:
    """Annotation metadata: the JSON Schema of a type, stated beside the validator it mirrors.

    pydantic asks metadata for ``__get_pydantic_json_schema__`` (the protocol WithJsonSchema
    uses), so this needs no import of pydantic.json_schema when a spec is only validated.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return json.loads(json.dumps(self.schema))


class _OrAlso:
    """Annotation metadata: the type's own JSON Schema, or also *alternative* (a shorthand)."""

    def __init__(self, alternative: dict[str, Any]) -> None:
        self.alternative = alternative

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [handler(core_schema), dict(self.alternative)]}


def _text(check: Any, name: str) -> Any:
    """A string type checked by grammar.*check*, with the JSON Schema of the same grammar."""
    return Annotated[str, AfterValidator(check), _JsonSchema(grammar.SCHEMAS[name])]


Slug = _text(grammar.check_slug, "slug")
Hostname = _text(grammar.check_hostname, "hostname")
AbsPath = _text(grammar.check_abs_path, "abs_path")
UrlPath = _text(grammar.check_url_path, "url_path")
UnixName = _text(grammar.check_unix_name, "unix_name")
Module = _text(grammar.check_module, "module")
Email = _text(grammar.check_email, "email")
NginxSize = _text(grammar.check_nginx_size, "nginx_size")
NginxTime = _text(grammar.check_nginx_time, "nginx_time")
IpOrNetwork = _text(grammar.check_ip_or_network, "ip_or_network")
Line = _text(grammar.check_line, "line")
DjangoCheckId = _text(grammar.check_django_check_id, "django_check_id")
HashKey = _text(grammar.check_nginx_variable_expr, "nginx_variable_expr")
InventoryHost = _text(grammar.check_inventory_host, "inventory_host")
DbHost = Annotated[str, AfterValidator(grammar.check_db_host), _JsonSchema(grammar.SCHEMAS["db_host"])]
# An address nginx proxies to: _check_upstream_hosts refuses host names other than localhost there
# (in app_server.bind too, which must accept every upstream address), so the schema does too.
ProxiedAddress = Annotated[str, AfterValidator(grammar.check_address), _JsonSchema(grammar.SCHEMAS["proxied_address"])]
# A network that is not every address (x/0): what trusted_proxies and real_ip_from may list.
TrustedNetwork = Annotated[str, AfterValidator(grammar.check_ip_or_network),
                           _JsonSchema({"allOf": [grammar.SCHEMAS["ip_or_network"], {"not": {"pattern": "/0$"}}]})]


def _whole_number(value: Any) -> Any:
    """YAML's integers, and the same numbers quoted (as YAML 1.2 tools and templating write them)."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if not grammar.INTEGER_TEXT.fullmatch(value):
            raise ValueError(f"must be a whole number written with digits only, like 8080 (not {value!r})")
        return int(value)
    return value


def _whole(low: int, high: int | None = None) -> Any:
    """A whole number from *low* to *high* (no limit when None), quoted or not."""
    return Annotated[int, BeforeValidator(_whole_number), Field(ge=low, le=high),
                     _JsonSchema(grammar.integer_schema(low, high))]


# The words YAML 1.1 reads as booleans, which a YAML 1.2 reader (editors, check-jsonschema)
# leaves as strings: a flag accepts them either way, and nothing else.
_FLAG_WORDS = {word: value for base, value in (("true", True), ("yes", True), ("on", True), ("y", True),
                                               ("false", False), ("no", False), ("off", False), ("n", False))
               for word in (base, base.capitalize(), base.upper())}


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _FLAG_WORDS:
        return _FLAG_WORDS[value]
    raise ValueError("must be true or false")


Flag = Annotated[bool, BeforeValidator(_flag), _JsonSchema(
    {"anyOf": [{"type": "boolean"}, {"enum": sorted(_FLAG_WORDS)}]})]
Port = _whole(1, 65535)
Seconds = _whole(1, 86400)
Count = _whole(0)


def _workers(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    try:
        number = _whole_number(value)
    except ValueError:
        number = None
    if isinstance(number, int) and number >= 1:
        return number
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


Workers = Annotated[Union[int, str], PlainValidator(_workers), _JsonSchema(
    {"anyOf": [*grammar.integer_schema(1, None)["anyOf"], {"const": "auto"}]})]
NginxVersion = Annotated[str, PlainValidator(_version_text), _JsonSchema(grammar.pattern_schema(
    grammar.version_at_least_pattern(*NGINX_OLDEST), 'a quoted nginx version like "1.22", 1.19.4 or newer'))]
SpecVersion = Annotated[Literal[1], BeforeValidator(_whole_number), _JsonSchema(
    {"anyOf": [{"const": 1}, {"const": "1"}]})]
TlsMode = Annotated[Literal["off", "files", "letsencrypt"], BeforeValidator(_yaml_off), _JsonSchema(
    {"enum": ["off", "files", "letsencrypt", False]})]


def _section(model: Any, description: str) -> Any:
    """A section with defaults for all its fields: omitted, it is the empty mapping."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


def _list(description: str, default: Any = list, unique: bool = False, **constraints: Any) -> Any:
    """A list field; its JSON Schema states the default the factory makes."""
    extra: dict[str, Any] = {"default": default()}
    if unique:
        extra["uniqueItems"] = True
    return Field(default_factory=default, description=description, json_schema_extra=extra, **constraints)


def _when(field: str, condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """An if/then for a rule between fields: when *field* is given and matches *condition*."""
    return {"if": {"required": [field], "properties": {field: condition}}, "then": then}


def _fields(**schemas: Any) -> dict[str, Any]:
    return {"properties": schemas}


_TRUE = {"enum": [True, *sorted(w for w, v in _FLAG_WORDS.items() if v)]}
_FALSE = {"enum": [False, *sorted(w for w, v in _FLAG_WORDS.items() if not v)]}
_ONE = grammar.integer_schema(1, 1)
# _check_home_paths: a path in (or above) a home directory that ProtectHome=yes hides.
_NOT_HOME = {"not": {"pattern": "^(?:/home|/root|/run/user)(?:/|$)|^/run/*$"}}
_LOCAL_ADDRESS = "^(?:unix:|localhost:|127\\.|\\[::1\\]:)"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


class _Section(BaseModel):
    """Base of every spec section: unknown keys are errors; no silent type conversions.

    strict: pydantic's own conversions (bytes to str, "5 432" or True to int, "t" to bool) are
    off; the few that a spec needs are the validators above, which the JSON Schema states.
    """

    model_config = ConfigDict(extra="forbid", validate_default=False, strict=True)


class Database(_Section):
    """DATABASES['default']; the password is a secret and never appears here."""

    model_config = ConfigDict(json_schema_extra={
        **_when("engine", {"const": "sqlite"}, {
            **_fields(name=_nullable(grammar.SCHEMAS["abs_path"])),
            "not": {"anyOf": [{"required": ["user"]}, {"required": ["host"]}, {"required": ["port"]}]}}),
        "else": _fields(name=_nullable(grammar.SCHEMAS["identifier"])),
    })

    engine: Literal["postgresql", "mysql", "sqlite"] = Field("postgresql", description="Django database backend.")
    name: Optional[Annotated[str, Field(min_length=1)]] = Field(None, description="Database name (letters, digits, '_', '-'); for sqlite an absolute file path. Default: <name>, or /var/lib/<name>/db.sqlite3 for sqlite.",
                                json_schema_extra={"anyOf": [grammar.SCHEMAS["identifier"], grammar.SCHEMAS["abs_path"], {"type": "null"}]})
    user: Optional[UnixName] = Field(None, description="Database user. Default: <name> (not used by sqlite).")
    host: Optional[DbHost] = Field(None, description="Host name, IP address, or the absolute path of a unix socket directory. Default: 127.0.0.1 (not used by sqlite).")
    port: Optional[Port] = Field(None, description="Default: 5432 (postgresql), 3306 (mysql); not used by sqlite.")
    conn_max_age: _whole(0, 3600) = Field(60, description="Seconds a WSGI worker keeps a connection (CONN_MAX_AGE); ASGI always uses 0.")
    statement_timeout: Optional[_whole(0, 86400)] = Field(None, description="Seconds one SQL statement may run before the server cancels it (postgresql statement_timeout; mysql: the client's read/write timeout); 0 = no limit. Default: app_server.timeout.")
    pool_max_size: _whole(1, 1000) = Field(4, description="postgresql under ASGI: connections in each process's psycopg pool (OPTIONS pool max_size).")


class Cache(_Section):
    """CACHES['default']."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("backend", {"const": "memcached"}, _fields(location=_nullable(grammar.SCHEMAS["address"]))),
        _when("backend", {"const": "locmem"}, _fields(location=_nullable(grammar.SCHEMAS["identifier"]))),
        {"if": {"not": {"required": ["backend"], "properties": {"backend": {"enum": ["memcached", "locmem"]}}}},
         "then": _fields(location=_nullable(grammar.SCHEMAS["redis_url"]))},
    ]})

    backend: Literal["redis", "memcached", "locmem"] = Field("redis", description="Django cache backend.")
    location: Optional[Line] = Field(None, description="redis://HOST:PORT/DB (or rediss://, unix:/PATH) for redis, HOST:PORT or unix:/PATH for memcached, a name for locmem. Default: redis://127.0.0.1:6379/0, 127.0.0.1:11211, or <name>.",
                                     json_schema_extra={"anyOf": [grammar.SCHEMAS["redis_url"], grammar.SCHEMAS["address"], grammar.SCHEMAS["identifier"], {"type": "null"}]})


def _csp_directive(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z-]*", value):
        raise ValueError(f"{value!r} is not a CSP directive name like script-src")
    return value


def _csp_source(value: str) -> str:
    if not value or re.search(r"[\s;,\"]", value):
        raise ValueError(f"{value!r}: one source per list item, like 'self' or https://cdn.example.com; "
                         "no spaces, ';', ',' or '\"'")
    return value


def _csp_report_uri(value: str) -> str:
    if not re.fullmatch(r"(/|https://)[^\s;,\"']*", value):
        raise ValueError(f"{value!r}: a path on the site (/csp-report/) or an https:// URL")
    return value


_CSP_DIRECTIVE = {"type": "string", "pattern": "^[a-z][a-z-]*$",
                  "patternErrorMessage": "a CSP directive name like script-src"}
_CSP_SOURCE = {"type": "string", "pattern": "^[^\\s;,\"]+$",
               "patternErrorMessage": "one source per list item, like 'self' or https://cdn.example.com; "
                                      "no spaces, ';', ',' or '\"'"}
_CSP_REPORT_URI = {"type": "string", "pattern": "^(?:/|https://)[^\\s;,\"']*$",
                   "patternErrorMessage": "a path on the site (/csp-report/) or an https:// URL"}
CspDirective = Annotated[str, AfterValidator(_csp_directive), _JsonSchema(_CSP_DIRECTIVE)]
CspSource = Annotated[str, AfterValidator(_csp_source), _JsonSchema(_CSP_SOURCE)]
CspReportUri = Annotated[str, AfterValidator(_csp_report_uri), _JsonSchema(_CSP_REPORT_URI)]


class Csp(_Section):
    """Content-Security-Policy from Django's own middleware (Django 6.0+)."""

    mode: Literal["off", "report-only", "enforce"] = Field("report-only", description="report-only: browsers report what the policy would block (SECURE_CSP_REPORT_ONLY); enforce: they block it (SECURE_CSP).")
    directives: dict[CspDirective, list[CspSource]] = Field(default_factory=dict, json_schema_extra={"default": {}, "additionalProperties": False}, description="Directives to add or replace in the default policy, e.g. script-src: [\"'self'\", https://cdn.example.com].")
    report_uri: Optional[CspReportUri] = Field(None, description="Where browsers send violation reports (report-uri): a path on the site or an https:// URL.")


class Django(_Section):
    """The Django project and where it lives on the host."""

    # _check_relay: an external relay is named; postfix runs here, so the settings send to localhost.
    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("email_relay", {"const": "external"}, {"required": ["email_host"],
                                                     **_fields(email_host={"type": "string"})}),
        _when("email_relay", {"const": "postfix"}, _fields(email_host={"enum": [None, "localhost"]})),
    ]})

    project: Module = Field(description="Import package holding wsgi.py / asgi.py.")
    settings_module: Optional[Module] = Field(None, description="DJANGO_SETTINGS_MODULE in production: the rendered settings file. Default: <project>.settings_production.")
    base_settings: Optional[Module] = Field(None, description="The rendered module starts with `from <base_settings> import *`. Default: <project>.settings.")
    root: Optional[AbsPath] = Field(None, description="Directory holding manage.py; the app server's working directory. Default: /srv/<name>/app.")
    venv: Optional[AbsPath] = Field(None, description="Virtualenv; executables come from <venv>/bin. Default: /srv/<name>/venv.")
    user: Optional[UnixName] = Field(None, description="Unix user the app runs as, never root. Default: <name>.", json_schema_extra={"not": {"const": "root"}})
    group: Optional[UnixName] = Field(None, description="Unix group the app runs as, never root. Default: <name>.", json_schema_extra={"not": {"const": "root"}})
    database: Optional[Database] = Field(None, description="DATABASES['default']. Default: keep what base_settings says.")
    cache: Optional[Cache] = Field(None, description="CACHES['default']. Default: keep what base_settings says.")
    admins: list[Email] = _list("Receive 500 error mails.")
    email_host: Optional[Hostname] = Field(None, description="SMTP relay for outgoing mail. Default: localhost.")
    email_port: Port = Field(25, description="SMTP port: 25, 465 (implicit TLS) or 587 (STARTTLS).")
    email_relay: Optional[Literal["postfix", "external"]] = Field(None, description="Who runs the SMTP relay: postfix = the runbook installs postfix on each app host, listening on loopback only (email_host unset); external = the relay at email_host already exists. Default: postfix without email_host, external with it.")
    email_user: Optional[Line] = Field(None, description="SMTP user name; its password is the secret EMAIL_HOST_PASSWORD.")
    server_email: Optional[Email] = Field(None, description="From address of error mails. Default: root@<domain>.")
    csp: Csp = _section(Csp, "Content-Security-Policy on Django 6.0+ (Django 5.2 has no CSP support).")
    silenced_checks: list[DjangoCheckId] = _list("Extra Django system check ids to silence (SILENCED_SYSTEM_CHECKS); ids in Django's security, async, caches and mail namespaces must exist.")


class AppServer(_Section):
    """gunicorn or uvicorn, as it runs on each app host."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("kind", {"const": "uvicorn"}, {"required": ["workers"], **_fields(
            workers={"not": {"const": "auto"}}, interface={"not": {"const": "wsgi"}},
            threads=_ONE, max_requests=grammar.integer_schema(0, 0))}),
        _when("interface", {"const": "asgi"}, _fields(threads=_ONE)),
    ]})

    kind: Literal["gunicorn", "uvicorn"] = Field("gunicorn", description="The app server.")
    interface: Optional[Literal["wsgi", "asgi"]] = Field(None, description="wsgi or asgi (uvicorn is always asgi; gunicorn with asgi uses the uvicorn worker class). Default: wsgi for gunicorn, asgi for uvicorn.")
    workers: Workers = Field("auto", description='Worker processes per app host: an integer >= 1, or "auto" (2 x CPUs + 1, computed at start-up; gunicorn only).')
    threads: _whole(1, 256) = Field(1, description="gunicorn only; > 1 selects the gthread worker.")
    bind: Optional[ProxiedAddress] = Field(None, description="unix:/ABS/PATH, IP:PORT, [IPv6]:PORT or localhost:PORT. Default: unix:<run_dir>/app.sock, or TCP on the upstream servers' port.")
    timeout: Seconds = Field(30, description="Seconds a request may take before the worker is restarted (gunicorn's sync worker); gthread, ASGI and uvicorn requests are cut off by nginx after timeout + 5 s, and every SQL statement after django.database.statement_timeout (default: this).")
    graceful_timeout: _whole(1, 600) = Field(30, description="Seconds workers get to finish requests on stop or reload (at most 600).")
    keepalive: _whole(0, 3600) = Field(5, description="Seconds an idle connection from nginx stays open.")
    max_requests: Count = Field(1000, description="gunicorn: restart a worker after this many requests (0 = never), with 10% jitter. Not used by uvicorn.")
    trusted_proxies: Optional[list[TrustedNetwork]] = Field(None, description="Addresses nginx connects from; forwarded headers are trusted from these only. Default: loopback; required when upstream.servers lists other hosts.")
    stop_timeout: Optional[Seconds] = Field(None, description="Seconds the process manager waits after the stop signal before SIGKILL; must exceed graceful_timeout. Default: graceful_timeout + 10.")
    limit_concurrency: _whole(1, 100000) = Field(1000, description="Connections one process serves at once, idle keep-alive ones included: uvicorn's limit_concurrency (more get 503), gunicorn gthread's worker_connections.")
    socket_group: UnixName = Field("www-data", description="The group nginx runs as; only it (and the app user) may enter paths.run_dir and connect to the unix socket.")


class UpstreamServer(_Section):
    """One app host in the nginx upstream group."""

    address: ProxiedAddress = Field(description="IP:PORT, [IPv6]:PORT, localhost:PORT or unix:/ABS/PATH: an app host, running the app server on this address (nginx resolves host names only at start-up).")
    weight: Optional[_whole(1, 1000)] = Field(None, description="nginx server weight. Default: nginx's (1).")
    max_fails: Optional[_whole(0, 1000)] = Field(None, description="nginx max_fails. Default: nginx's (1).")
    fail_timeout: Optional[NginxTime] = Field(None, description="nginx fail_timeout, like 10s. Default: nginx's (10s).")
    max_conns: Optional[Count] = Field(None, description="nginx max_conns; 0 = no limit. Default: nginx's (0).")
    backup: Flag = Field(False, description="Receives requests only when the other servers are down (not with ip_hash, hash or random).")
    down: Flag = Field(False, description="Marked as permanently unavailable.")


class Upstream(_Section):
    """Load balancing over several app hosts."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _when("method", {"const": "hash"}, {"required": ["hash_key"], **_fields(hash_key={"type": "string"})}),
        _when("method", {"enum": ["ip_hash", "hash", "random"]},
              _fields(servers={"items": _fields(backup=_FALSE)})),
        _when("servers", {"minItems": 1}, _fields(servers={"contains": _fields(backup=_FALSE, down=_FALSE)})),
    ]})

    method: Literal["round_robin", "least_conn", "ip_hash", "hash", "random"] = Field("round_robin", description="nginx load-balancing method.")
    hash_key: Optional[HashKey] = Field(None, description="Required with method: hash (consistent hashing), for example $request_uri.")
    keepalive: _whole(0, 10000) = Field(16, description="Idle keep-alive connections per nginx worker; 0 = off.")
    servers: list[UpstreamServer] = _list("App hosts; each runs the app server listening on its address (so app_server.bind must accept it); at least one when given. Default: app_server.bind on this host.", min_length=1)


class Tls(_Section):
    """HTTPS at nginx."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {**_when("mode", {"const": "files"}, {"required": ["certificate", "certificate_key"], **_fields(
            certificate={"type": "string"}, certificate_key={"type": "string"})}),
         "else": {"not": {"anyOf": [{"required": ["certificate"]}, {"required": ["certificate_key"]}]}}},
        _when("hsts_preload", _TRUE, _fields(hsts_include_subdomains=_TRUE,
                                             hsts_seconds=grammar.integer_schema(31536000, None))),
    ]})

    mode: TlsMode = Field("letsencrypt", description="off, files (your own certificate) or letsencrypt. An unquoted `mode: off`, which YAML 1.1 reads as false, means off.")
    certificate: Optional[AbsPath] = Field(None, description="Certificate chain (PEM); mode files only, and required there. letsencrypt derives /etc/letsencrypt/live/<domain>/fullchain.pem.")
    certificate_key: Optional[AbsPath] = Field(None, description="Private key (PEM); mode files only, and required there. letsencrypt derives /etc/letsencrypt/live/<domain>/privkey.pem.")
    profile: Literal["intermediate", "modern"] = Field("intermediate", description="Mozilla server-side TLS profile.")
    hsts_seconds: Count = Field(63072000, description="Strict-Transport-Security max-age; 0 = no HSTS.")
    hsts_include_subdomains: Flag = Field(True, description="HSTS includeSubDomains.")
    hsts_preload: Flag = Field(False, description="HSTS preload; needs hsts_include_subdomains and hsts_seconds >= 31536000.")


class Static(_Section):
    """STATIC_URL and STATIC_ROOT; nginx serves them."""

    url: UrlPath = Field("/static/", description="STATIC_URL: a URL path starting and ending with '/'.")
    root: Optional[AbsPath] = Field(None, description="STATIC_ROOT; nginx serves it. Default: /srv/<name>/static.")


class Media(_Section):
    """MEDIA_URL and MEDIA_ROOT; nginx serves them and never executes them."""

    url: UrlPath = Field("/media/", description="MEDIA_URL: a URL path starting and ending with '/', not static.url.")
    root: Optional[AbsPath] = Field(None, description="MEDIA_ROOT; nginx serves it, never executes it. Default: /srv/<name>/media.")
    shared: Flag = Field(False, description="root is one shared file system (e.g. NFS) on every app host and nginx host; required for uploads when upstream.servers lists several hosts.")


class RateLimit(_Section):
    """A request rate limit for login paths."""

    paths: list[UrlPath] = _list("Login URL paths to limit.", lambda: ["/admin/login/", "/accounts/login/"], unique=True)
    rate: Annotated[str, Field(pattern=grammar.RATE.pattern), _JsonSchema(grammar.SCHEMAS["rate"])] = Field("10r/m", description="nginx limit_req rate per client address: N r/s or N r/m.")
    burst: _whole(0, 10000) = Field(5, description="Requests allowed above the rate before nginx answers 429.")


class Nginx(_Section):
    """The nginx the configs are written for, and its ports."""

    version: NginxVersion = Field("1.22", description='The nginx version the configs are for, quoted, like "1.22"; 1.19.4 or newer.')
    http_port: Port = Field(80, description="Port of the HTTP server (which redirects to HTTPS when TLS is on).")
    https_port: Port = Field(443, description="Port of the HTTPS server; differs from http_port.")
    client_max_body_size: NginxSize = Field("10m", description="Largest request body: a number, optionally k, m or g.")
    ipv6: Flag = Field(True, description="Listen on IPv6 beside IPv4.")
    real_ip_from: list[TrustedNetwork] = _list("Load balancers in front of nginx whose X-Forwarded-For is trusted (set_real_ip_from).")
    login_rate_limit: Optional[RateLimit] = Field(None, description="A request rate limit on login URLs. Default: none.")


class Background(_Section):
    """A long-running (or scheduled) program beside the web app."""

    model_config = ConfigDict(json_schema_extra=_when("schedule", {"type": "string"}, _fields(numprocs=_ONE)))

    name: Slug = Field(description="Program name: a slug, unique, not web.", json_schema_extra={"not": {"const": WEB_PROGRAM}})
    command: Line = Field(description="First word is an executable in <venv>/bin, or manage.py.")
    numprocs: _whole(1, 64) = Field(1, description="Processes to run (1 for a scheduled or singleton program).")
    schedule: Optional[Line] = Field(None, description="systemd OnCalendar= expression: run periodically instead of continuously (systemd or both).",
                                     json_schema_extra={"anyOf": [grammar.SCHEMAS["calendar"], {"type": "null"}]})
    stop_signal: Literal["TERM", "INT", "QUIT", "HUP"] = Field("TERM", description="Signal that stops the program.")
    stop_timeout: Seconds = Field(60, description="Seconds to wait after stop_signal before SIGKILL.")
    singleton: Optional[Flag] = Field(None, description="Runs on exactly one host (a scheduler such as celery beat): numprocs 1, its own supervisor file, enabled on one host only. Default: true for `celery ... beat`.")


class Hosts(_Section):
    """Where each part runs: the hosts of the Ansible inventory."""

    nginx: list[InventoryHost] = _list("The nginx host(s), the load balancer. Default: localhost (this host).", lambda: ["localhost"], min_length=1)
    app: Optional[list[InventoryHost]] = Field(None, min_length=1, description="How Ansible reaches each app host, in the order of upstream.servers. Default: the host part of each upstream.servers address.")
    singleton: Optional[InventoryHost] = Field(None, description="The app host that runs the singleton background programs (celery beat). Default: the first app host.")
    ssh_user: Optional[UnixName] = Field(None, description="The SSH user Ansible logs in as. Default: Ansible's own.")


class Paths(_Section):
    """Run-time directories on the host."""

    run_dir: Optional[AbsPath] = Field(None, description="Sockets, pid files. Default: /run/<name>.")
    log_dir: Optional[AbsPath] = Field(None, description="App and process-manager logs. Default: /var/log/<name>.")
    nginx_log_dir: AbsPath = Field("/var/log/nginx", description="nginx's log directory.")


class Spec(_Section):
    """A djdeploy spec, version 1."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"if": {"not": {"required": ["process_manager"], "properties": {"process_manager": {"enum": ["systemd", "both"]}}}},
         "then": _fields(background={"items": _fields(schedule={"type": "null"})})},
        _when("process_manager", {"enum": ["systemd", "both"]}, _fields(
            django=_fields(root=_NOT_HOME, venv=_NOT_HOME), static=_fields(root=_NOT_HOME), media=_fields(root=_NOT_HOME))),
        {"if": {"required": ["upstream"], "properties": {"upstream": {"type": "object", "required": ["servers"], "properties": {
            "servers": {"contains": {"required": ["address"], "properties": {"address": {"not": {"pattern": _LOCAL_ADDRESS}}}}}}}}},
         "then": {"required": ["app_server"], **_fields(app_server={
             "type": "object", "required": ["trusted_proxies"], **_fields(trusted_proxies={"type": "array"})})}},
    ]})

    version: SpecVersion = Field(description="The spec format version: 1.")
    name: Slug = Field(description="Names files, programs, the upstream and the socket: a lowercase letter, then up to 31 lowercase letters, digits or '-'.")
    domain: Hostname = Field(description="Primary host name (server_name, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS).")
    aliases: list[Hostname] = _list("Other host names; nginx 301-redirects them to domain.", unique=True)
    django: Django = Field(description="The Django project and where it lives on the host.")
    app_server: AppServer = _section(AppServer, "gunicorn or uvicorn, as it runs on each app host.")
    upstream: Optional[Upstream] = Field(None, description="Load balancing over several app hosts. Default: nginx proxies to app_server.bind on this host.")
    tls: Annotated[Tls, BeforeValidator(_section_off), _OrAlso({"enum": [False, "off"]})] = _section(Tls, "HTTPS at nginx. `tls: off` is short for `tls: {mode: off}`. Default: Let's Encrypt certificates for domain and aliases.")
    static: Static = _section(Static, "STATIC_URL and STATIC_ROOT; nginx serves them.")
    media: Media = _section(Media, "MEDIA_URL and MEDIA_ROOT; nginx serves them and never executes them.")
    nginx: Nginx = _section(Nginx, "The nginx the configs are written for, and its ports.")
    process_manager: Literal["supervisor", "systemd", "both"] = Field("supervisor", description="What runs the app server and background programs.")
    background: list[Background] = _list("Long-running or scheduled programs beside the web app, such as celery.")
    hosts: Hosts = _section(Hosts, "Where each part runs: the hosts of the Ansible inventory.")
    paths: Paths = _section(Paths, "Run-time directories on the host.")


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
    if d.email_relay is None:
        d.email_relay = "external" if d.email_host else "postfix"
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
    if a.kind == "uvicorn" and a.interface == "wsgi":
        problems.append((("app_server", "interface"), "uvicorn serves ASGI only; use kind: gunicorn for WSGI"))
    if a.kind == "uvicorn" and a.max_requests and "max_requests" in a.model_fields_set:
        problems.append((("app_server", "max_requests"),
                         "uvicorn processes are not recycled (they would all exit together under load); "
                         "use kind: gunicorn with interface: asgi to recycle workers"))
    if a.threads > 1 and (a.kind == "uvicorn" or a.interface == "asgi"):
        problems.append((("app_server", "threads"), "threads is for gunicorn's WSGI gthread worker only"))
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
    if not grammar.CALENDAR.fullmatch(program.schedule):
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


# The servers' default connection limits: PostgreSQL max_connections (postgresql.org/docs/current/
# runtime-config-connection.html), MySQL max_connections (dev.mysql.com/doc/refman/8.0/en/
# server-system-variables.html).
DEFAULT_MAX_CONNECTIONS = {"postgresql": 100, "mysql": 151}


def spec_warnings(spec: Spec) -> list[Problem]:
    """Choices that are valid but likely wrong, each as (field path, message); never an error."""
    return _timeout_warnings(spec) + _connection_warnings(spec)


def _timeout_warnings(spec: Spec) -> list[Problem]:
    a = spec.app_server
    if a.timeout <= a.graceful_timeout:
        return []
    return [(("app_server", "timeout"),
             f"requests may run {a.timeout}s, but a reload or stop gives them {a.graceful_timeout}s "
             "(graceful_timeout): longer ones are cut off on every deploy")]


def held_connections(spec: Spec) -> int | None:
    """Database connections the web app can hold open at once across its hosts, when known.

    WSGI with CONN_MAX_AGE > 0: one per worker thread, kept between requests. PostgreSQL under
    ASGI: each process's pool. None when unknown (workers "auto": counted on the host) or unbounded.
    """
    a, db = spec.app_server, spec.django.database
    if db is None or db.engine == "sqlite" or not isinstance(a.workers, int):
        return None
    if a.interface == "asgi":
        per_host = a.workers * db.pool_max_size if db.engine == "postgresql" else None
    else:
        per_host = a.workers * a.threads if db.conn_max_age > 0 else None
    servers = [s for s in (spec.upstream.servers if spec.upstream else []) if not s.down]
    return None if per_host is None else per_host * max(1, len(servers))


def _connection_warnings(spec: Spec) -> list[Problem]:
    db, held = spec.django.database, held_connections(spec)
    limit = DEFAULT_MAX_CONNECTIONS.get(db.engine if db else "", 0)
    if held is None or held <= limit:
        return []
    assert db is not None
    return [(("django", "database"),
             f"the web app can hold {held} connections (workers x threads or pool size, x app hosts), "
             f"more than {db.engine}'s default max_connections ({limit}), before any background program: "
             "raise max_connections on the server, or lower workers, conn_max_age or pool_max_size")]


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


def describe_warnings(spec: Spec) -> list[str]:
    """spec_warnings as lines like problems: `field.path: message`."""
    return [f"{messages.format_location(loc)}: {message}" for loc, message in spec_warnings(spec)]


SCHEMA_FILE = "djdeploy.schema.json"
SCHEMA_MARKER = "djdeploy:generated"


def schema_json() -> str:
    """The JSON Schema (draft-07) of the spec, as committed in schemas/djdeploy.schema.json."""
    schema = Spec.model_json_schema(ref_template="#/definitions/{model}")
    schema["definitions"] = schema.pop("$defs")
    schema = {"$schema": "http://json-schema.org/draft-07/schema#",
              "$comment": f"{SCHEMA_MARKER}: the JSON Schema of a djdeploy spec; "
                          f"`djdeploy schema --out {SCHEMA_FILE}` rewrites it. Do not edit.",
              **_draft_07_refs(schema)}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _draft_07_refs(node: Any) -> Any:
    """Draft-07 ignores the keywords beside a $ref, so a $ref with siblings moves into allOf."""
    if isinstance(node, list):
        return [_draft_07_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _draft_07_refs(value) for key, value in node.items()}
    if "$ref" in node and len(node) > 1:
        node["allOf"] = [{"$ref": node.pop("$ref")}, *node.get("allOf", [])]
    return node
