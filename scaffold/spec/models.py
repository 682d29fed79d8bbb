"""The spec's sections as pydantic models: fields, their types, defaults and descriptions."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from scaffold import grammar
from scaffold.spec.kinds import PROCESS_PER_WORKER
from scaffold.spec.values import (
    AbsPath, Count, DbHost, DjangoCheckId, Email, EndpointPath, Flag, HashKey, Hostname, InventoryHost,
    JsonSchema, LOCAL_ADDRESS_PATTERN, Line, Module, NginxSize, NginxTime, NginxVersion, OrAlso,
    BindAddress, IpAddress, OpensslVersion, RESOLVE_VERSION_PATTERN, Port, ProxiedAddress, SCHEMA_FALSE, SCHEMA_NOT_HOME, SCHEMA_ONE, SCHEMA_TRUE, Seconds, Slug,
    SpecVersion, StaticUrl, TlsMode, TrustedNetwork, UnixName, UrlPath, WEB_PROGRAM, Workers, list_field,
    schema_fields, schema_nullable, schema_when, section_field, section_off, whole,
)

class _Section(BaseModel):
    """Base of every spec section: unknown keys are errors; no silent type conversions.

    strict: pydantic's own conversions (bytes to str, "5 432" or True to int, "t" to bool) are
    off; the few that a spec needs are the validators above, which the JSON Schema states.
    """

    model_config = ConfigDict(extra="forbid", validate_default=False, strict=True)


class Database(_Section):
    """DATABASES['default']; the password is a secret and never appears here."""

    model_config = ConfigDict(json_schema_extra={
        **schema_when("engine", {"const": "sqlite"}, {
            **schema_fields(name=schema_nullable(grammar.SCHEMAS["abs_path"])),
            "not": {"anyOf": [{"required": ["user"]}, {"required": ["host"]}, {"required": ["port"]}]}}),
        "else": schema_fields(name=schema_nullable(grammar.SCHEMAS["identifier"])),
    })

    engine: Literal["postgresql", "mysql", "sqlite"] = Field("postgresql", description="Django database backend.")
    name: Optional[Annotated[str, Field(min_length=1)]] = Field(None, description="Database name (letters, digits, '_', '-'); for sqlite an absolute file path. Default: <name>, or /var/lib/<name>/db.sqlite3 for sqlite.",
                                json_schema_extra={"anyOf": [grammar.SCHEMAS["identifier"], grammar.SCHEMAS["abs_path"], {"type": "null"}]})
    user: Optional[UnixName] = Field(None, description="Database user. Default: <name> (not used by sqlite).")
    host: Optional[DbHost] = Field(None, description="Host name, IP address, or the absolute path of a unix socket directory. Default: 127.0.0.1 (not used by sqlite).")
    port: Optional[Port] = Field(None, description="Default: 5432 (postgresql), 3306 (mysql); not used by sqlite.")
    conn_max_age: whole(0, 3600) = Field(60, description="Seconds a WSGI worker keeps a connection (CONN_MAX_AGE); ASGI always uses 0.")
    statement_timeout: Optional[whole(0, 86400)] = Field(None, description="Seconds one SQL statement may run before the server cancels it (postgresql statement_timeout; mysql: the client's read/write timeout); 0 = no limit. Default: app_server.timeout.")
    pool_max_size: whole(1, 1000) = Field(4, description="postgresql under ASGI: connections in each process's psycopg pool (OPTIONS pool max_size).")


class Cache(_Section):
    """CACHES['default']."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        schema_when("backend", {"const": "memcached"}, schema_fields(location=schema_nullable(grammar.SCHEMAS["address"]))),
        schema_when("backend", {"const": "locmem"}, schema_fields(location=schema_nullable(grammar.SCHEMAS["identifier"]))),
        {"if": {"not": {"required": ["backend"], "properties": {"backend": {"enum": ["memcached", "locmem"]}}}},
         "then": schema_fields(location=schema_nullable(grammar.SCHEMAS["redis_url"]))},
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
CspDirective = Annotated[str, AfterValidator(_csp_directive), JsonSchema(_CSP_DIRECTIVE)]
CspSource = Annotated[str, AfterValidator(_csp_source), JsonSchema(_CSP_SOURCE)]
CspReportUri = Annotated[str, AfterValidator(_csp_report_uri), JsonSchema(_CSP_REPORT_URI)]


