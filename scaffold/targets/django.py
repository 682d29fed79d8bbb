"""django: the production settings module, which imports the project's settings and hardens them.

Every value is decided here; the template lays them out. Secrets are never rendered: the module
reads them at start-up (see ``secrets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from scaffold.spec import Spec, is_db_worker, static_origin
from scaffold.targets._base import RenderJob

NAME = "django"

SECRET_KEY = "DJANGO_SECRET_KEY"
SECRET_KEY_FALLBACKS = "DJANGO_SECRET_KEY_FALLBACKS"
DATABASE_PASSWORD = "DATABASE_PASSWORD"
EMAIL_HOST_PASSWORD = "EMAIL_HOST_PASSWORD"
SENTRY_DSN = "SENTRY_DSN"
# May be empty (an empty file means "no old keys") or absent (no DSN: no error tracking); every
# other secret must have a value.
OPTIONAL_SECRETS = frozenset({SECRET_KEY_FALLBACKS, SENTRY_DSN})
# Optional secrets that still have a file of their own: the programs name it in <VAR>_FILE,
# and a missing file means "not set".
OPTIONAL_FILE_SECRETS = frozenset({SENTRY_DSN})

PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
# Django's ManifestStaticFilesStorage (hashed names) that also writes a gzip copy of every file
# worth compressing (and a Brotli one when the brotli package is importable) at collectstatic,
# for nginx's gzip_static/brotli_static. Needs the whitenoise package in the app's venv (the
# runbook installs it). With static.server whitenoise its middleware serves the same files.
STATIC_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
# Seconds an SMTP exchange may take, well below the app server's worker timeout.
SMTP_TIMEOUT = 10
# Django 6.1 raises ImproperlyConfigured when these sit beside MAILERS (django/conf/__init__.py,
# DEPRECATED_EMAIL_SETTINGS).
DEPRECATED_EMAIL_SETTINGS = ("EMAIL_BACKEND", "EMAIL_FILE_PATH", "EMAIL_HOST", "EMAIL_HOST_PASSWORD",
                             "EMAIL_HOST_USER", "EMAIL_PORT", "EMAIL_SSL_CERTFILE", "EMAIL_SSL_KEYFILE",
                             "EMAIL_TIMEOUT", "EMAIL_USE_SSL", "EMAIL_USE_TLS")
ENGINES = {"postgresql": "django.db.backends.postgresql", "mysql": "django.db.backends.mysql",
           "sqlite": "django.db.backends.sqlite3"}
# Seconds to wait for a database or cache server to accept a connection: an unreachable one then
# costs a request this long instead of the kernel's TCP retries (minutes). The same as nginx's
# proxy_connect_timeout.
CONNECT_TIMEOUT = 5
# Seconds one cache command may take; a healthy cache answers in milliseconds.
CACHE_TIMEOUT = 5
# Seconds an ASGI request waits for a free connection of its process's pool (psycopg_pool timeout).
POOL_TIMEOUT = 10
DATABASE_OPTIONS: dict[str, dict[str, str]] = {
    "postgresql": {},
    # Django's MySQL backend defaults to utf8 (3-byte); utf8mb4 stores every Unicode character.
    "mysql": {"charset": "utf8mb4"},
    # Take the write lock at BEGIN: avoids "database is locked" under concurrent writers
    # (Django 5.1+, docs/ref/databases.txt, "Transactions behavior").
    "sqlite": {"transaction_mode": "IMMEDIATE"},
}
CACHE_BACKENDS = {"redis": "django.core.cache.backends.redis.RedisCache",
                  "memcached": "django.core.cache.backends.memcached.PyMemcacheCache",
                  "locmem": "django.core.cache.backends.locmem.LocMemCache"}
LINE_WIDTH = 99
# Seconds the health endpoint waits for a database or cache to connect or answer: a checker
# (a load balancer, a rolling deploy) gives up after a few seconds, so must the check.
HEALTH_TIMEOUT = 2
# Client option names of each cache backend's connect and command timeouts (see cache()).
HEALTH_CACHE_OPTIONS = {
    "django.core.cache.backends.redis.RedisCache": ("socket_connect_timeout", "socket_timeout"),
    "django.core.cache.backends.memcached.PyMemcacheCache": ("connect_timeout", "timeout"),
}
SECURITY_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"
WHITENOISE_MIDDLEWARE = "whitenoise.middleware.WhiteNoiseMiddleware"
FILE_STORAGE = "django.core.files.storage.FileSystemStorage"
# django-tasks-db's README: the app, and the backend the db_worker command serves. Before Django
# 6.0 the framework itself is the django-tasks backport (django-tasks-db's `compat` extra).
TASKS_APP = "django_tasks_db"
TASKS_BACKPORT_APP = "django_tasks"
TASKS_BACKEND = "django_tasks_db.DatabaseBackend"
CSP_MIDDLEWARE = "django.middleware.csp.ContentSecurityPolicyMiddleware"
# Only the site's own origin, no plugins, no framing, forms and <base> to the site only: what a
# server-rendered Django site needs (MDN, Content-Security-Policy; OWASP CSP cheat sheet). data:
# images cover the admin's inline icons.
DEFAULT_CSP = {
    "default-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}


@dataclass(frozen=True)
class Code:
    """A Python expression written into the module as is: a value only known at start-up."""

    expression: str

    def __repr__(self) -> str:
        return self.expression


class Setting(NamedTuple):
    """One assignment in the settings module, with the reason it has this value."""

    name: str
    value: Any
    why: str = ""

    def literal(self, indent: int = 0) -> str:
        """The value as Python source, for a line that starts *indent* spaces in."""
        return format_literal(self.value, indent=indent, used=indent + len(self.name) + 3)


def read_secret(name: str) -> Code:
    """The call that reads secret *name* at start-up, through the module's one loader."""
    return Code(f"_read_secret({name!r})")


