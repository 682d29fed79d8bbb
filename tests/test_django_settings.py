"""The production settings module: Django's own deploy checks on 5.2 and 6.x, and the secret loader.

Each spec is rendered, its module placed in a package named after the spec's project (whose base
settings are the test project's, plus development mail backends production must replace), and run
by the real Django: `manage.py check --deploy --fail-level WARNING`, then requests through
Django's test client. Django 6.x needs Python 3.12: a venv is built once per session
(DJDEPLOY_DJANGO6_VENV names a directory to keep it between runs).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scaffold.errors import SpecError
from scaffold.render import render_all
from scaffold.spec import Spec, load_spec, parse_spec, validate_data
from scaffold.targets import django as target
from support import TESTS, UNDER_CI, example_paths, require_tool

DJPROJECT = TESTS / "djproject"
# Passes security.W009: 62 characters, many distinct, no django-insecure- prefix.
STRONG_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
OLD_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba9876543210"
DJANGO6_VENV_VARIABLE = "DJDEPLOY_DJANGO6_VENV"

MINIMAL = "version: 1\nname: blog\ndomain: blog.example.org\ndjango:\n  project: blog\n"
# Cases the example specs lack, checked the same way.
EXTRA_SPECS = {
    "tls-off": MINIMAL + "  csp: {mode: 'off'}\ntls:\n  mode: 'off'\nnginx:\n  http_port: 8080\n",
    "no-hsts": MINIMAL + "tls:\n  hsts_seconds: 0\n",
    # A load balancer terminates TLS: nginx is plain HTTP, browsers and Django see HTTPS.
    "load-balancer": MINIMAL + "tls: off\nnginx:\n  load_balancer: {addresses: [10.0.0.0/24]}\n",
    "relay": MINIMAL + textwrap.dedent("""\
          email_host: smtp.example.org
          email_port: 587
          email_user: blog-mailer
          admins: [ops@example.org, dev@example.org]
          silenced_checks: [staticfiles.W004]
          csp:
            mode: enforce
            report_uri: /csp-report/
            directives: {script-src: ["'self'", "https://cdn.example.org"]}
          database:
            engine: sqlite
            conn_max_age: 0
        tls:
          mode: files
          certificate: /etc/ssl/blog/fullchain.pem
          certificate_key: /etc/ssl/blog/privkey.pem
          hsts_seconds: 3600
          hsts_include_subdomains: false
        """),
}

BASE_SETTINGS = """\
from testsite.settings import *  # noqa: F403

ROOT_URLCONF = {urls!r}
# A careless base: development mail backends that the production module must replace.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
MAILERS = {{"default": {{"BACKEND": "django.core.mail.backends.console.EmailBackend"}}}}
"""
URLS = """\
from django.urls import path
from testsite.urls import urlpatterns as _site


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [*_site, path("boom/", boom)]
"""
# What Django believes under the rendered settings, as JSON on stdout.
PROBE = """\
import json, os, django
django.setup()
from django.conf import settings
from django.core import mail
from django.test import Client
from django.test.utils import setup_test_environment

backend = mail.mailers.default if hasattr(mail, "mailers") else mail.get_connection()
facts = {"backend": type(backend).__module__ + "." + type(backend).__name__,
         "smtp": [backend.host, backend.port, backend.use_tls, backend.use_ssl, backend.timeout,
                  backend.username, bool(backend.password)]}
facts["django"] = list(django.VERSION[:2])
setup_test_environment()
client, host = Client(raise_request_exception=False), settings.ALLOWED_HOSTS[0]
def get(path, environ=None, **headers):
    response = client.get(path, headers={"host": host, **headers}, **(environ or {}))
    return {"status": response.status_code, "headers": dict(response.headers),
            "body": response.json() if path == "/whoami/" and response.status_code == 200 else None,
            "mails": [sorted(m.to) for m in mail.outbox]}