class Csp(_Section):
    """Content-Security-Policy from Django's own middleware (Django 6.0+)."""

    mode: Literal["off", "report-only", "enforce"] = Field("report-only", description="report-only: browsers report what the policy would block (SECURE_CSP_REPORT_ONLY); enforce: they block it (SECURE_CSP).")
    directives: dict[CspDirective, list[CspSource]] = Field(default_factory=dict, json_schema_extra={"default": {}, "additionalProperties": False}, description="Directives to add or replace in the default policy, e.g. script-src: [\"'self'\", https://cdn.example.com].")
    report_uri: Optional[CspReportUri] = Field(None, description="Where browsers send violation reports (report-uri): a path on the site or an https:// URL.")


class ErrorTracking(_Section):
    """Sentry (or a service speaking its protocol), initialised when the secret SENTRY_DSN exists."""

    environment: Line = Field("production", description="The environment events are filed under (sentry_sdk.init environment).")
    release: Optional[Line] = Field(None, description="The release events are filed under. Default: what sentry_sdk finds itself (the SENTRY_RELEASE environment variable, else the git commit).")
    traces_sample_rate: float = Field(0.0, ge=0.0, le=1.0, description="Share of requests traced for performance monitoring, 0 to 1; 0 = errors only.")


class Django(_Section):
    """The Django project and where it lives on the host."""

    # _check_relay: an external relay is named; postfix runs here, so the settings send to localhost.
    model_config = ConfigDict(json_schema_extra={"allOf": [
        schema_when("email_relay", {"const": "external"}, {"required": ["email_host"],
                                                     **schema_fields(email_host={"type": "string"})}),
        schema_when("email_relay", {"const": "postfix"}, schema_fields(email_host={"enum": [None, "localhost"]})),
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
    admins: list[Email] = list_field("Receive 500 error mails.")
    email_host: Optional[Hostname] = Field(None, description="SMTP relay for outgoing mail. Default: localhost.")
    email_port: Port = Field(25, description="SMTP port: 25, 465 (implicit TLS) or 587 (STARTTLS).")
    email_relay: Optional[Literal["postfix", "external"]] = Field(None, description="Who runs the SMTP relay: postfix = the runbook installs postfix on each app host, listening on loopback only (email_host unset); external = the relay at email_host already exists. Default: postfix without email_host, external with it.")
    email_user: Optional[Line] = Field(None, description="SMTP user name; its password is the secret EMAIL_HOST_PASSWORD.")
    server_email: Optional[Email] = Field(None, description="From address of error mails. Default: root@<domain>.")
    csp: Csp = section_field(Csp, "Content-Security-Policy on Django 6.0+ (Django 5.2 has no CSP support).")
    error_tracking: Optional[ErrorTracking] = Field(None, description="Error tracking with sentry-sdk from the secret SENTRY_DSN; no secret, no tracking. Default: none.")
    silenced_checks: list[DjangoCheckId] = list_field("Extra Django system check ids to silence (SILENCED_SYSTEM_CHECKS); ids in Django's security, async, caches and mail namespaces must exist.")


class AppServer(_Section):
    """The app server (gunicorn, uWSGI, uvicorn, Daphne or Hypercorn), as it runs on each app host."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        schema_when("kind", {"enum": list(PROCESS_PER_WORKER)}, {"required": ["workers"], **schema_fields(
            workers={"not": {"const": "auto"}}, interface={"not": {"const": "wsgi"}},
            threads=SCHEMA_ONE, max_requests=grammar.integer_schema(0, 0))}),
        schema_when("kind", {"const": "uwsgi"}, schema_fields(interface={"not": {"const": "asgi"}})),
        schema_when("interface", {"const": "asgi"}, schema_fields(threads=SCHEMA_ONE)),
    ]})

    kind: Literal["gunicorn", "uwsgi", "uvicorn", "daphne", "hypercorn"] = Field("gunicorn", description="The app server: gunicorn or uwsgi (WSGI; gunicorn also ASGI), uvicorn, daphne or hypercorn (ASGI).")
    interface: Optional[Literal["wsgi", "asgi"]] = Field(None, description="wsgi or asgi (uwsgi is always wsgi; uvicorn, daphne and hypercorn always asgi; gunicorn with asgi uses the uvicorn worker class). Default: asgi for uvicorn, daphne and hypercorn, else wsgi.")
    workers: Workers = Field("auto", description='Worker processes per app host: an integer >= 1, or "auto" (2 x CPUs + 1, computed at start-up; gunicorn and uwsgi only).')
    threads: whole(1, 256) = Field(1, description="gunicorn and uwsgi, WSGI only; > 1 selects gunicorn's gthread worker, or uWSGI threads per worker.")
    bind: Optional[BindAddress] = Field(None, description="unix:/ABS/PATH, IP:PORT, [IPv6]:PORT or localhost:PORT. Default: unix:<run_dir>/app.sock, or TCP on the upstream servers' port.")
    timeout: Seconds = Field(30, description="Seconds a request may take before the worker is restarted (gunicorn's sync worker, uWSGI's harakiri); gthread, ASGI and uvicorn, daphne or hypercorn requests are cut off by nginx after timeout + 5 s, and every SQL statement after django.database.statement_timeout (default: this).")
    graceful_timeout: whole(1, 600) = Field(30, description="Seconds workers get to finish requests on stop or reload (at most 600).")
    keepalive: whole(0, 3600) = Field(5, description="Seconds an idle connection from nginx stays open (not used by uwsgi: the uwsgi protocol has one request per connection).")
    max_requests: Count = Field(50000, description="gunicorn and uwsgi: restart a worker after this many requests (0 = never), spread out (gunicorn: 10% jitter; uWSGI: max-requests-delta). Not used by uvicorn, daphne or hypercorn.")
    trusted_proxies: Optional[list[TrustedNetwork]] = Field(None, description="Addresses nginx connects from; forwarded headers are trusted from these only. Default: loopback; required when upstream.servers lists other hosts.")
    stop_timeout: Optional[Seconds] = Field(None, description="Seconds the process manager waits after the stop signal before SIGKILL; must exceed graceful_timeout. Default: graceful_timeout + 10.")
    limit_concurrency: whole(1, 100000) = Field(1000, description="Connections one process serves at once, idle keep-alive ones included: uvicorn's limit_concurrency (more get 503), gunicorn gthread's worker_connections. Not used by uwsgi, daphne or hypercorn.")
    socket_group: UnixName = Field("www-data", description="The group nginx runs as; only it (and the app user) may enter paths.run_dir and connect to the unix socket.")


class UpstreamServer(_Section):
    """One app host in the nginx upstream group."""

    address: ProxiedAddress = Field(description="IP:PORT, [IPv6]:PORT, localhost:PORT or unix:/ABS/PATH: an app host, running the app server on this address. HOST:PORT with a host name needs nginx.version 1.27.3 or newer and nginx.resolver (nginx re-resolves it at run time).")
    weight: Optional[whole(1, 1000)] = Field(None, description="nginx server weight. Default: nginx's (1).")
    max_fails: Optional[whole(0, 1000)] = Field(None, description="nginx max_fails: failed attempts (connection errors and timeouts, including a request whose worker died or ran past proxy_read_timeout) within fail_timeout that take the server out for fail_timeout. Default: 0, never (nginx's own 1 lets one such request take a host out).")
    fail_timeout: Optional[NginxTime] = Field(None, description="nginx fail_timeout, like 10s. Default: nginx's (10s).")
    max_conns: Optional[Count] = Field(None, description="nginx max_conns; 0 = no limit. Default: nginx's (0).")
    backup: Flag = Field(False, description="Receives requests only when the other servers are down (not with ip_hash, hash or random).")
    down: Flag = Field(False, description="Marked as permanently unavailable.")


class Upstream(_Section):
    """Load balancing over several app hosts."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        schema_when("method", {"const": "hash"}, {"required": ["hash_key"], **schema_fields(hash_key={"type": "string"})}),
        schema_when("method", {"enum": ["ip_hash", "hash", "random"]},
              schema_fields(servers={"items": schema_fields(backup=SCHEMA_FALSE)})),
        schema_when("servers", {"minItems": 1}, schema_fields(servers={"contains": schema_fields(backup=SCHEMA_FALSE, down=SCHEMA_FALSE)})),
    ]})

    method: Literal["round_robin", "least_conn", "ip_hash", "hash", "random"] = Field("round_robin", description="nginx load-balancing method.")
    hash_key: Optional[HashKey] = Field(None, description="Required with method: hash (consistent hashing), for example $request_uri.")
    keepalive: whole(0, 10000) = Field(16, description="Idle keep-alive connections per nginx worker; 0 = off.")
    next_upstream_tries: whole(1, 10) = Field(2, description="Servers one request may be tried on (proxy_next_upstream_tries). nginx cannot tell a failed connection from one that broke after the request was sent, so with 2 a GET whose worker died is sent to one more server (never a POST, and never one an app had for 4 s or more); 1 never sends a request twice, and a host that refuses connections then answers 502 until it is back or marked down.")
    servers: list[UpstreamServer] = list_field("App hosts; each runs the app server listening on its address (so app_server.bind must accept it); at least one when given. Default: app_server.bind on this host.", min_length=1)