def format_literal(value: Any, *, indent: int = 0, used: int = 0) -> str:
    """*value* as a Python literal: on one line when it fits, otherwise one item per line."""
    flat = repr(value)
    if not isinstance(value, (dict, list, tuple)) or not value or used + len(flat) <= LINE_WIDTH:
        return flat
    inner = indent + 4
    if isinstance(value, dict):
        items = [f"{k!r}: {format_literal(v, indent=inner, used=inner + len(repr(k)) + 2)}"
                 for k, v in value.items()]
    else:
        items = [format_literal(v, indent=inner, used=inner) for v in value]
    brackets = "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else "()"
    lines = [" " * inner + item + "," for item in items]
    return "\n".join([brackets[0], *lines, " " * indent + brackets[1]])


def jobs(spec: Spec) -> list[RenderJob]:
    """The settings module, named after the last part of django.settings_module."""
    module = str(spec.django.settings_module).rpartition(".")[2]
    return [RenderJob("django/settings.py.j2", PurePosixPath("django", f"{module}.py"), context(spec))]


def secrets(spec: Spec) -> list[str]:
    """Every secret the rendered settings read, in a fixed order; see OPTIONAL_SECRETS."""
    names = [SECRET_KEY, SECRET_KEY_FALLBACKS]
    if spec.django.database is not None and spec.django.database.engine != "sqlite":
        names.append(DATABASE_PASSWORD)
    if spec.django.email_user is not None:
        names.append(EMAIL_HOST_PASSWORD)
    if spec.django.error_tracking is not None:
        names.append(SENTRY_DSN)
    return names