# What nginx sends: X-Forwarded-Proto is its $scheme.
facts["proxied"] = get("/whoami/", x_forwarded_proto=os.environ["PROBE_SCHEME"])
facts["http"] = get("/whoami/", x_forwarded_proto="http")
facts["bad_host"] = get("/whoami/", host="attacker.example")
facts["error"] = get("/boom/", x_forwarded_proto=os.environ["PROBE_SCHEME"])
# The client's address: from nginx's X-Real-IP over a unix socket (empty peer), never from a stranger.
facts["unix_peer"] = get("/whoami/", {"REMOTE_ADDR": ""}, x_real_ip="203.0.113.7")
facts["stranger"] = get("/whoami/", {"REMOTE_ADDR": "198.51.100.9"}, x_real_ip="203.0.113.7")
print(json.dumps(facts))
"""


def _all_cases() -> dict[str, Spec]:
    cases = {path.stem: load_spec(path) for path in example_paths()}
    return cases | {name: parse_spec(text, source=name) for name, text in EXTRA_SPECS.items()}


CASES = _all_cases()


def _rendered_module(spec: Spec) -> str:
    (rendered,) = [f for f in render_all(spec) if f.dest.parts[0] == "django"]
    return rendered.content


def _write_module(root: Path, dotted: str, text: str) -> None:
    *packages, module = dotted.split(".")
    folder = root.joinpath(*packages)
    folder.mkdir(parents=True, exist_ok=True)
    for depth in range(1, len(packages) + 1):
        (root.joinpath(*packages[:depth]) / "__init__.py").touch()
    (folder / f"{module}.py").write_text(text, encoding="utf-8")


def _make_site(root: Path, spec: Spec) -> Path:
    """A package named after the project: base settings, urls, wsgi/asgi and the rendered module."""
    d = spec.django
    project = str(d.project)
    _write_module(root, f"{project}.urls", URLS)
    _write_module(root, f"{project}.wsgi", "from testsite.wsgi import application  # noqa: F401\n")
    _write_module(root, f"{project}.asgi", "from testsite.asgi import application  # noqa: F401\n")
    _write_module(root, str(d.base_settings), BASE_SETTINGS.format(urls=f"{project}.urls"))
    _write_module(root, str(d.settings_module), _rendered_module(spec))
    return root


def _secrets_env(spec: Spec, **extra: str) -> dict[str, str]:
    values = {target.SECRET_KEY: STRONG_KEY, target.SECRET_KEY_FALLBACKS: OLD_KEY + "\n",
              target.DATABASE_PASSWORD: "db-password", target.EMAIL_HOST_PASSWORD: "mail-password"}
    # SENTRY_DSN is left out: without it the settings set up no error tracking (tested on its own).
    return {name: values[name] for name in target.secrets(spec) if name in values} | extra


def _run(python: str, site: Path, spec: Spec, args: list[str],
         env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "EMAIL"))}
    clean.pop("CREDENTIALS_DIRECTORY", None)
    clean |= {"PYTHONPATH": f"{site}{os.pathsep}{DJPROJECT}",
              "DJANGO_SETTINGS_MODULE": str(spec.django.settings_module), **env}
    return subprocess.run([python, *args], cwd=DJPROJECT, env=clean, capture_output=True, text=True,
                          timeout=120)


def _python312() -> str | None:
    found = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python"))
    return str(found[-1]) if found else shutil.which("python3.12")


def _unavailable(message: str) -> None:
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: the Django 6 check must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def django6_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The python of a venv with the newest Django 6.x (psycopg and its pool, redis: the specs' backends)."""
    venv = Path(os.environ.get(DJANGO6_VENV_VARIABLE) or tmp_path_factory.mktemp("django6") / "venv")
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import django, psycopg, psycopg_pool, redis, whitenoise, sentry_sdk, django_tasks_db; "
             "assert django.VERSION >= (6,)"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    base = _python312()
    if base is None:
        _unavailable("no Python 3.12 to run Django 6.x")
    steps = [[base, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "django>=6", "psycopg[binary,pool]>=3.1",
              "redis>=5", "whitenoise>=6", "sentry-sdk>=2", "django-tasks-db>=0.13"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            _unavailable(f"cannot build the Django 6 venv: {' '.join(step)}: {done.stderr[-500:]}")
    return str(python)


@pytest.fixture(params=["django5", "django6"])
def python(request: pytest.FixtureRequest) -> str:
    """The interpreter of one supported Django: 5.2 here, the newest 6.x in the session venv."""
    if request.param == "django5":
        return sys.executable
    return request.getfixturevalue("django6_python")


# manage.py check --deploy, and requests through Django ------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_deploy_finds_no_issue(case: str, python: str, tmp_path: Path) -> None:
    spec = CASES[case]
    site = _make_site(tmp_path, spec)
    done = _run(python, site, spec, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                _secrets_env(spec))
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("case", ["full", "tls-off", "relay", "load-balancer"])
def test_django_serves_as_the_settings_say(case: str, python: str, tmp_path: Path) -> None:
    spec = CASES[case]
    https = target.is_https(spec)
    site = _make_site(tmp_path, spec)
    (site / "probe.py").write_text(PROBE, encoding="utf-8")
    done = _run(python, site, spec, ["-W", "error::DeprecationWarning", "-W",
                                     "error::PendingDeprecationWarning", str(site / "probe.py")],
                _secrets_env(spec, PROBE_SCHEME="https" if https else "http"))
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert facts["proxied"]["body"]["secure"] is https
    assert facts["proxied"]["body"]["host"] == spec.domain
    # nginx owns the redirect: a plain-HTTP request reaching Django is served, not redirected.
    assert facts["http"]["status"] == 200 and facts["http"]["body"]["secure"] is False
    hsts = facts["proxied"]["headers"].get("Strict-Transport-Security")
    assert (hsts is not None) is (https and spec.tls.hsts_seconds > 0)
    assert facts["proxied"]["headers"]["X-Frame-Options"] == "DENY"
    assert facts["proxied"]["headers"]["Cross-Origin-Opener-Policy"] == "same-origin"
    assert facts["bad_host"]["status"] == 400 and facts["bad_host"]["mails"] == []
    assert "DisallowedHost" in done.stderr  # logged to stderr for the process manager...
    assert facts["error"]["status"] == 500
    assert facts["unix_peer"]["body"]["remote_addr"] == "203.0.113.7"
    assert facts["stranger"]["body"]["remote_addr"] == "198.51.100.9"
    assert facts["error"]["mails"] == ([sorted(spec.django.admins)] if spec.django.admins else [])
    _assert_csp(spec, facts)


def _assert_csp(spec: Spec, facts: dict) -> None:
    """Django 6 sends the policy django.csp asks for, report-only unless told to enforce; 5.2 sends none."""
    headers, mode = facts["proxied"]["headers"], spec.django.csp.mode
    sent = {name: headers.get(name) for name in ("Content-Security-Policy",
                                                  "Content-Security-Policy-Report-Only")}
    wanted = {"Content-Security-Policy": None, "Content-Security-Policy-Report-Only": None}
    if facts["django"] >= [6, 0] and mode != "off":
        policy = {**target.default_csp(spec), **spec.django.csp.directives}
        if spec.django.csp.report_uri:
            policy["report-uri"] = [spec.django.csp.report_uri]
        name = "Content-Security-Policy" if mode == "enforce" else "Content-Security-Policy-Report-Only"
        wanted[name] = "; ".join(f"{key} {' '.join(values)}" for key, values in policy.items())
    assert sent == wanted


def test_relay_spec_reaches_the_smtp_backend(python: str, tmp_path: Path) -> None:
    spec = CASES["relay"]
    site = _make_site(tmp_path, spec)
    (site / "probe.py").write_text(PROBE, encoding="utf-8")
    done = _run(python, site, spec, [str(site / "probe.py")], _secrets_env(spec, PROBE_SCHEME="https"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["smtp"] == ["smtp.example.org", 587, True, False, 10, "blog-mailer", True]


def test_missing_secret_key_fails_naming_the_variable(python: str, tmp_path: Path) -> None:
    spec = CASES["minimal"]
    site = _make_site(tmp_path, spec)
    env = _secrets_env(spec)
    del env[target.SECRET_KEY]
    done = _run(python, site, spec, ["manage.py", "check", "--deploy"], env)
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in done.stderr


def test_a_silenced_check_is_the_only_thing_keeping_check_quiet(tmp_path: Path) -> None:
    """Proves the check can fail: without its SILENCED_SYSTEM_CHECKS, the module reports W008."""
    spec = CASES["full"]
    site = _make_site(tmp_path, spec)
    module = site.joinpath(*str(spec.django.settings_module).split(".")).with_suffix(".py")
    module.write_text(module.read_text() + "SILENCED_SYSTEM_CHECKS = []\n")
    done = _run(sys.executable, site, spec, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                _secrets_env(spec))
    assert done.returncode != 0
    assert "security.W008" in done.stderr and "security.W021" in done.stderr


# The secret loader, in process ------------------------------------------------------------------


@pytest.fixture
def load_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Execute a spec's rendered module against an empty base, with a clean secret environment."""
    for name in [*os.environ]:
        if name.startswith(("DJANGO_SECRET", "DATABASE_PASSWORD", "EMAIL_HOST_PASSWORD", "CREDENTIALS")):
            monkeypatch.delenv(name)

    def load(spec: Spec, **base_values: object) -> dict:
        package, base = str(spec.django.base_settings).rsplit(".", 1)
        base_module = types.ModuleType(f"{package}.{base}")
        base_module.__dict__.update(base_values)
        monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
        monkeypatch.setitem(sys.modules, f"{package}.{base}", base_module)
        namespace: dict = {"__name__": str(spec.django.settings_module)}
        exec(compile(_rendered_module(spec), "settings.py", "exec"), namespace)  # noqa: S102
        return namespace

    return load


def _credentials(tmp_path: Path, **files: str) -> str:
    directory = tmp_path / "credentials"
    directory.mkdir(exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(value, encoding="utf-8")
    return str(directory)


def test_loader_prefers_credentials_then_named_file_then_environment(load_settings, monkeypatch,
                                                                      tmp_path) -> None:
    credentials = _credentials(tmp_path, DJANGO_SECRET_KEY="from-credentials\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", credentials)
    named = tmp_path / "secret_key"
    named.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("DJANGO_SECRET_KEY_FILE", str(named))
    monkeypatch.setenv("DJANGO_SECRET_KEY", "from-environment")
    spec = CASES["minimal"]
    assert load_settings(spec)["SECRET_KEY"] == "from-credentials"
    (tmp_path / "credentials" / "DJANGO_SECRET_KEY").unlink()
    assert load_settings(spec)["SECRET_KEY"] == "from-file"
    monkeypatch.delenv("DJANGO_SECRET_KEY_FILE")
    assert load_settings(spec)["SECRET_KEY"] == "from-environment"


@pytest.mark.parametrize(("stored", "read"), [
    ("key\n", "key"),
    ("key\r\n", "key"),
    ("key\n\n", "key\n"),
    (" key \n", " key "),
    ("key", "key"),
])
def test_loader_strips_exactly_one_trailing_newline(load_settings, monkeypatch, tmp_path, stored,
                                                     read) -> None:
    named = tmp_path / "secret_key"
    named.write_bytes(stored.encode())
    monkeypatch.setenv("DJANGO_SECRET_KEY_FILE", str(named))
    assert load_settings(CASES["minimal"])["SECRET_KEY"] == read


@pytest.mark.parametrize(("env", "message"), [
    ({}, "DJANGO_SECRET_KEY is not set"),
    ({"DJANGO_SECRET_KEY": "\n"}, "DJANGO_SECRET_KEY is empty"),
    ({"DJANGO_SECRET_KEY_FILE": "/nonexistent/key"}, "DJANGO_SECRET_KEY_FILE: cannot read /nonexistent/key"),
])
def test_loader_refuses_a_missing_secret(load_settings, monkeypatch, env, message) -> None:
    from django.core.exceptions import ImproperlyConfigured

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        load_settings(CASES["minimal"])


def test_database_password_is_required_for_a_server_database(load_settings, monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PASSWORD is not set"):
        load_settings(CASES["full"])
    monkeypatch.setenv("DATABASE_PASSWORD", "pw")
    assert load_settings(CASES["full"])["DATABASES"]["default"]["PASSWORD"] == "pw"


@pytest.mark.parametrize(("stored", "keys"), [(None, []), ("", []), ("old1\nold2\n", ["old1", "old2"]),
                                              ("old1 old2", ["old1", "old2"])])
def test_key_fallbacks_are_optional_and_split_on_whitespace(load_settings, monkeypatch, stored, keys) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    if stored is not None:
        monkeypatch.setenv("DJANGO_SECRET_KEY_FALLBACKS", stored)
    assert load_settings(CASES["minimal"])["SECRET_KEY_FALLBACKS"] == keys


def test_mysql_settings_import_with_utf8mb4_and_timeouts(load_settings, monkeypatch) -> None:
    """No MySQL driver here, so check --deploy cannot load the backend: the module is executed only."""
    spec = parse_spec(MINIMAL + "  database:\n    engine: mysql\n")
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("DATABASE_PASSWORD", "pw")
    default = load_settings(spec)["DATABASES"]["default"]
    assert default == {"ENGINE": "django.db.backends.mysql", "NAME": "blog", "USER": "blog", "PASSWORD": "pw",
                       "HOST": "127.0.0.1", "PORT": "3306", "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True,
                       "OPTIONS": {"charset": "utf8mb4", "connect_timeout": 5, "read_timeout": 30,
                                   "write_timeout": 30}}


# Decisions, from the spec alone --------------------------------------------------------------------


def test_secrets_follow_the_spec() -> None:
    assert target.secrets(CASES["minimal"]) == ["DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FALLBACKS"]
    assert target.secrets(CASES["full"])[-1] == "DATABASE_PASSWORD"
    assert target.secrets(CASES["uvicorn-systemd"]) == ["DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FALLBACKS"]
    assert target.secrets(CASES["relay"])[-1] == "EMAIL_HOST_PASSWORD"


@pytest.mark.parametrize("case", sorted(CASES))
def test_module_reads_exactly_the_secrets_the_process_managers_provide(case: str) -> None:
    text = _rendered_module(CASES[case])
    assert set(re.findall(r"_read_secret\('([A-Z_]+)'", text)) == set(target.secrets(CASES[case]))
    assert text.splitlines()[4] == f"from {CASES[case].django.base_settings} import *  # noqa: F403" \
        " - the project's settings; production overrides follow"


def test_asgi_closes_connections_and_wsgi_keeps_them_with_health_checks() -> None:
    assert target.database(CASES["asgi-both"])["CONN_MAX_AGE"] == 0
    assert target.database(CASES["asgi-both"])["CONN_HEALTH_CHECKS"] is False
    assert target.database(CASES["full"])["CONN_MAX_AGE"] == 60
    assert target.database(CASES["full"])["CONN_HEALTH_CHECKS"] is True


def test_memcached_location_is_passed_as_pymemcache_reads_it() -> None:
    spec = parse_spec(MINIMAL + "  cache: {backend: memcached, location: 'unix:/run/memcached/m.sock'}\n")
    (caches,) = target.data_settings(spec)
    assert caches.value == {"default": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                                        "LOCATION": "unix:/run/memcached/m.sock",
                                        "OPTIONS": {"connect_timeout": 5, "timeout": 5}}}


def test_origins_carry_the_scheme_and_a_non_default_port() -> None:
    assert target.origins(CASES["full"]) == ["https://shop.example.com", "https://www.shop.example.com"]
    assert target.origins(CASES["tls-off"]) == ["http://blog.example.org:8080"]
    assert target.origins(CASES["load-balancer"]) == ["https://blog.example.org"]


def test_silenced_checks_each_have_a_reason_from_the_spec() -> None:
    assert dict(target.silenced_checks(CASES["uvicorn-systemd"])) == {
        "security.W008": "SECURE_SSL_REDIRECT is off because nginx redirects HTTP to HTTPS"}
    assert set(dict(target.silenced_checks(CASES["tls-off"]))) == {
        "security.W004", "security.W008", "security.W010", "security.W011", "security.W012", "security.W016"}
    assert set(dict(target.silenced_checks(CASES["no-hsts"]))) == {"security.W004", "security.W008"}
    assert dict(target.silenced_checks(CASES["load-balancer"])) == {
        "security.W008": "SECURE_SSL_REDIRECT is off because the load balancer redirects HTTP to HTTPS",
        "security.W021": "tls.hsts_preload is false: not on the browsers' preload list"}
    assert set(dict(target.silenced_checks(CASES["relay"]))) == {
        "security.W005", "security.W008", "security.W021", "staticfiles.W004"}


@pytest.mark.parametrize(("value", "message"), [
    ("security.W023", "did you mean 'security.E023'?"),
    ("security.W007", "was removed in Django 3.0"),
    ("security.W099", "is not a Django check id"),
    ("W008", "is not a Django check id like"),
    ("security.w008", "is not a Django check id like"),
])
def test_spec_rejects_unknown_check_ids(value: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(MINIMAL + f"  silenced_checks: [{value}]\n")
    (problem,) = error.value.problems
    assert problem.startswith(f"django.silenced_checks[0]: {value!r}") and message in problem


@pytest.mark.parametrize("value", [
    {"a": [1, 2], "b": ("x",), "c": {}},
    {"k" * 40: {"nested" * 5: list(range(30))}},
    [target.Code("_read_secret('X')")],
])
def test_format_literal_is_python_and_fits_the_line(value) -> None:
    text = target.format_literal(value, used=10)
    assert all(len(line) <= target.LINE_WIDTH for line in text.splitlines())
    if isinstance(value, list):
        assert text == "[_read_secret('X')]"
    else:
        assert ast.literal_eval(text) == value


@pytest.mark.parametrize(("name", "moved"), [
    ("/srv/blog/app/db.sqlite3", True),
    ("db.sqlite3", True),  # relative: opened in the working directory, the code
    ("/srv/blog/app/../app/data/x.db", True),
    ("/var/lib/other/db.sqlite3", False),
    (":memory:", False),
])
def test_base_sqlite_inside_the_code_moves_to_the_state_directory(load_settings, monkeypatch, name,
                                                                 moved) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    base = {"ENGINE": "django.db.backends.sqlite3", "NAME": Path(name) if name.startswith("/") else name}
    default = load_settings(CASES["minimal"], DATABASES={"default": base})["DATABASES"]["default"]
    assert default["NAME"] == ("/var/lib/blog/db.sqlite3" if moved else base["NAME"])
    assert default["ENGINE"] == base["ENGINE"]


# Backing services that are slow or never answer: the rendered timeouts, through Django's backends ----

DB_PROBE = """\
import json, sys, time, django
django.setup()
from django.db import connection
from django.core.cache import cache

def timed(action):
    start = time.monotonic()
    try:
        result = action()
    except Exception as error:
        cause = error.__cause__ or error
        result = type(cause).__module__ + "." + type(cause).__name__
    return {"result": result, "seconds": round(time.monotonic() - start, 1)}

def query(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]

facts = {}
for what in sys.argv[1:]:
    if what == "sleep":
        facts[what] = timed(lambda: query("select pg_sleep(4)"))
    elif what == "quick":
        facts[what] = timed(lambda: query("select 1"))
        pool = getattr(connection, "pool", None)  # postgresql only
        facts["pool_max_size"] = pool.max_size if pool else None
    elif what == "cache":
        facts[what] = timed(lambda: cache.get("key"))
print(json.dumps(facts))
"""


def _postgres_tool(name: str) -> str:
    """A PostgreSQL server program: on PATH, else where Debian's postgresql package keeps it."""
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[-1:]), None)
    return str(found) if found else require_tool(name, "for the database timeouts (Debian: postgresql)")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server on a unix socket only (no TCP); yields the socket directory."""
    initdb, pg_ctl = _postgres_tool("initdb"), _postgres_tool("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="djdeploy-pg-", dir="/tmp"))
    base.chmod(0o755)
    # PostgreSQL refuses to run as root.
    user = {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
    shutil.chown(base, *user.values()) if user else None
    data, log = base / "data", base / "log"
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True, timeout=60, **user)  # noqa: E731
    run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust")
    run(pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o", f"-c listen_addresses='' -k {base}", "start")
    try:
        yield str(base)
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60,
                       **user)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port whose kernel completes the TCP handshake and where nothing ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener.getsockname()[1]


def _probe_services(python: str, tmp_path: Path, spec: Spec, *what: str) -> dict:
    site = _make_site(tmp_path, spec)
    (site / "db_probe.py").write_text(DB_PROBE, encoding="utf-8")
    done = _run(python, site, spec, [str(site / "db_probe.py"), *what], _secrets_env(spec))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _postgres_spec(host: str, port: int = 5432, **app_server: object) -> Spec:
    database = {"engine": "postgresql", "name": "postgres", "user": "postgres", "host": host, "port": port}
    return validate_data(yaml.safe_load(MINIMAL) | {"app_server": {"timeout": 1, **app_server}} | {
        "django": {"project": "blog", "database": database}})


def test_postgresql_cancels_a_statement_longer_than_the_app_timeout(python: str, postgres: str,
                                                                    tmp_path: Path) -> None:
    facts = _probe_services(python, tmp_path, _postgres_spec(postgres), "quick", "sleep")
    assert facts["quick"]["result"] == 1 and facts["pool_max_size"] is None  # WSGI: no pool
    assert facts["sleep"]["result"] == "psycopg.errors.QueryCanceled"
    assert facts["sleep"]["seconds"] < 3  # statement_timeout 1000 ms, not pg_sleep's 4 s


def test_postgresql_under_asgi_borrows_from_a_pool(python: str, postgres: str, tmp_path: Path) -> None:
    spec = _postgres_spec(postgres, kind="uvicorn", workers=2)
    facts = _probe_services(python, tmp_path, spec, "quick", "sleep")
    assert facts["quick"]["result"] == 1 and facts["pool_max_size"] == spec.django.database.pool_max_size
    assert facts["sleep"]["result"] == "psycopg.errors.QueryCanceled"


def test_an_unanswering_database_costs_the_connect_timeout(silent_server: int, tmp_path: Path) -> None:
    facts = _probe_services(sys.executable, tmp_path, _postgres_spec("127.0.0.1", silent_server), "quick")
    assert facts["quick"]["result"] == "psycopg.errors.ConnectionTimeout"
    assert target.CONNECT_TIMEOUT - 1 <= facts["quick"]["seconds"] < target.CONNECT_TIMEOUT + 3


def test_an_unanswering_redis_costs_the_socket_timeout(silent_server: int, tmp_path: Path) -> None:
    spec = parse_spec(MINIMAL + f"  cache: {{location: 'redis://127.0.0.1:{silent_server}/0'}}\n")
    facts = _probe_services(sys.executable, tmp_path, spec, "cache")
    assert facts["cache"]["result"] == "redis.exceptions.TimeoutError"
    assert facts["cache"]["seconds"] < target.CACHE_TIMEOUT + 3


# Error mail: through the rendered settings to a real SMTP listener, or reported when there is none ---


class SmtpSink:
    """An SMTP server on loopback that accepts every message and keeps (recipients, data)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: list[tuple[list[str], str]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                self._session(conn, lines)

    def _session(self, conn: socket.socket, lines) -> None:
        conn.sendall(b"220 sink ESMTP\r\n")
        recipients: list[str] = []
        for line in lines:
            verb = line[:4].upper()
            if verb == b"DATA":
                conn.sendall(b"354 go on\r\n")
                data = b"".join(iter(lines.readline, b".\r\n"))
                self.messages.append((recipients, data.decode(errors="replace")))
                recipients = []
            elif verb == b"RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def _mail_spec(port: int) -> Spec:
    return parse_spec(MINIMAL + f"  email_host: localhost\n  email_port: {port}\n"
                                "  admins: [ops@example.org, dev@example.org]\n")


def test_sendtestemail_reaches_the_relay_through_the_rendered_settings(python: str, smtp_sink: SmtpSink,
                                                                       tmp_path: Path) -> None:
    """INSTALL.md's check, `manage.py sendtestemail --admins`, against an SMTP server on the spec's port."""
    spec = _mail_spec(smtp_sink.port)
    assert spec.django.email_relay == "external"
    site = _make_site(tmp_path, spec)
    done = _run(python, site, spec, ["manage.py", "sendtestemail", "--admins"], _secrets_env(spec))
    assert done.returncode == 0, done.stderr
    ((recipients, data),) = smtp_sink.messages
    assert sorted(recipients) == ["dev@example.org", "ops@example.org"]
    assert "Subject: [blog] Test email from" in data and "From: root@blog.example.org" in data


MAIL_FAILURE_PROBE = """\
import django
django.setup()
from django.conf import settings
from django.test import Client
response = Client(raise_request_exception=False).get("/boom/", headers={"host": settings.ALLOWED_HOSTS[0]})
print(response.status_code)
"""


def test_error_mail_the_relay_refuses_is_logged_not_dropped(python: str, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # nothing listens here once the block ends
    spec = _mail_spec(port)
    site = _make_site(tmp_path, spec)
    (site / "probe.py").write_text(MAIL_FAILURE_PROBE, encoding="utf-8")
    done = _run(python, site, spec, [str(site / "probe.py")], _secrets_env(spec))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "500"
    assert re.search(r"ERROR blog\.mail \[\d+\] error mail to ADMINS was not sent: ConnectionRefusedError",
                     done.stderr), done.stderr


def test_an_unanswering_mysql_costs_the_connect_timeout(silent_server: int, tmp_path: Path) -> None:
    """mysqlclient takes the rendered OPTIONS (it refuses unknown ones) and gives up after connect_timeout."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        _unavailable("mysqlclient is not installed (it needs a C toolchain: see .ci/run)")
    database = {"engine": "mysql", "host": "127.0.0.1", "port": silent_server}
    spec = validate_data(yaml.safe_load(MINIMAL) | {"django": {"project": "blog", "database": database}})
    facts = _probe_services(sys.executable, tmp_path, spec, "quick")
    assert facts["quick"]["result"] == "MySQLdb.OperationalError"
    assert target.CONNECT_TIMEOUT - 1 <= facts["quick"]["seconds"] < target.CONNECT_TIMEOUT + 3


# The health endpoint: answered by the settings' own middleware, sync and async -------------------

HEALTH_PROBE = """\
import asyncio, json, logging, sys, django
django.setup()
from django.core import mail
from django.test import AsyncClient, Client
from django.test.utils import setup_test_environment

setup_test_environment()
records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append(f"{record.name}: {record.getMessage()}")

logging.getLogger().addHandler(Keep())
path = sys.argv[1]

def facts(response):
    return {"status": response.status_code, "body": json.loads(response.content),
            "cookies": sorted(response.cookies), "cache": response.headers.get("Cache-Control")}

# A load balancer's checker names the host by its address, and no CSRF token comes with a POST.
headers = {"host": "10.0.0.5"}
found = {"sync": facts(Client(enforce_csrf_checks=True).get(path, headers=headers)),
         "post": facts(Client(enforce_csrf_checks=True).post(path, headers=headers)),
         "async": facts(asyncio.run(AsyncClient().get(path, headers=headers))),
         "other": Client().get("/whoami/", headers=headers).status_code}
found |= {"logged": records, "mails": len(mail.outbox)}
print(json.dumps(found))
"""


def _health_facts(python: str, tmp_path: Path, spec: Spec) -> tuple[dict, str]:
    site = _make_site(tmp_path, spec)
    (site / "health_probe.py").write_text(HEALTH_PROBE, encoding="utf-8")
    done = _run(python, site, spec, [str(site / "health_probe.py"), spec.health.path], _secrets_env(spec))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


def test_health_endpoint_answers_200_when_database_and_cache_answer(python: str, tmp_path: Path) -> None:
    spec = parse_spec(MINIMAL + f"  admins: [ops@example.org]\n  database: {{engine: sqlite, name: '{tmp_path}/db.sqlite3'}}\n"
                      "  cache: {backend: locmem}\nhealth: {path: /-/up}\n")
    facts, stderr = _health_facts(python, tmp_path, spec)
    for way in ("sync", "post", "async"):
        assert facts[way] == {"status": 200, "body": {"status": "ok", "failed": {}}, "cookies": [],
                              "cache": "no-store"}, way
    assert facts["other"] == 400  # every other path still checks ALLOWED_HOSTS
    assert not [r for r in facts["logged"] if "/-/up" in r], facts["logged"]


def test_health_endpoint_answers_503_naming_what_failed_without_logging(python: str, silent_server: int,
                                                                       tmp_path: Path) -> None:
    database = f"{{engine: postgresql, name: blog, host: 127.0.0.1, port: {silent_server}}}"
    spec = parse_spec(MINIMAL + f"  admins: [ops@example.org]\n  database: {database}\n"
                      f"  cache: {{location: 'redis://127.0.0.1:{_closed_port()}/0'}}\n")
    facts, stderr = _health_facts(python, tmp_path, spec)
    failed = {"database default": "OperationalError", "cache default": "ConnectionError"}
    for way in ("sync", "post", "async"):
        assert facts[way]["status"] == 503, way
        assert facts[way]["body"] == {"status": "failing", "failed": failed}, way
        assert facts[way]["cookies"] == []
    # Neither django.request's "Service Unavailable" line nor an error mail to ADMINS.
    assert facts["logged"] == [] and facts["mails"] == 0, facts
    assert "Service Unavailable" not in stderr


def test_health_endpoint_reports_an_unreadable_sqlite_file(python: str, tmp_path: Path) -> None:
    spec = parse_spec(MINIMAL + f"  database: {{engine: sqlite, name: '{tmp_path}/missing/db.sqlite3'}}\n")
    facts, _ = _health_facts(python, tmp_path, spec)
    assert facts["sync"]["status"] == 503
    assert facts["sync"]["body"]["failed"] == {"database default": "OperationalError"}


def test_health_middleware_comes_first(load_settings, monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    spec = CASES["minimal"]
    middleware = load_settings(spec, MIDDLEWARE=["django.middleware.security.SecurityMiddleware"])["MIDDLEWARE"]
    assert middleware == [f"{spec.django.settings_module}.health_check_middleware",
                          f"{spec.django.settings_module}.client_address_middleware",
                          "django.middleware.security.SecurityMiddleware"]


# WhiteNoise, protected files, the tasks worker's backend ----------------------------------------

def test_whitenoise_follows_security_middleware_and_stores_compressed_copies(load_settings, monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    spec = parse_spec(MINIMAL + "static: {server: whitenoise}\n")
    base = ["django.middleware.security.SecurityMiddleware", "django.contrib.sessions.middleware.SessionMiddleware"]
    settings = load_settings(spec, MIDDLEWARE=base)
    assert settings["MIDDLEWARE"][2:] == [base[0], target.WHITENOISE_MIDDLEWARE, base[1]]
    assert settings["STORAGES"]["staticfiles"] == {"BACKEND": target.STATIC_STORAGE}
    assert CASES["minimal"].static.server == "nginx"
    assert target.WHITENOISE_MIDDLEWARE not in load_settings(CASES["minimal"], MIDDLEWARE=base)["MIDDLEWARE"]


def test_protected_files_have_a_storage_and_a_url(load_settings, monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    settings = load_settings(parse_spec(MINIMAL + "media: {protected: {url: /downloads/}}\n"))
    assert settings["PROTECTED_MEDIA_URL"] == "/downloads/"
    assert settings["PROTECTED_MEDIA_ROOT"] == "/srv/blog/protected"
    assert settings["STORAGES"]["protected"] == {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                 "OPTIONS": {"location": "/srv/blog/protected",
                                                             "base_url": "/downloads/"}}
    assert "PROTECTED_MEDIA_URL" not in load_settings(CASES["minimal"])


@pytest.mark.parametrize("background", [
    "[{name: tasks, preset: db_worker}]",
    "[{name: tasks, command: 'manage.py db_worker --queue-name mail'}]",
])
def test_db_worker_brings_its_backend_and_app(load_settings, monkeypatch, background: str) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    spec = parse_spec(MINIMAL + f"background: {background}\n")
    settings = load_settings(spec, INSTALLED_APPS=["django.contrib.admin"], TASKS={"other": {"BACKEND": "x"}})
    assert settings["INSTALLED_APPS"] == ["django.contrib.admin", "django_tasks", "django_tasks_db"]  # Django 5.2
    assert settings["TASKS"] == {"other": {"BACKEND": "x"}, "default": {"BACKEND": target.TASKS_BACKEND}}
    kept = {"default": {"BACKEND": target.TASKS_BACKEND, "QUEUES": ["mail"]}}
    assert load_settings(spec, INSTALLED_APPS=[], TASKS=kept)["TASKS"] == kept
    assert "TASKS" not in load_settings(CASES["minimal"], INSTALLED_APPS=[])


# Error tracking: sentry_sdk from the optional secret SENTRY_DSN ----------------------------------

SENTRY_PROBE = """\
import json, django
django.setup()
import sys
client = sys.modules["sentry_sdk"].get_client() if "sentry_sdk" in sys.modules else None
options = client.options if client is not None and client.is_active() else None
print(json.dumps({"imported": "sentry_sdk" in sys.modules,
                  "options": options and {k: options[k] for k in ("dsn", "environment", "release",
                                                                  "send_default_pii", "traces_sample_rate")}}))
"""
SENTRY_SPEC = MINIMAL + "  error_tracking: {environment: staging, release: blog@1.2.3}\n"
DSN = "https://0123456789abcdef@errors.example.org/42"


def _sentry_facts(python: str, tmp_path: Path, spec: Spec, **env: str) -> dict:
    site = _make_site(tmp_path, spec)
    (site / "sentry_probe.py").write_text(SENTRY_PROBE, encoding="utf-8")
    done = _run(python, site, spec, [str(site / "sentry_probe.py")], _secrets_env(spec, **env))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_error_tracking_starts_from_the_dsn_file(python: str, tmp_path: Path) -> None:
    dsn_file = tmp_path / "SENTRY_DSN"
    dsn_file.write_text(DSN + "\n")
    facts = _sentry_facts(python, tmp_path, parse_spec(SENTRY_SPEC), SENTRY_DSN_FILE=str(dsn_file))
    assert facts["options"] == {"dsn": DSN, "environment": "staging", "release": "blog@1.2.3",
                                "send_default_pii": False, "traces_sample_rate": 0.0}


def test_error_tracking_is_off_without_the_secret(python: str, tmp_path: Path) -> None:
    """The process managers always name the file; until someone writes it, nothing is set up."""
    facts = _sentry_facts(python, tmp_path, parse_spec(SENTRY_SPEC), SENTRY_DSN_FILE=str(tmp_path / "absent"))
    assert facts == {"imported": False, "options": None}


def test_error_tracking_with_the_secret_but_no_sentry_sdk_names_the_package(load_settings, monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("DJANGO_SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("SENTRY_DSN", DSN)
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # an import of it fails
    with pytest.raises(ImproperlyConfigured, match="pip install sentry-sdk"):
        load_settings(parse_spec(SENTRY_SPEC))


TASK_PROBE = """\
import json, sys, django
django.setup()
from django.core.management import call_command
try:
    from django.tasks import task  # Django 6.0+
except ImportError:
    from django_tasks import task  # the backport on 5.2

@task()
def add(a, b):
    return a + b

call_command("migrate", verbosity=0)
result = add.enqueue(2, 3)
call_command("db_worker", batch=True, no_startup_delay=True, verbosity=0)
result.refresh()
print(json.dumps({"status": str(result.status), "value": result.return_value}))
"""


def test_db_worker_preset_runs_a_task_with_the_rendered_settings(python: str, tmp_path: Path) -> None:
    """What the preset's program runs (manage.py db_worker), against the settings it renders."""
    spec = parse_spec(MINIMAL + f"  database: {{engine: sqlite, name: '{tmp_path}/db.sqlite3'}}\n"
                      "background: [{name: tasks, preset: db_worker}]\n")
    site = _make_site(tmp_path, spec)
    _write_module(site, f"{spec.django.project}.probe_tasks", TASK_PROBE)
    done = _run(python, site, spec, ["-m", f"{spec.django.project}.probe_tasks"], _secrets_env(spec))
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.splitlines()[-1])
    assert facts["value"] == 5 and facts["status"].endswith("SUCCESSFUL"), facts