class Tls(_Section):
    """HTTPS at nginx."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {**schema_when("mode", {"const": "files"}, {"required": ["certificate", "certificate_key"], **schema_fields(
            certificate={"type": "string"}, certificate_key={"type": "string"})}),
         "else": {"not": {"anyOf": [{"required": ["certificate"]}, {"required": ["certificate_key"]}]}}},
        schema_when("hsts_preload", SCHEMA_TRUE, schema_fields(hsts_include_subdomains=SCHEMA_TRUE,
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

    url: StaticUrl = Field("/static/", description="STATIC_URL: a URL path starting and ending with '/', or an https:// URL of a CDN whose origin is this site (nginx serves the URL's path, with CORS for fonts).")
    root: Optional[AbsPath] = Field(None, description="STATIC_ROOT; nginx serves it. Default: /srv/<name>/static.")
    server: Literal["nginx", "whitenoise"] = Field("nginx", description="Who serves static files: nginx from root, or WhiteNoise in the app (nginx proxies the static path; for nginx hosts without the files).")
    brotli: Flag = Field(False, description="Also write Brotli (.br) copies at collectstatic and serve them with brotli_static; needs Debian's libnginx-mod-http-brotli-static on the nginx host, which the runbook installs.")


class ProtectedMedia(_Section):
    """Files the app authorises per request and nginx sends (X-Accel-Redirect)."""

    url: UrlPath = Field("/protected/", description="The internal nginx location the app names in X-Accel-Redirect (PROTECTED_MEDIA_URL); never reachable directly.")
    root: Optional[AbsPath] = Field(None, description="Where the files are (PROTECTED_MEDIA_ROOT, the storage `protected`). Default: /srv/<name>/protected.")


class Media(_Section):
    """MEDIA_URL and MEDIA_ROOT; nginx serves them and never executes them."""

    url: UrlPath = Field("/media/", description="MEDIA_URL: a URL path starting and ending with '/', not static.url.")
    root: Optional[AbsPath] = Field(None, description="MEDIA_ROOT; nginx serves it, never executes it. Default: /srv/<name>/media.")
    shared: Flag = Field(False, description="root is one shared file system (e.g. NFS) on every app host and nginx host; required for uploads when upstream.servers lists several hosts.")
    content_disposition: Literal["inline", "attachment"] = Field("inline", description="inline: browsers show inert types (images, PDF, text) in a sandbox (Content-Security-Policy: sandbox); attachment: every upload downloads (Content-Disposition: attachment).")
    protected: Optional[ProtectedMedia] = Field(None, description="Files only the app may hand out: nginx sends them when the app answers with X-Accel-Redirect. Default: none.")


class RateLimit(_Section):
    """A request rate limit for login paths."""

    paths: Optional[list[UrlPath]] = Field(None, json_schema_extra={"uniqueItems": True}, description="Login URL paths to limit. Default: <nginx.admin.path>login/ and /accounts/login/.")
    rate: Annotated[str, Field(pattern=grammar.RATE.pattern), JsonSchema(grammar.SCHEMAS["rate"])] = Field("10r/m", description="nginx limit_req rate per client address: N r/s or N r/m.")
    burst: whole(0, 10000) = Field(5, description="Requests allowed above the rate before nginx answers 429.")


class LoadBalancer(_Section):
    """A load balancer in front of nginx that terminates TLS and passes plain HTTP to http_port."""

    addresses: list[TrustedNetwork] = list_field("The addresses the load balancer connects to nginx from; requests from any other address are redirected to https://<domain>, and their forwarding headers ignored. At least one.", min_length=1)
    proxy_protocol: Flag = Field(False, description="true: the load balancer sends the client address in the PROXY protocol (v1 or v2) on every connection; false: in X-Forwarded-For (the last address it appends is the client's).")
class Admin(_Section):
    """Django's admin as nginx sees it: its path, and who may reach it."""

    path: UrlPath = Field("/admin/", description="Where the project's urls.py mounts the admin.")
    allow: list[TrustedNetwork] = list_field("Networks that may reach the admin path; nginx answers 403 to every other client address. Empty = everyone.")