def context(spec: Spec) -> dict[str, Any]:
    """What the template lays out, section by section."""
    return {
        "base_settings": spec.django.base_settings,
        "name": spec.name,
        "secret_names": {"key": SECRET_KEY, "fallbacks": SECRET_KEY_FALLBACKS},
        "hosts": host_settings(spec),
        "https": https_settings(spec),
        "data": data_settings(spec),
        "sqlite_move": sqlite_relocation(spec),
        "files": file_settings(spec),
        "admins": list(spec.django.admins),
        "mail": mail_settings(spec),
        "mailers": Setting("MAILERS", {"default": {"BACKEND": SMTP_BACKEND, "OPTIONS": smtp_options(spec)}}),
        "legacy_email": legacy_email_settings(spec),
        "deprecated_email": Setting("_DEPRECATED_EMAIL_SETTINGS", DEPRECATED_EMAIL_SETTINGS,
                                    "Django 6.1 refuses these beside MAILERS, which replaces them: "
                                    "drop any the base settings set"),
        "csp": csp_setting(spec),
        "csp_middleware": CSP_MIDDLEWARE,
        "logging": Setting("LOGGING", logging_config(spec)),
        "relay": relay_description(spec),
        "mail_failures_logger": f"{spec.name}.mail",
        "silenced": silenced_checks(spec),
        "proxies": list(spec.app_server.trusted_proxies or []),
        "client_middleware": f"{spec.django.settings_module}.client_address_middleware",
        "health": health_context(spec),
        "whitenoise": whitenoise_context(spec),
        "error_tracking": error_tracking_context(spec),
        "tasks": tasks_context(spec),
    }


def health_context(spec: Spec) -> dict[str, Any]:
    """The health endpoint the module answers itself, before any other middleware."""
    return {"path": spec.health.path, "timeout": HEALTH_TIMEOUT, "cache_options": Setting("_HEALTH_CACHE_OPTIONS", HEALTH_CACHE_OPTIONS),
            "middleware": f"{spec.django.settings_module}.health_check_middleware"}


def whitenoise_context(spec: Spec) -> dict[str, str] | None:
    """With static.server whitenoise: its middleware, placed right after SecurityMiddleware."""
    if spec.static.server != "whitenoise":
        return None
    return {"middleware": WHITENOISE_MIDDLEWARE, "after": SECURITY_MIDDLEWARE}


def error_tracking_context(spec: Spec) -> dict[str, Any] | None:
    """sentry_sdk.init's arguments from django.error_tracking; the DSN is the secret SENTRY_DSN."""
    e = spec.django.error_tracking
    if e is None:
        return None
    options: dict[str, Any] = {"environment": e.environment}
    if e.release is not None:
        options["release"] = e.release
    # No cookies, user names or addresses in events unless the project says so itself.
    options |= {"send_default_pii": False, "traces_sample_rate": e.traces_sample_rate}
    return {"secret": SENTRY_DSN, "options": Setting("_SENTRY_OPTIONS", options)}


def tasks_context(spec: Spec) -> dict[str, str] | None:
    """With a db_worker background program: the app and TASKS backend that worker serves."""
    if not any(is_db_worker(program) for program in spec.background):
        return None
    return {"app": TASKS_APP, "backport": TASKS_BACKPORT_APP, "backend": TASKS_BACKEND}


def is_https(spec: Spec) -> bool:
    """Whether browsers reach the site over HTTPS (nginx, or a load balancer before it, terminates TLS)."""
    return spec.tls.mode != "off" or spec.nginx.load_balancer is not None


def origins(spec: Spec) -> list[str]:
    """The site's origins as browsers send them: scheme, host, and the port when not the default."""
    if spec.nginx.load_balancer is not None:
        return [f"https://{host}" for host in [spec.domain, *spec.aliases]]  # the load balancer's 443
    scheme, port, default = (("https", spec.nginx.https_port, 443) if is_https(spec)
                             else ("http", spec.nginx.http_port, 80))
    suffix = "" if port == default else f":{port}"
    return [f"{scheme}://{host}{suffix}" for host in [spec.domain, *spec.aliases]]


