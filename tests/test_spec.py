"""The spec: defaults, grammar of every value, cross-field rules, and errors that name the field."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from scaffold import grammar
from scaffold import spec as spec_module
from scaffold.cli import app
from scaffold.errors import SpecError
from scaffold.messages import format_location
from scaffold.spec import load_spec, parse_spec, validate_data
from support import EXAMPLES, example_paths

_MODELS = [m for m in vars(spec_module).values()
           if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == spec_module.__name__]
FULL = yaml.safe_load((EXAMPLES / "full.yaml").read_text())


def _with(changes: dict[str, Any], base: dict | None = None) -> dict:
    """A copy of the full example with dotted-path changes applied (None deletes the key)."""
    data = copy.deepcopy(base or FULL)
    for dotted, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return data


# Each row: one realistic mistake → the exact field path the error must name (and a word of it).
BAD_SPECS = [
    ({"version": 2}, "version", "1"),
    ({"name": "Shop"}, "name", "slug"),
    ({"name": "shop_app"}, "name", "slug"),
    ({"domain": "*.shop.example.com"}, "domain", "wildcard"),
    ({"domain": "shop..example.com"}, "domain", "not a valid host name"),
    ({"domain": "Shop.example.com"}, "domain", "lowercase"),
    ({"domain": "10.0.0.1"}, "domain", "IP address"),
    ({"aliases": ["shop.example.com"]}, "aliases[0]", "repeats the domain"),
    ({"aliases": ["www.shop.example.com", "www.shop.example.com"]}, "aliases[1]", "another alias"),
    ({"django.project": "my-shop"}, "django.project", "dotted Python module"),
    ({"django.settings_module": "shop.class"}, "django.settings_module", "dotted Python module"),
    ({"django.root": "srv/shop/app"}, "django.root", "absolute path"),
    ({"django.root": "/srv/shop app"}, "django.root", "a space"),
    ({"django.venv": "/srv/shop;rm"}, "django.venv", "';'"),
    ({"django.root": "/srv/{shop}"}, "django.root", "'{'"),
    ({"django.root": "/srv/$HOME"}, "django.root", "'$'"),
    ({"django.root": "/srv/../etc"}, "django.root", "'..'"),
    ({"django.user": "root"}, "django.user", "never runs as root"),
    ({"django.group": "root"}, "django.group", "never runs as root"),
    ({"django.database.engine": "oracle"}, "django.database.engine", "'oracle'"),
    ({"django.database.port": 70000}, "django.database.port", "65535"),
    ({"django.database.password": "hunter2"}, "django.database.password", "secrets never go in the spec"),
    ({"django.database.engine": "sqlite", "django.database.name": "db.sqlite3"},
     "django.database.user", "not used by sqlite"),
    ({"django.cache.location": "127.0.0.1:6379"}, "django.cache.location", "redis://"),
    ({"django.admins": ["ops at example.com"]}, "django.admins[0]", "e-mail"),
    ({"app_server.kind": "waitress"}, "app_server.kind", "'waitress'"),
    ({"app_server.kind": "uwsgi", "app_server.interface": "asgi"}, "app_server.interface", "WSGI only"),
    ({"app_server.kind": "daphne", "app_server.interface": "wsgi", "app_server.workers": 2},
     "app_server.interface", "ASGI only"),
    ({"app_server.kind": "hypercorn", "app_server.workers": 2, "app_server.threads": 2},
     "app_server.threads", "uwsgi"),
    ({"app_server.kind": "daphne", "app_server.workers": 2, "app_server.max_requests": 10},
     "app_server.max_requests", "not recycled"),
    ({"app_server.workers": 0}, "app_server.workers", "auto"),
    ({"app_server.workers": "many"}, "app_server.workers", "auto"),
    ({"app_server.kind": "uvicorn", "app_server.interface": "asgi", "app_server.threads": 4},
     "app_server.threads", "gunicorn"),
    ({"app_server.kind": "uvicorn", "app_server.interface": "wsgi", "app_server.threads": 1},
     "app_server.interface", "ASGI only"),
    ({"app_server.kind": "uvicorn", "app_server.interface": "asgi", "app_server.threads": 1,
      "app_server.max_requests": 500}, "app_server.max_requests", "not recycled"),
    ({"app_server.bind": "0.0.0.0:99999"}, "app_server.bind", "port must be 1-65535"),
    ({"app_server.bind": "0.0.0.0:9000"}, "upstream.servers[0].address", "listens on 0.0.0.0:9000"),
    ({"app_server.timeout": 0}, "app_server.timeout", "must be >= 1"),
    ({"app_server.trusted_proxies": ["0.0.0.0/0"]}, "app_server.trusted_proxies[0]", "forge"),
    ({"app_server.trusted_proxies": ["nginx-host"]}, "app_server.trusted_proxies[0]", "IP address"),
    ({"app_server.trusted_proxies": None}, "app_server.trusted_proxies", "other hosts"),
    ({"upstream.method": "fastest"}, "upstream.method", "'fastest'"),
    ({"upstream.method": "ip_hash"}, "upstream.servers[2].backup", "ip_hash"),
    ({"upstream.method": "random"}, "upstream.servers[2].backup", "random"),
    ({"upstream.method": "hash", "upstream.hash_key": None}, "upstream.hash_key", "required"),
    ({"upstream.hash_key": "$request_uri; deny all"}, "upstream.hash_key", "hash key"),
    ({"upstream.servers.1.address": "10.0.0.12:0"}, "upstream.servers[1].address", "port must be 1-65535"),
    ({"upstream.servers.1.address": "10.0.0.12"}, "upstream.servers[1].address", "HOST:PORT"),
    ({"upstream.servers.1.address": "fe80::1:8000"}, "upstream.servers[1].address", "[ADDRESS]:PORT"),
    ({"upstream.servers.1.address": "unix:run/app.sock"}, "upstream.servers[1].address", "absolute"),
    ({"upstream.servers.1.address": "10.0.0.11:8000"}, "upstream.servers[1].address", "listed twice"),
    ({"upstream.servers.1.weight": 0}, "upstream.servers[1].weight", "must be >= 1"),
    ({"upstream.servers.1.fail_timeout": "10 seconds"}, "upstream.servers[1].fail_timeout", "nginx time"),
    ({"upstream.servers.1.wieght": 3}, "upstream.servers[1].wieght", "did you mean 'weight'"),
    ({"tls.mode": "on"}, "tls.mode", "'on'"),
    ({"tls.certificate": None}, "tls.certificate", "required with mode: files"),
    ({"tls.profile": "old"}, "tls.profile", "'old'"),
    ({"tls.hsts_preload": True, "tls.hsts_include_subdomains": False}, "tls.hsts_preload", "preload"),
    ({"static.url": "/static"}, "static.url", "starts and ends with '/'"),
    ({"media.url": "/static/"}, "media.url", "differ from static.url"),
    ({"media.root": "/srv/shop/static/uploads"}, "media.root", "outside static.root"),
    ({"nginx.version": 1.22}, "nginx.version", 'quote it, "1.22"'),
    ({"nginx.client_max_body_size": "10 MB"}, "nginx.client_max_body_size", "nginx size"),
    ({"nginx.https_port": 80}, "nginx.https_port", "differ"),
    ({"nginx.http_port": 0}, "nginx.http_port", "must be >= 1"),
    ({"process_manager": "runit"}, "process_manager", "'runit'"),
    ({"background.0.name": "web"}, "background[0].name", "web app"),
    ({"background": [{"name": "celery", "command": "celery -A shop worker"},
                     {"name": "celery", "command": "celery -A shop beat"}]}, "background[1].name", "another"),
    ({"background.0.command": "celery\nrm -rf /"}, "background[0].command", "single line"),
    ({"paths.run_dir": "/run/shop dir"}, "paths.run_dir", "a space"),
    ({"statik": {"url": "/static/"}}, "statik", "did you mean 'static'"),
    ({"django.projct": "shop"}, "django.projct", "did you mean 'project'"),
    ({"django.project": None}, "django.project", "required"),
    ({"django.project": ""}, "django.project", "dotted Python module"),
    ({"upstream.servers": []}, "upstream.servers", "at least one server"),
    ({"upstream.servers": ["10.0.0.11:8000"]}, "upstream.servers[0]", "- address: 10.0.0.11:8000"),
    ({"tls": 5}, "tls", "must be a mapping"),
    ({"nginx.http_port": "eighty"}, "nginx.http_port", "whole number"),
    ({"nginx.ipv6": "maybe"}, "nginx.ipv6", "true or false"),
    ({"background": ["celery -A shop worker"]}, "background[0]", "must be a mapping"),
    ({"database": {"engine": "sqlite"}}, "database", "django.database"),
    ({"redis": {"host": "127.0.0.1"}}, "redis", "django.cache"),
    ({"app_server.servers": []}, "app_server.servers", "upstream.servers"),
    ({"media.shared": False}, "media.shared", "media.shared: true"),
    ({"django.database": {"engine": "sqlite"}}, "django.database.engine", "use postgresql or mysql"),
    ({"hosts.app": ["app1.example.com"]}, "hosts.app", "one per server"),
    ({"hosts.singleton": "app9.example.com"}, "hosts.singleton", "not one of hosts.app"),
    ({"hosts.nginx": ["lb 1"]}, "hosts.nginx[0]", "neither a host name nor an IP address"),
    ({"hosts.nginx": []}, "hosts.nginx", "at least 1"),
    ({"hosts.ssh_user": "Deploy User"}, "hosts.ssh_user", "user"),
    ({"hosts.ansible": "sometimes"}, "hosts.ansible", "true or false"),
    ({"secret_key": "abc"}, "secret_key", "secrets never go in the spec"),
    ({"django.email_relay": "external"}, "django.email_relay", "needs django.email_host"),
    ({"django.email_relay": "postfix", "django.email_host": "smtp.example.com"}, "django.email_relay",
     "use email_relay: external"),
    ({"django.email_relay": "sendmail"}, "django.email_relay", "'sendmail'"),
    ({"django.csp": {"directives": {"script-src": ["'self'; script-src *"]}}},
     "django.csp.directives.script-src[0]", "one source per list item"),
    ({"django.csp": {"directives": {"Script Src": ["'self'"]}}}, "django.csp.directives.Script Src",
     "not a CSP directive name"),
    ({"django.csp": {"report_uri": "http://example.com/r"}}, "django.csp.report_uri", "https:// URL"),
    ({"django.csp": {"mode": "on"}}, "django.csp.mode", "'on'"),
    ({"health": {"path": "healthz"}}, "health.path", "starting with '/'"),
    ({"health": {"path": "/health check"}}, "health.path", "starting with '/'"),
    ({"health": {"path": "/static/health"}}, "health.path", "overlaps static.url"),
    ({"health": {"path": "/admin/health"}}, "health.path", "outside nginx.admin.path"),
    ({"health": {"allow": ["0.0.0.0/0"]}}, "health.allow[0]", "no restriction"),
    ({"nginx.admin": {"allow": ["::/0"]}}, "nginx.admin.allow[0]", "no restriction"),
    ({"sentry": {"dsn": "x"}}, "sentry", "django.error_tracking"),
    ({"nginx.admin": {"allow": ["10.0.0.0/33"]}}, "nginx.admin.allow[0]", "CIDR"),
    ({"nginx.admin": {"path": "admin"}}, "nginx.admin.path", "starts and ends with '/'"),
    ({"nginx.admin": {"path": "/media/admin/"}}, "nginx.admin.path", "overlaps media.url"),
    ({"static.url": "http://cdn.example.com/static/"}, "static.url", "https:// URL"),
    ({"static.url": "https://cdn.example.com/static"}, "static.url", "ending with '/'"),
    ({"static.url": "https://shop.example.com/static/"}, "static.url", "is this site"),
    ({"static.server": "apache"}, "static.server", "'apache'"),
    ({"media.protected": {"url": "/media/private/"}}, "media.protected.url", "outside media.url"),
    ({"media.protected": {"root": "/srv/shop/static/private"}}, "media.protected.root", "outside static.root"),
    ({"media.protected": {"url": "/health/"}, "health": {"path": "/health/"}}, "health.path",
     "overlaps media.protected.url"),
    ({"django.error_tracking": {"dsn": "https://key@sentry.example.com/1"}}, "django.error_tracking.dsn",
     "secret"),
    ({"django.error_tracking": {"traces_sample_rate": 2}}, "django.error_tracking.traces_sample_rate", "1"),
    ({"django.error_tracking": {"release": "v1\nv2"}}, "django.error_tracking.release", "single line"),
    ({"background": [{"name": "worker"}]}, "background[0].command", "preset: db_worker"),
    ({"background": [{"name": "tasks", "preset": "rq"}]}, "background[0].preset", "'rq'"),
    ({"background": [{"name": "tasks", "preset": "db_worker", "command": "celery -A shop worker"}]},
     "background[0].command", "manage.py db_worker"),
]


@pytest.mark.parametrize("changes, field, words", BAD_SPECS, ids=[c[1] for c in BAD_SPECS])
def test_render_rejects_bad_spec(runner, tmp_path: Path, changes, field, words) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_with(changes), sort_keys=False))
    out = tmp_path / "deploy"
    result = runner.invoke(app, ["render", str(spec), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    line = next((ln for ln in result.output.splitlines() if ln.strip().startswith(f"{field}:")), None)
    assert line is not None, result.output
    assert words in line
    assert not _INTERNAL.search(result.output), result.output
    assert not out.exists()


# Words a message must never show: the models' class names and the validator's own phrasing.
_INTERNAL = re.compile("|".join([r"\binstance of\b", r"Input should", r"function-", r"\bdict\b", r"\bint\b",
                                 *(rf"\b{m.__name__}\b" for m in _MODELS if m.__name__ != "Django")]))


# Unquoted YAML 1.1 words and numbers, written as users write them (not through yaml.safe_dump).
_MINIMAL = "version: 1\nname: shop\ndomain: shop.example.org\ndjango:\n  project: shop\n"


@pytest.mark.parametrize("extra, mode", [("tls: {mode: off}\n", "off"), ("tls:\n  mode: off\n", "off"),
                                         ("tls: off\n", "off"), ("tls: false\n", "off"),
                                         ('tls: {mode: "off"}\n', "off")])
def test_unquoted_off_means_off(extra: str, mode: str) -> None:
    assert parse_spec(_MINIMAL + extra).tls.mode == mode


@pytest.mark.parametrize("text, field, words", [
    (_MINIMAL.replace("name: shop", "name: yes"), "name", 'YAML reads unquoted yes as true: quote it, "yes"'),
    (_MINIMAL + "tls: {mode: on}\n", "tls.mode", "YAML reads unquoted on as true; write one of"),
    (_MINIMAL + "nginx: {version: 1.20}\n", "nginx.version", 'as the number 1.2: quote it, "1.20"'),
    (_MINIMAL + "nginx: {version: 1.22}\n", "nginx.version", 'quote it, "1.22"'),
    (_MINIMAL + "app_server: {workers: yes}\n", "app_server.workers", "YAML reads unquoted yes as true"),
    (_MINIMAL.replace("name: shop", "name:"), "name", "has no value"),
    (_MINIMAL.replace("domain: shop.example.org", "domain: 1234"), "domain", 'quote it, "1234"'),
    (_MINIMAL + "tls:\n\tmode: off\n", "(yaml)", "tabs are not allowed in YAML indentation"),
    (_MINIMAL + "aliases: [*.example.org]\n", "(yaml)", '"*.example.org"'),
    (_MINIMAL + "aliases:\n  - *.example.org\n", "(yaml)", '"*.example.org"'),
    (_MINIMAL + "domain2: a: b\n", "(yaml)", "must be quoted"),
])
def test_messages_say_what_yaml_did(text: str, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    [problem] = info.value.problems
    assert field == "(yaml)" or problem.startswith(f"{field}: "), problem
    assert words in problem
    assert not _INTERNAL.search(problem), problem


def test_errors_name_the_yaml_line(tmp_path: Path) -> None:
    text = (EXAMPLES / "full.yaml").read_text().replace("address: 10.0.0.12:8000", "address: 10.0.0.12:0")
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    line_no = next(i for i, ln in enumerate(text.splitlines(), 1) if "10.0.0.12:0" in ln)
    assert info.value.problems == [
        f"upstream.servers[1].address: port must be 1-65535 (line {line_no})"
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = _with({"name": "Bad Name", "domain": "bad_domain", "nginx.http_port": -1})
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data))
    fields = sorted(p.split(":")[0] for p in info.value.problems)
    assert fields == ["domain", "name", "nginx.http_port"]


@pytest.mark.parametrize("spec_path", example_paths(), ids=lambda p: p.stem)
def test_examples_are_valid(spec_path: Path) -> None:
    load_spec(spec_path)


def test_smallest_spec_derives_defaults() -> None:
    spec = parse_spec("version: 1\nname: shop\ndomain: shop.example.com\ndjango: {project: shop}\n")
    d = spec.django
    assert (d.root, d.venv, d.user, d.group) == ("/srv/shop/app", "/srv/shop/venv", "shop", "shop")
    assert (d.settings_module, d.base_settings) == ("shop.settings_production", "shop.settings")
    assert (spec.paths.run_dir, spec.paths.log_dir) == ("/run/shop", "/var/log/shop")
    assert spec.app_server.bind == "unix:/run/shop/app.sock"
    assert spec.app_server.interface == "wsgi"
    assert spec.app_server.trusted_proxies == ["127.0.0.1", "::1"]
    assert spec.tls.mode == "letsencrypt"
    assert spec.tls.certificate == "/etc/letsencrypt/live/shop.example.com/fullchain.pem"
    assert (spec.static.root, spec.media.root) == ("/srv/shop/static", "/srv/shop/media")


def test_hosts_default_to_the_upstream_servers() -> None:
    spec = parse_spec(yaml.safe_dump(_with({"hosts": None})))
    assert spec.hosts.app == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert (spec.hosts.nginx, spec.hosts.singleton, spec.hosts.ssh_user) == (["localhost"], "10.0.0.11", None)
    alone = parse_spec("version: 1\nname: shop\ndomain: shop.example.com\ndjango: {project: shop}\n")
    assert (alone.hosts.app, alone.hosts.singleton) == (["localhost"], "localhost")


def test_remote_upstream_defaults_bind_to_their_port() -> None:
    data = _with({"app_server.bind": None})
    assert parse_spec(yaml.safe_dump(data)).app_server.bind == "0.0.0.0:8000"


def test_uvicorn_defaults_to_asgi() -> None:
    data = _with({"app_server.kind": "uvicorn", "app_server.interface": None, "app_server.threads": None})
    assert parse_spec(yaml.safe_dump(data)).app_server.interface == "asgi"


@pytest.mark.parametrize("text, message", [
    ("", "(top level)"),
    ("- 1\n- 2\n", "(top level)"),
    ("version: 1\nname: [unclosed\n", "is not closed"),
    ("version: 1\nversion: 1\n", "duplicate key 'version' (line 2)"),
    ("? [a, b]\n: 1\n", "mapping keys"),
    ("a: !!python/object:os.system {}\n", "'!' starts a YAML tag"),
    ("a: &a [*a]\n", "refers to itself"),
    ("\x00\x01", "not valid YAML"),
])
def test_broken_yaml_is_a_spec_error(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert message in str(info.value)


def _alias_bomb(levels: int = 12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, message", [
    (_alias_bomb(), "expands to more than"),
    # libyaml may stop this one first, at its own nesting limit and in its own words: the point
    # is that it is refused, quickly.
    ("[" * 50_000 + "]" * 50_000, None),
    ("a: " + "{b: " * 100 + "1" + "}" * 100, "nested deeper than"),
    ("version: 1\n" + "# padding\n" * 200_000, "larger than"),
])
def test_hostile_yaml_is_refused_quickly(text: str, message: str | None) -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert len(info.value.problems) == 1
    assert message is None or message in str(info.value)
    assert time.perf_counter() - start < 5  # generous bound: the point is "not minutes or gigabytes"


def test_load_spec_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(binary)


@pytest.mark.parametrize("value, ok", [
    ("10.0.0.1:80", True), ("[::1]:8000", True), ("app-1.internal:8000", True),
    ("unix:/run/shop/app.sock", True), ("10.0.0.1", False), ("[::1]8000", False),
    ("300.1.1.1:80", False), ("host:65536", False), ("unix:/run/a b.sock", False), (":80", False),
])
def test_check_address(value: str, ok: bool) -> None:
    if ok:
        assert grammar.check_address(value) == value
    else:
        with pytest.raises(ValueError):
            grammar.check_address(value)


@pytest.mark.parametrize("value, ok", [
    ("ops@example.com", True), ("first.last+tag@mail.example.org", True),
    ("ops@localhost", True), ("ops@", False), ("@example.com", False), ("a b@example.com", False),
    ("ops@exa mple.com", False), ("ops@example.com\n", False),
])
def test_check_email(value: str, ok: bool) -> None:
    if ok:
        assert grammar.check_email(value) == value
    else:
        with pytest.raises(ValueError):
            grammar.check_email(value)


@pytest.mark.parametrize("value, ok", [
    ("10m", True), ("512k", True), ("0", True), ("1G", True), ("10mb", False), ("-1", False), ("1.5m", False),
])
def test_check_nginx_size(value: str, ok: bool) -> None:
    assert (grammar.NGINX_SIZE.fullmatch(value) is not None) is ok


@pytest.mark.parametrize("value, ok", [
    ("10s", True), ("1h30m", True), ("500ms", True), ("30", True), ("10 s", False), ("s", False),
])
def test_check_nginx_time(value: str, ok: bool) -> None:
    assert (grammar.NGINX_TIME.fullmatch(value) is not None) is ok


def test_trailing_slash_is_dropped_from_paths() -> None:
    assert grammar.check_abs_path("/srv/shop/static/") == "/srv/shop/static"


def _small(**sections: object) -> dict:
    data: dict = {"version": 1, "name": "blog", "domain": "blog.example.org", "django": {"project": "blog"}}
    for dotted, value in sections.items():
        section, key = dotted.split("__")
        data.setdefault(section, {})[key] = value
    return data


@pytest.mark.parametrize(("data", "held", "warned"), [
    (_small(app_server__workers=4), None, []),  # no database in the spec
    (_small(django__database={"engine": "postgresql"}, app_server__workers=4), 4, []),
    (_small(django__database={"engine": "postgresql"}, app_server__workers="auto"), None, []),
    (_small(django__database={"engine": "postgresql"}, app_server__workers=17, app_server__threads=6),
     102, ["django.database"]),
    (_small(django__database={"engine": "mysql"}, app_server__workers=17, app_server__threads=6), 102, []),
    (_small(django__database={"engine": "postgresql", "conn_max_age": 0}, app_server__workers=200), None, []),
    (_small(django__database={"engine": "postgresql", "pool_max_size": 10}, app_server__kind="uvicorn",
            app_server__workers=4, upstream__servers=[{"address": f"127.0.0.{i}:8000"} for i in (1, 2, 3)],
            app_server__bind="0.0.0.0:8000"), 120, ["django.database"]),
    (_small(app_server__timeout=60, app_server__graceful_timeout=30), None, ["app_server.timeout"]),
], ids=["no-database", "small", "auto", "postgresql-over", "mysql-under", "not-persistent", "pool-over",
        "timeout-over-graceful"])
def test_warnings_name_the_field_and_count_connections(data, held, warned) -> None:
    from scaffold.spec import held_connections, spec_warnings

    spec = validate_data(data)
    assert held_connections(spec) == held
    assert [format_location(loc) for loc, _ in spec_warnings(spec)] == warned


def test_render_and_validate_print_warnings_and_exit_0(runner, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_small(app_server__timeout=60, app_server__graceful_timeout=30)))
    for args in (["validate", str(spec)], ["render", str(spec), "--out", str(tmp_path / "out")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert (f"djdeploy: warning: {spec}: app_server.timeout: requests may run 60s, but a reload or stop "
                "gives them 30s") in result.stderr
        assert "warning" not in result.stdout
    assert (tmp_path / "out" / "INSTALL.md").exists()