class Health(_Section):
    """The health endpoint the rendered settings answer before URL routing."""

    path: EndpointPath = Field("/healthz", description="The health endpoint's path: 200 when the database and cache answer, else 503.")
    allow: list[TrustedNetwork] = list_field("Addresses beside loopback, nginx.real_ip_from and nginx.load_balancer.addresses that may reach the health path through nginx (a load balancer's checkers); nginx answers 403 to everyone else.")


class Nginx(_Section):
    """The nginx the configs are written for, and its ports."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"if": {"required": ["load_balancer"], "properties": {"load_balancer": {"type": "object"}}},
         "then": {"not": {"required": ["real_ip_from"], "properties": {"real_ip_from": {"minItems": 1}}}}},
    ]})

    version: NginxVersion = Field("1.22", description='The nginx version the configs are for, quoted, like "1.22"; 1.19.4 or newer.')
    http_port: Port = Field(80, description="Port of the HTTP server (which redirects to HTTPS when TLS is on).")
    https_port: Port = Field(443, description="Port of the HTTPS server; differs from http_port.")
    client_max_body_size: NginxSize = Field("10m", description="Largest request body: a number, optionally k, m or g.")
    ipv6: Flag = Field(True, description="Listen on IPv6 beside IPv4.")
    openssl: OpensslVersion = Field("3.0", description='The OpenSSL version nginx runs with, quoted, like "3.0" (Debian 12, Ubuntu 24.04) or "3.5" (Debian 13); 3.5 and newer get the post-quantum X25519MLKEM768 group first.')
    real_ip_from: list[TrustedNetwork] = list_field("Proxies in front of nginx (which still terminates TLS) whose X-Forwarded-For is trusted (set_real_ip_from). For a load balancer that terminates TLS, use load_balancer.")
    load_balancer: Optional[LoadBalancer] = Field(None, description="A load balancer in front of nginx that terminates TLS (tls.mode must be off): Django sees https and the client address it passes on, from its addresses only. Default: none; nginx faces clients.")
    resolver: list[IpAddress] = list_field("DNS servers nginx asks for upstream host names at run time (resolver); required when an upstream server address names a host.")
    login_rate_limit: Optional[RateLimit] = Field(None, description="A request rate limit on login URLs. Default: none.")
    admin: Admin = section_field(Admin, "Django's admin path and the networks that may reach it.")


class Background(_Section):
    """A long-running (or scheduled) program beside the web app."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        schema_when("schedule", {"type": "string"}, schema_fields(numprocs=SCHEMA_ONE)),
        {"if": {"not": {"required": ["preset"], "properties": {"preset": {"type": "string"}}}}, "then": {"required": ["command"]}},
    ]})

    name: Slug = Field(description="Program name: a slug, unique, not web.", json_schema_extra={"not": {"const": WEB_PROGRAM}})
    preset: Optional[Literal["db_worker"]] = Field(None, description="A known program: db_worker = the database task worker of Django's tasks framework (django-tasks-db's `manage.py db_worker`; the settings get its TASKS backend). Default: none.")
    command: Optional[Line] = Field(None, description="First word is an executable in <venv>/bin, or manage.py. Required without preset; default with preset db_worker: manage.py db_worker.")
    numprocs: whole(1, 64) = Field(1, description="Processes to run (1 for a scheduled or singleton program).")
    schedule: Optional[Line] = Field(None, description="systemd OnCalendar= expression: run periodically instead of continuously (systemd or both).",
                                     json_schema_extra={"anyOf": [grammar.SCHEMAS["calendar"], {"type": "null"}]})
    stop_signal: Literal["TERM", "INT", "QUIT", "HUP"] = Field("TERM", description="Signal that stops the program.")
    stop_timeout: Seconds = Field(60, description="Seconds to wait after stop_signal before SIGKILL.")
    singleton: Optional[Flag] = Field(None, description="Runs on exactly one host (a scheduler such as celery beat): numprocs 1, its own supervisor file, enabled on one host only. Default: true for `celery ... beat`.")