def host_settings(spec: Spec) -> list[Setting]:
    """DEBUG, the host names Django answers for, and the origins CSRF trusts."""
    return [
        Setting("DEBUG", False),
        Setting("ALLOWED_HOSTS", [spec.domain, *spec.aliases],
                "nginx answers only these names and passes Host through; its default server drops the rest"),
        Setting("CSRF_TRUSTED_ORIGINS", origins(spec),
                "nginx sends Host without the port; a non-default port must be trusted explicitly"),
    ]


def https_settings(spec: Spec) -> list[Setting]:
    """How Django learns the request was HTTPS, and the headers and cookies that follow from it."""
    https, t = is_https(spec), spec.tls
    hsts = t.hsts_seconds if https else 0
    return [
        Setting("SECURE_PROXY_SSL_HEADER", PROXY_SSL_HEADER, proxy_header_reason(spec)),
        Setting("SECURE_SSL_REDIRECT", False, redirect_reason(spec)),
        Setting("SESSION_COOKIE_SECURE", https),
        Setting("CSRF_COOKIE_SECURE", https),
        Setting("SESSION_COOKIE_HTTPONLY", True),
        Setting("SECURE_HSTS_SECONDS", hsts, "tls.hsts_*; Django sends the header on HTTPS responses only"),
        Setting("SECURE_HSTS_INCLUDE_SUBDOMAINS", https and t.hsts_include_subdomains),
        Setting("SECURE_HSTS_PRELOAD", https and t.hsts_preload),
        Setting("SECURE_CONTENT_TYPE_NOSNIFF", True),
        Setting("SECURE_REFERRER_POLICY", "same-origin"),
        Setting("SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin"),
        Setting("X_FRAME_OPTIONS", "DENY"),
    ]


def data_settings(spec: Spec) -> list[Setting]:
    """DATABASES and CACHES, when the spec gives them (otherwise the base settings' stand)."""
    found = []
    if spec.django.database is not None:
        found.append(Setting("DATABASES", {"default": database(spec)}, connection_reason(spec)))
    if spec.django.cache is not None:
        found.append(Setting("CACHES", {"default": cache(spec)},
                             "timeouts so that a cache that stops answering costs seconds, not every worker"))
    return found


def sqlite_file(spec: Spec) -> str:
    """Where SQLite keeps its file on the host when the spec leaves the database to the base settings."""
    return f"/var/lib/{spec.name}/db.sqlite3"


def sqlite_relocation(spec: Spec) -> dict[str, str] | None:
    """With no django.database: move a base-settings SQLite file out of the read-only code directory.

    startproject's settings put it at BASE_DIR / "db.sqlite3", inside django.root, which the runbook
    makes root's and read-only to the app, so `migrate` fails with "unable to open database file".
    """
    if spec.django.database is not None:
        return None
    return {"code_dir": str(spec.django.root), "file": sqlite_file(spec)}


def database(spec: Spec) -> dict[str, Any]:
    """DATABASES['default']; the password is read at start-up."""
    db = spec.django.database
    assert db is not None
    entry: dict[str, Any] = {"ENGINE": ENGINES[db.engine], "NAME": db.name}
    if db.engine != "sqlite":
        entry |= {"USER": db.user, "PASSWORD": read_secret(DATABASE_PASSWORD), "HOST": db.host,
                  "PORT": str(db.port)}
    asgi = spec.app_server.interface == "asgi"
    entry["CONN_MAX_AGE"] = 0 if asgi else db.conn_max_age
    entry["CONN_HEALTH_CHECKS"] = entry["CONN_MAX_AGE"] > 0
    options = {**DATABASE_OPTIONS[db.engine], **database_timeouts(spec)}
    if uses_pool(spec):
        options["pool"] = {"min_size": 1, "max_size": db.pool_max_size, "timeout": POOL_TIMEOUT}
    if options:
        entry["OPTIONS"] = options
    return entry


def statement_timeout(spec: Spec) -> int:
    """Seconds one SQL statement may run: django.database.statement_timeout, else the app's timeout."""
    db = spec.django.database
    chosen = db.statement_timeout if db is not None else None
    return spec.app_server.timeout if chosen is None else chosen


def database_timeouts(spec: Spec) -> dict[str, Any]:
    """Connect and statement limits, in each driver's own OPTIONS names.

    PostgreSQL: libpq's connect_timeout, and statement_timeout (milliseconds) set at connection start
    through the `options` parameter (postgresql.org/docs/current/libpq-connect.html). MySQL:
    mysqlclient's connect_timeout, read_timeout and write_timeout (seconds; libmysqlclient tries a
    read up to three times, MYSQL_OPT_READ_TIMEOUT). SQLite has no server to wait for.
    """
    db, limit = spec.django.database, statement_timeout(spec)
    assert db is not None
    if db.engine == "postgresql":
        found: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
        return found | ({"options": f"-c statement_timeout={limit * 1000}"} if limit else {})
    if db.engine == "mysql":
        found = {"connect_timeout": CONNECT_TIMEOUT}
        return found | ({"read_timeout": limit, "write_timeout": limit} if limit else {})
    return {}


def uses_pool(spec: Spec) -> bool:
    """PostgreSQL under ASGI: psycopg 3's pool (Django >= 5.1), since persistent connections are off there."""
    db = spec.django.database
    return db is not None and db.engine == "postgresql" and spec.app_server.interface == "asgi"


def cache(spec: Spec) -> dict[str, Any]:
    """CACHES['default'], with connect and command timeouts in the client library's own names.

    redis-py takes socket_connect_timeout and socket_timeout (Django passes OPTIONS to its
    connection pool); pymemcache's HashClient takes connect_timeout and timeout.
    """
    c = spec.django.cache
    assert c is not None
    entry: dict[str, Any] = {"BACKEND": CACHE_BACKENDS[c.backend], "LOCATION": c.location}
    if c.backend == "redis":
        entry["OPTIONS"] = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": CACHE_TIMEOUT}
    elif c.backend == "memcached":
        entry["OPTIONS"] = {"connect_timeout": CONNECT_TIMEOUT, "timeout": CACHE_TIMEOUT}
    return entry


def connection_reason(spec: Spec) -> str:
    """Why connections live as long as they do (docs/ref/databases.txt, "Persistent connections")."""
    limit = statement_timeout(spec)
    bound = (f"; a statement may run {limit}s (django.database.statement_timeout)" if limit
             else "; statements have no time limit")
    if uses_pool(spec):
        return ("ASGI: persistent connections off (CONN_MAX_AGE 0, Django's docs), each process "
                "borrowing from a psycopg pool of django.database.pool_max_size connections" + bound)
    if spec.app_server.interface == "asgi":
        return "ASGI: Django's docs say to turn persistent connections off (CONN_MAX_AGE 0)" + bound
    return ("WSGI: each worker keeps its connection for django.database.conn_max_age seconds, "
            "checked before reuse" + bound)