class Hosts(_Section):
    """Where each part runs: the hosts of the Ansible inventory."""

    nginx: list[InventoryHost] = list_field("The nginx host(s), the load balancer. Default: localhost (this host).", lambda: ["localhost"], min_length=1)
    app: Optional[list[InventoryHost]] = Field(None, min_length=1, description="How Ansible reaches each app host, in the order of upstream.servers. Default: the host part of each upstream.servers address.")
    singleton: Optional[InventoryHost] = Field(None, description="The app host that runs the singleton background programs (celery beat). Default: the first app host.")
    ssh_user: Optional[UnixName] = Field(None, description="The SSH user Ansible logs in as. Default: Ansible's own.")
    ansible: Optional[Flag] = Field(None, description="Write ansible/ (inventory and playbook that install the rendered files on these hosts). Default: true when nginx and the app hosts are more than one host.")


class Paths(_Section):
    """Run-time directories on the host."""

    run_dir: Optional[AbsPath] = Field(None, description="Sockets, pid files. Default: /run/<name>.")
    log_dir: Optional[AbsPath] = Field(None, description="App and process-manager logs. Default: /var/log/<name>.")
    nginx_log_dir: AbsPath = Field("/var/log/nginx", description="nginx's log directory.")


class Spec(_Section):
    """A djdeploy spec, version 1."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"if": {"not": {"required": ["process_manager"], "properties": {"process_manager": {"enum": ["systemd", "both"]}}}},
         "then": schema_fields(background={"items": schema_fields(schedule={"type": "null"})})},
        schema_when("process_manager", {"enum": ["systemd", "both"]}, schema_fields(
            django=schema_fields(root=SCHEMA_NOT_HOME, venv=SCHEMA_NOT_HOME), static=schema_fields(root=SCHEMA_NOT_HOME), media=schema_fields(root=SCHEMA_NOT_HOME))),
        schema_when("process_manager", {"const": "pm2"}, schema_fields(background={"items": schema_fields(
            stop_signal={"const": "TERM"})}, app_server=schema_fields(kind={"enum": ["gunicorn", "uvicorn"]}))),
        {"if": {"required": ["process_manager", "app_server"], "properties": {
            "process_manager": {"const": "pm2"}, "app_server": {"required": ["kind"], "properties": {"kind": {"const": "uvicorn"}}}}},
         "then": schema_fields(app_server=schema_fields(workers={"not": SCHEMA_ONE}))},
        {"if": {"required": ["upstream"], "properties": {"upstream": {"type": "object", "required": ["servers"], "properties": {
            "servers": {"contains": {"required": ["address"], "properties": {"address": {"not": {"pattern": LOCAL_ADDRESS_PATTERN}}}}}}}}},
         "then": {"required": ["app_server"], **schema_fields(app_server={
             "type": "object", "required": ["trusted_proxies"], **schema_fields(trusted_proxies={"type": "array"})})}},
        # _check_upstream_hosts: host names in upstream addresses need nginx 1.27.3 (resolve).
        {"if": {"not": {"required": ["nginx"], "properties": {"nginx": {"required": ["version"], "properties": {
            "version": {"type": "string", "pattern": grammar.anchored(RESOLVE_VERSION_PATTERN)}}}}}},
         "then": schema_fields(upstream=schema_fields(servers={"items": schema_fields(address=grammar.SCHEMAS["proxied_address"])}))},
        # _check_load_balancer: a load balancer that terminates TLS has nginx serve plain HTTP.
        {"if": {"required": ["nginx"], "properties": {"nginx": {"required": ["load_balancer"], "properties": {"load_balancer": {"type": "object"}}}}},
         "then": {"required": ["tls"], **schema_fields(tls={"anyOf": [{"enum": [False, "off"]}, {"type": "object", "required": ["mode"], **schema_fields(mode={"enum": ["off", False]})}]})}},
    ]})

    version: SpecVersion = Field(description="The spec format version: 1.")
    name: Slug = Field(description="Names files, programs, the upstream and the socket: a lowercase letter, then up to 31 lowercase letters, digits or '-'.")
    domain: Hostname = Field(description="Primary host name (server_name, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS).")
    aliases: list[Hostname] = list_field("Other host names; nginx 301-redirects them to domain.", unique=True)
    django: Django = Field(description="The Django project and where it lives on the host.")
    app_server: AppServer = section_field(AppServer, "The app server (gunicorn, uWSGI, uvicorn, Daphne or Hypercorn), as it runs on each app host.")
    upstream: Optional[Upstream] = Field(None, description="Load balancing over several app hosts. Default: nginx proxies to app_server.bind on this host.")
    tls: Annotated[Tls, BeforeValidator(section_off), OrAlso({"enum": [False, "off"]})] = section_field(Tls, "HTTPS at nginx. `tls: off` is short for `tls: {mode: off}`. Default: Let's Encrypt certificates for domain and aliases.")
    static: Static = section_field(Static, "STATIC_URL and STATIC_ROOT; nginx serves them.")
    health: Health = section_field(Health, "The health endpoint for checks and load balancers.")
    media: Media = section_field(Media, "MEDIA_URL and MEDIA_ROOT; nginx serves them and never executes them.")
    nginx: Nginx = section_field(Nginx, "The nginx the configs are written for, and its ports.")
    process_manager: Literal["supervisor", "systemd", "both", "pm2"] = Field("supervisor", description="What runs the app server and background programs: supervisor, systemd, both (either, per host), or pm2 (an ecosystem file; pm2 from the npm registry, started at boot by systemd).")
    background: list[Background] = list_field("Long-running or scheduled programs beside the web app, such as celery.")
    hosts: Hosts = section_field(Hosts, "Where each part runs: the hosts of the Ansible inventory.")
    paths: Paths = section_field(Paths, "Run-time directories on the host.")