def file_settings(spec: Spec) -> list[Setting]:
    """Static and media URLs and roots, equal to what nginx serves, and hashed static names."""
    cdn, _ = static_origin(spec)
    whitenoise = spec.static.server == "whitenoise"
    served = ("WhiteNoise serves this directory at STATIC_URL" if whitenoise
              else "nginx serves this directory at STATIC_URL")
    if cdn is not None:
        served += f"; browsers fetch it from {cdn}, whose origin is this site"
    storages: dict[str, Any] = {
        "default": {"BACKEND": FILE_STORAGE},
        "staticfiles": {"BACKEND": STATIC_STORAGE},
    }
    found = [
        Setting("STATIC_URL", spec.static.url),
        Setting("STATIC_ROOT", spec.static.root, served),
        Setting("MEDIA_URL", spec.media.url),
        Setting("MEDIA_ROOT", spec.media.root, "nginx serves this directory at MEDIA_URL, never runs it"),
    ]
    protected = spec.media.protected
    if protected is not None:
        storages["protected"] = {"BACKEND": FILE_STORAGE,
                                 "OPTIONS": {"location": protected.root, "base_url": protected.url}}
        found += [
            Setting("PROTECTED_MEDIA_URL", protected.url,
                    "a view that allows a download answers with the header X-Accel-Redirect: "
                    "PROTECTED_MEDIA_URL + the file's name, and nginx sends the file; nobody can fetch "
                    "this URL directly"),
            Setting("PROTECTED_MEDIA_ROOT", protected.root, "the storage `protected` keeps its files here"),
        ]
    why = ("hashed, compressed copies let WhiteNoise send far-future cache headers" if whitenoise else
           "hashed names nginx caches for a year, and .gz (and .br with the brotli package) copies "
           "written by collectstatic for nginx's gzip_static")
    return [*found, Setting("STORAGES", storages, why + "; run collectstatic on each deploy")]


def mail_settings(spec: Spec) -> list[Setting]:
    """Who error mail comes from, and how it is marked."""
    return [
        Setting("SERVER_EMAIL", spec.django.server_email or f"root@{spec.domain}"),
        Setting("EMAIL_SUBJECT_PREFIX", f"[{spec.name}] "),
    ]


def smtp_options(spec: Spec) -> dict[str, Any]:
    """The SMTP relay, by the smtp EmailBackend's argument names (MAILERS OPTIONS in Django 6.1)."""
    d = spec.django
    options: dict[str, Any] = {"host": d.email_host or "localhost", "port": d.email_port,
                               "use_tls": d.email_port == 587, "use_ssl": d.email_port == 465,
                               "timeout": SMTP_TIMEOUT}
    if d.email_user is not None:
        options |= {"username": d.email_user, "password": read_secret(EMAIL_HOST_PASSWORD)}
    return options


def legacy_email_settings(spec: Spec) -> list[Setting]:
    """The same relay as EMAIL_* settings, for Django before 6.1."""
    o = smtp_options(spec)
    return [
        Setting("EMAIL_BACKEND", SMTP_BACKEND),
        Setting("EMAIL_HOST", o["host"]),
        Setting("EMAIL_PORT", o["port"]),
        Setting("EMAIL_HOST_USER", o.get("username", "")),
        Setting("EMAIL_HOST_PASSWORD", o.get("password", "")),
        Setting("EMAIL_USE_TLS", o["use_tls"]),
        Setting("EMAIL_USE_SSL", o["use_ssl"]),
        Setting("EMAIL_TIMEOUT", o["timeout"]),
    ]


def csp_setting(spec: Spec) -> Setting | None:
    """SECURE_CSP_REPORT_ONLY or SECURE_CSP (Django 6.0+), or None with django.csp.mode: off."""
    c = spec.django.csp
    if c.mode == "off":
        return None
    policy = {**default_csp(spec), **c.directives}
    if c.report_uri is not None:
        policy["report-uri"] = [c.report_uri]
    if c.mode == "report-only":
        return Setting("SECURE_CSP_REPORT_ONLY", policy,
                       "django.csp.mode report-only: browsers report what this policy would block and block "
                       "nothing; set mode: enforce once the reports are clean")
    return Setting("SECURE_CSP", policy, "django.csp.mode enforce: browsers block what this policy does not allow")


def default_csp(spec: Spec) -> dict[str, list[str]]:
    """DEFAULT_CSP, with the CDN that serves static files beside the site's own origin."""
    cdn, _ = static_origin(spec)
    if cdn is None:
        return dict(DEFAULT_CSP)
    return {key: [*values, f"https://{cdn}"] if key in ("default-src", "img-src") else values
            for key, values in DEFAULT_CSP.items()}


def relay_description(spec: Spec) -> str:
    """The settings' statement of where mail goes and who provides that relay."""
    d, o = spec.django, smtp_options(spec)
    where = f"SMTP to {o['host']}:{o['port']}"
    if d.email_relay == "postfix":
        return (f"{where}: the postfix that INSTALL.md installs on each app host, listening on loopback "
                "only (django.email_relay: postfix)")
    return f"{where}: a relay that already exists (django.email_relay: external); INSTALL.md checks it"


def logging_config(spec: Spec) -> dict[str, Any]:
    """LOGGING: everything to stderr for the process manager; 500s and suspicious requests mailed.

    The mail handler is the module's own (``error_mail_handler``): Django's AdminEmailHandler drops a
    mail the relay refuses without a word; this one logs the failure to stderr.
    """
    mail = {"()": f"{spec.django.settings_module}.error_mail_handler", "level": "ERROR",
            "filters": ["require_debug_false"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}},
        "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "line"},
            "mail_admins": mail,
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            # Replaces Django's default handlers (console only under DEBUG, mail for everything).
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.request": {"handlers": ["mail_admins"], "level": "ERROR", "propagate": True},
            "django.security": {"handlers": ["mail_admins"], "level": "ERROR", "propagate": True},
            # Any client can send a wrong Host: log it, never mail it.
            "django.security.DisallowedHost": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        },
    }


def proxy_header_reason(spec: Spec) -> str:
    """Why SECURE_PROXY_SSL_HEADER can be trusted, for this spec's nginx."""
    if spec.nginx.load_balancer is not None:
        return ("right only because nginx sets X-Forwarded-Proto: https on every request it proxies, "
                "all of which came from the load balancer's HTTPS listener; change both together")
    return ("right only because nginx overwrites X-Forwarded-Proto with its own $scheme on every "
            "proxied request; change both together")


def redirect_reason(spec: Spec) -> str:
    """Why SECURE_SSL_REDIRECT stays off: who redirects to HTTPS, if anyone."""
    if spec.nginx.load_balancer is not None:
        return ("the load balancer terminates TLS and owns the HTTP -> HTTPS redirect; nginx sends "
                "anything else to https://<domain>; one owner, no loop")
    if spec.tls.mode == "off":
        return "tls.mode is off: the site is plain HTTP, and nothing redirects to HTTPS"
    return "nginx owns the HTTP -> HTTPS redirect (a 301 that is never proxied); one owner, no loop"


def silenced_checks(spec: Spec) -> list[tuple[str, str]]:
    """(check id, reason) for each deploy check this spec deliberately does not satisfy."""
    t = spec.tls
    if spec.nginx.load_balancer is not None:
        why = "SECURE_SSL_REDIRECT is off because the load balancer redirects HTTP to HTTPS"
    elif t.mode == "off":
        why = "SECURE_SSL_REDIRECT is off: tls.mode is off, the site is plain HTTP"
    else:
        why = "SECURE_SSL_REDIRECT is off because nginx redirects HTTP to HTTPS"
    found = [("security.W008", why)]
    if not is_https(spec):
        reason = "tls.mode is off: plain HTTP, where browsers drop Secure cookies and ignore HSTS"
        found += [(check, reason) for check in ("security.W004", "security.W010", "security.W011",
                                                "security.W012", "security.W016")]
    elif t.hsts_seconds == 0:
        found.append(("security.W004", "tls.hsts_seconds is 0: no HSTS"))
    else:
        if not t.hsts_include_subdomains:
            found.append(("security.W005", "tls.hsts_include_subdomains is false"))
        if not t.hsts_preload:
            found.append(("security.W021", "tls.hsts_preload is false: not on the browsers' preload list"))
    chosen = {check for check, _ in found}
    found += [(check, "listed in django.silenced_checks") for check in spec.django.silenced_checks
              if check not in chosen]
    return sorted(dict(found).items())
