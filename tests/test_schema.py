"""The JSON Schema agrees with `djdeploy validate`: one corpus of specs, the same verdict from each.

Every corpus entry states whether it is a valid spec. `validate` must give that verdict, and so
must two JSON Schema validators (the jsonschema library, with Python's regular expressions, and
check-jsonschema, with ECMA-262 ones as editors use), except on the entries that break one of
the VALIDATE_ONLY rules below: rules between fields that the schema does not state, where the
schema accepts what `validate` refuses. Random specs made from the valid ones check the same
in bulk, and each grammar's pattern is checked against its checker in scaffold/grammar.py.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import regress
import yaml

from scaffold import grammar
from scaffold.cli import app
from scaffold.render import MARKER
from scaffold.source import read_yaml
from scaffold.spec import NGINX_OLDEST, SCHEMA_FILE, SCHEMA_MARKER, schema_json
from support import EXAMPLES, TESTS

ROOT = TESTS.parent
SCHEMA = json.loads(schema_json())
UNREACHABLE = "example" + ".invalid"    # where the modeline used to point (RFC 2606: never resolves)

# Rules `validate` applies that the schema leaves out: draft-07 cannot compare two values, nor
# parse a command line. The rules between fields that the schema does state (if/then): hash_key
# with method: hash; no backup with ip_hash, hash or random; a server neither backup nor down;
# certificate paths with tls.mode: files and only there; hsts_preload's needs; sqlite's name
# and unused fields; the cache location's form per backend; uvicorn's workers, interface,
# threads and max_requests; threads with asgi; no schedule with supervisor, and numprocs 1 with
# one; no home directories with systemd; trusted_proxies with remote upstream servers.
VALIDATE_ONLY = {      # rule: (why the schema leaves it out, what validate says)
    "alias-is-domain": ("an alias equal to domain: compares two values", "repeats the domain"),
    "settings-differ": ("settings_module equal to base_settings: compares two values", "must differ from base_settings"),
    "socket-in-run-dir": ("a unix socket outside paths.run_dir (default /run/<name>): compares two values",
                          "put the unix socket directly in paths.run_dir"),
    "stop-after-graceful": ("stop_timeout not above graceful_timeout: compares two values",
                            "must be more than graceful_timeout"),
    "bind-accepts-upstream": ("every upstream address one that app_server.bind accepts: compares values",
                              "the app server listens on"),
    "static-media-distinct": ("static and media URLs and roots distinct and not nested: compares values",
                              "must differ from static.url|must be outside static.root"),
    "ports-distinct": ("http_port equal to https_port: compares two values", "must differ from nginx.http_port"),
    "login-path-outside-files": ("a login path under static.url or media.url: compares values",
                                 "which nginx serves from files"),
    "distinct-upstream-servers": ("two servers with one address: uniqueItems compares whole objects",
                                  "is listed twice"),
    "background-names-unique": ("two background programs with one name: likewise", "used by another background"),
    "command-shell-words": ("a command's words as a shell splits them (shlex): no regular language",
                            "as a shell splits them|the first word names|runs beat inside the worker"),
    "singleton-numprocs": ("celery beat (a singleton, found in the command's words) with numprocs > 1",
                           "a singleton"),
    "hosts-singleton-in-app": ("hosts.singleton one of hosts.app: compares values", "is not one of hosts.app"),
    "hosts-app-per-server": ("one hosts.app entry per upstream server: compares two lists' lengths", "host(s) for"),
    "shared-media-for-several-hosts": ("media.shared with two remote upstream servers or more: draft-07 cannot "
                                       "count the items that match", "then set media.shared: true"),
    "shared-database-for-several-hosts": ("no SQLite with two remote upstream servers or more: likewise",
                                          "use postgresql or mysql"),
    "supervisor-comment": ("';' or '#' after a space (Python's isspace) with supervisor", "supervisor reads"),
    "cdn-not-this-site": ("a CDN static.url on domain or an alias: compares values", "is this site"),
    "protected-apart": ("media.protected outside static and media URLs and roots: compares values",
                        "must be outside"),
    "app-paths-outside-files": ("health.path and nginx.admin.path outside the file locations: compares values",
                                "overlaps|must be outside nginx.admin.path"),
    "preset-command": ("preset db_worker's command starts with manage.py db_worker: a command's words",
                       "preset db_worker runs"),
}


@dataclass(frozen=True)
class Case:
    """One corpus entry: YAML text, whether it is a valid spec, and the validate-only rule it breaks."""

    id: str
    text: str
    valid: bool
    rule: str | None = None


BASE: dict[str, Any] = {"version": 1, "name": "shop", "domain": "shop.example.com", "django": {"project": "shop"}}
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)


NULL = object()     # a change that writes an explicit `null`


def _spec(**changes: Any) -> str:
    """BASE with dotted-path changes (a__b means b inside a); None removes a key, NULL writes null."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = _nulls(value)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _nulls(value: Any) -> Any:
    if value is NULL:
        return None
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return value


def ok(id: str, **changes: Any) -> Case:
    return Case(id, _spec(**changes), True)


def bad(id: str, rule: str | None = None, **changes: Any) -> Case:
    return Case(id, _spec(**changes), False, rule)


def raw(id: str, extra: str, valid: bool, rule: str | None = None) -> Case:
    """BASE's YAML followed by *extra* as written (for what YAML 1.1 itself reads)."""
    return Case(id, BASE_TEXT + extra, valid, rule)


UP = {"servers": [{"address": "127.0.0.1:8000"}]}
CELERY = {"name": "celery", "command": "celery -A shop worker"}

CORPUS: list[Case] = [
    ok("minimal"),
    Case("empty-document", "", False),
    Case("top-level-list", "- version: 1\n", False),
    Case("only-version", "version: 1\n", False),
    bad("version-2", version=2), ok("version-quoted", version="1"), ok("version-float", version=1.0),
    bad("version-true", version=True), bad("version-leading-zero", version="01"), bad("no-version", version=None),
    bad("unknown-top-key", databse={}), bad("redis-top-key", redis="x"), bad("password-key", password="x"),
    # name: a slug
    ok("name-one-letter", name="a"), ok("name-32", name="a" * 32), bad("name-33", name="a" * 33),
    bad("name-uppercase", name="Shop"), bad("name-digit-first", name="9shop"), bad("name-underscore", name="shop_1"),
    ok("name-trailing-dash", name="shop-"), bad("name-empty", name=""), bad("name-newline", name="shop\n"),
    bad("name-int", name=123), bad("name-list", name=["shop"]), ok("name-yes-quoted", name="yes"),
    Case("name-yes-unquoted", BASE_TEXT.replace("name: shop", "name: yes"), False),
    Case("name-date", BASE_TEXT.replace("name: shop", "name: 2024-01-01"), False),
    Case("name-binary", BASE_TEXT.replace("name: shop", "name: !!binary c2hvcA=="), False),
    # domain and aliases: RFC 1123 host names
    ok("domain-localhost", domain="localhost"), ok("domain-idna", domain="xn--bcher-kva.example"),
    bad("domain-uppercase", domain="Shop.example.com"), bad("domain-wildcard", domain="*.example.com"),
    bad("domain-ip", domain="192.0.2.1"), bad("domain-empty-label", domain="a..b"),
    bad("domain-leading-dash", domain="-a.example.com"), bad("domain-trailing-dash", domain="a-.example.com"),
    bad("domain-trailing-dot", domain="shop.example.com."), bad("domain-underscore", domain="my_shop.example.com"),
    ok("domain-label-63", domain="a" * 63 + ".com"), bad("domain-label-64", domain="a" * 64 + ".com"),
    ok("domain-253", domain=".".join(["a" * 63] * 3 + ["a" * 61])),
    bad("domain-254", domain=".".join(["a" * 63] * 3 + ["a" * 62])),
    bad("domain-numeric-tld", domain="shop.123"), ok("domain-numeric-label", domain="123.example.com"),
    ok("aliases", aliases=["www.shop.example.com"]), bad("aliases-repeat", aliases=["a.example.com"] * 2),
    bad("aliases-string", aliases="www.shop.example.com"), bad("aliases-empty-name", aliases=[""]),
    bad("alias-is-domain", "alias-is-domain", aliases=["shop.example.com"]),
    # process manager
    ok("systemd", process_manager="systemd"), bad("docker", process_manager="docker"),
    ok("pm2", process_manager="pm2"), ok("venv-home-pm2", django__venv="/home/shop/venv", process_manager="pm2"),
    ok("pm2-uvicorn", process_manager="pm2", app_server={"kind": "uvicorn", "workers": 2}),
    bad("pm2-uvicorn-one-worker", process_manager="pm2", app_server={"kind": "uvicorn", "workers": 1}),
    bad("pm2-uvicorn-one-worker-quoted", process_manager="pm2", app_server={"kind": "uvicorn", "workers": "1"}),
    ok("uvicorn-one-worker-supervisor", app_server={"kind": "uvicorn", "workers": 1}),
    bad("pm2-schedule", background=[{**CELERY, "schedule": "daily"}], process_manager="pm2"),
    bad("pm2-stop-signal", background=[{**CELERY, "stop_signal": "INT"}], process_manager="pm2"),
    ok("pm2-stop-signal-term", background=[{**CELERY, "stop_signal": "TERM"}], process_manager="pm2"),
    ok("pm2-comment", background=[{**CELERY, "command": "celery worker # x"}], process_manager="pm2"),
    # django
    bad("django-missing", django=None), bad("django-string", django="shop"),
    bad("project-digit", django__project="1shop"), bad("project-keyword", django__project="shop.class"),
    bad("project-dash", django__project="shop-app"), ok("project-dotted", django__project="shop.site"),
    bad("project-unknown-key", django__projct="shop"),
    ok("root-trailing-slash", django__root="/srv/shop/app/"), bad("root-relative", django__root="srv/shop/app"),
    bad("root-space", django__root="/srv/my app"), bad("root-dotdot", django__root="/srv/../etc"),
    bad("root-slash", django__root="/"), bad("root-semicolon", django__root="/srv/a;b"),
    ok("venv-home-supervisor", django__venv="/home/shop/venv"),
    bad("venv-home-systemd", django__venv="/home/shop/venv", process_manager="systemd"),
    bad("user-root", django__user="root"), bad("group-root", django__group="root"),
    bad("user-uppercase", django__user="Shop"), ok("user-www-data", django__user="www-data"),
    bad("settings-same", "settings-differ", django__settings_module="shop.settings"),
    ok("admins", django__admins=["ops@example.com", "o'brien@example.com", "a@localhost"]),
    bad("admin-no-at", django__admins=["ops"]), bad("admin-dotdot", django__admins=["a..b@example.com"]),
    bad("admin-leading-dot", django__admins=[".a@example.com"]),
    bad("admin-uppercase-domain", django__admins=["ops@Example.com"]),
    bad("admin-ip-domain", django__admins=["ops@192.0.2.1"]), bad("admins-string", django__admins="ops@example.com"),
    ok("email-port-quoted", django__email_port="587"), ok("email-port-float", django__email_port=587.0),
    ok("email-port-65535", django__email_port=65535), bad("email-port-0", django__email_port=0),
    bad("email-port-65536", django__email_port=65536), bad("email-port-quoted-65536", django__email_port="65536"),
    bad("email-port-leading-zero", django__email_port="0587"), bad("email-port-space", django__email_port="5 87"),
    bad("email-port-negative", django__email_port=-1), bad("email-port-fraction", django__email_port=587.5),
    bad("email-port-quoted-float", django__email_port="587.0"), bad("email-port-hex", django__email_port="0x24b"),
    raw("threads-yes", "app_server:\n  threads: yes\n", False),
    ok("email-host", django__email_host="smtp.example.org"), bad("email-host-ip", django__email_host="192.0.2.1"),
    ok("server-email", django__server_email="web@shop.example.com"), bad("server-email-bad", django__server_email="web@"),
    bad("email-user-newline", django__email_user="a\nb"),
    ok("checks", django__silenced_checks=["security.W008", "models.W042", "4_0.E001"]),
    bad("check-retired", django__silenced_checks=["security.W007"]),
    bad("check-unknown", django__silenced_checks=["security.W999"]),
    bad("check-shape", django__silenced_checks=["nonsense"]),
    # django.database
    ok("db-port-quoted", django__database={"engine": "postgresql", "port": "5432"}),
    bad("db-port-high", django__database={"port": 99999}), bad("db-port-quoted-high", django__database={"port": "99999"}),
    ok("db-host-name", django__database={"host": "db.internal"}),
    ok("db-host-socket", django__database={"host": "/run/postgresql"}),
    ok("db-host-v6", django__database={"host": "::1"}), bad("db-host-space", django__database={"host": "db host"}),
    bad("db-host-zone", django__database={"host": "fe80::1%eth0"}), bad("db-engine", django__database={"engine": "oracle"}),
    bad("db-name-space", django__database={"name": "shop db"}),
    ok("db-conn-3600", django__database={"conn_max_age": 3600}), bad("db-conn-3601", django__database={"conn_max_age": 3601}),
    ok("db-conn-quoted", django__database={"conn_max_age": "0"}),
    ok("sqlite", django__database={"engine": "sqlite", "name": "/var/lib/shop/db.sqlite3"}),
    bad("sqlite-relative", django__database={"engine": "sqlite", "name": "db.sqlite3"}),
    bad("sqlite-name", django__database={"engine": "sqlite", "name": "shopdb"}),
    bad("postgres-path", django__database={"name": "/var/lib/shop"}),
    bad("sqlite-host", django__database={"engine": "sqlite", "host": "localhost"}),
    # django.cache
    ok("cache", django__cache={"backend": "redis", "location": "redis://127.0.0.1:6379/1"}),
    ok("cache-memcached", django__cache={"backend": "memcached", "location": "unix:/run/memcached.sock"}),
    bad("cache-redis-host", django__cache={"location": "redis://bad host"}),
    bad("cache-mismatch",
        django__cache={"backend": "memcached", "location": "redis://127.0.0.1:6379/0"}),
    # app_server
    bad("kind", app_server={"kind": "nginx"}), ok("workers-quoted", app_server={"workers": "4"}),
    ok("workers-auto", app_server={"workers": "auto"}), bad("workers-0", app_server={"workers": 0}),
    bad("workers-word", app_server={"workers": "four"}), bad("workers-true", app_server={"workers": True}),
    ok("threads-256", app_server={"threads": 256}), bad("threads-257", app_server={"threads": 257}),
    bad("threads-uvicorn", app_server={"kind": "uvicorn", "workers": 2, "threads": 2}),
    bad("uvicorn-auto", app_server={"kind": "uvicorn"}),
    ok("uvicorn", app_server={"kind": "uvicorn", "workers": 2}),
    ok("bind-socket", app_server={"bind": "unix:/run/shop/app.sock"}),
    bad("bind-socket-tmp", "socket-in-run-dir", app_server={"bind": "unix:/tmp/app.sock"}),
    ok("bind-tcp", app_server={"bind": "0.0.0.0:8000"}), ok("bind-v6", app_server={"bind": "[::1]:8000"}),
    bad("bind-port-high", app_server={"bind": "127.0.0.1:70000"}), bad("bind-port-0", app_server={"bind": "127.0.0.1:0"}),
    bad("bind-no-port", app_server={"bind": "127.0.0.1"}), bad("bind-v6-unbracketed", app_server={"bind": "::1:8000"}),
    bad("bind-unix-relative", app_server={"bind": "unix:run/app.sock"}), bad("bind-bad-ip", app_server={"bind": "999.1.1.1:80"}),
    bad("bind-named", app_server={"bind": "app.internal:8000"}),
    ok("timeout-86400", app_server={"timeout": 86400}), bad("timeout-86401", app_server={"timeout": 86401}),
    ok("graceful-600", app_server={"graceful_timeout": 600}), bad("graceful-601", app_server={"graceful_timeout": 601}),
    bad("stop-timeout-short", "stop-after-graceful", app_server={"stop_timeout": 20}),
    ok("proxies", app_server={"trusted_proxies": ["10.0.0.5", "10.0.0.0/8", "::1"]}),
    bad("proxies-everyone", app_server={"trusted_proxies": ["0.0.0.0/0"]}),
    bad("proxies-everyone-v6", app_server={"trusted_proxies": ["::/0"]}),
    bad("proxies-netmask", app_server={"trusted_proxies": ["10.0.0.0/255.0.0.0"]}),
    bad("proxies-prefix-33", app_server={"trusted_proxies": ["10.0.0.0/33"]}),
    bad("proxies-name", app_server={"trusted_proxies": ["nginx.internal"]}),
    bad("max-requests-uvicorn", app_server={"kind": "uvicorn", "workers": 2, "max_requests": 5}),
    ok("max-requests-0", app_server={"max_requests": 0}), bad("max-requests-negative", app_server={"max_requests": -1}),
    bad("socket-group", app_server={"socket_group": "www data"}),
    # upstream
    ok("upstream-local", upstream=UP), ok("upstream-null", upstream=None),
    ok("upstream-localhost", upstream={"servers": [{"address": "localhost:8000"}]}),
    bad("upstream-remote", upstream={"servers": [{"address": "10.0.0.11:8000"}]}),
    ok("upstream-remote-proxies", upstream={"servers": [{"address": "10.0.0.11:8000"}]},
       app_server={"trusted_proxies": ["10.0.0.5"]}),
    bad("upstream-named", upstream={"servers": [{"address": "app1.internal:8000"}]}),
    bad("upstream-other-port", "bind-accepts-upstream", upstream=UP, app_server={"bind": "127.0.0.1:9000"}),
    bad("upstream-hash-no-key", upstream={**UP, "method": "hash"}),
    ok("upstream-hash", upstream={**UP, "method": "hash", "hash_key": "$request_uri"}),
    bad("upstream-hash-key-space", upstream={**UP, "method": "hash", "hash_key": "$request uri"}),
    bad("upstream-method", upstream={**UP, "method": "fastest"}),
    bad("upstream-weight-0", upstream={"servers": [{"address": "127.0.0.1:8000", "weight": 0}]}),
    ok("upstream-weight-quoted", upstream={"servers": [{"address": "127.0.0.1:8000", "weight": "1000"}]}),
    bad("upstream-weight-1001", upstream={"servers": [{"address": "127.0.0.1:8000", "weight": 1001}]}),
    bad("upstream-max-conns-negative", upstream={"servers": [{"address": "127.0.0.1:8000", "max_conns": -1}]}),
    ok("upstream-fail-timeout", upstream={"servers": [{"address": "127.0.0.1:8000", "fail_timeout": "1m30s"}]}),
    bad("upstream-fail-timeout-space", upstream={"servers": [{"address": "127.0.0.1:8000", "fail_timeout": "10 s"}]}),
    ok("upstream-backup-word", upstream={"servers": [{"address": "127.0.0.1:8000", "backup": "no"}]}),
    bad("upstream-backup-bad-word", upstream={"servers": [{"address": "127.0.0.1:8000", "backup": "nope"}]}),
    bad("upstream-backup-ip-hash",
        upstream={"method": "ip_hash", "servers": [{"address": "127.0.0.1:8000"}, {"address": "[::1]:8000", "backup": True}]},
        app_server={"bind": "[::]:8000"}),
    bad("upstream-duplicate", "distinct-upstream-servers",
        upstream={"servers": [{"address": "127.0.0.1:8000"}, {"address": "127.0.0.1:8000", "weight": 2}]}),
    bad("upstream-all-down", upstream={"servers": [{"address": "127.0.0.1:8000", "down": True}]}),
    ok("upstream-keepalive-10000", upstream={**UP, "keepalive": 10000}),
    bad("upstream-keepalive-10001", upstream={**UP, "keepalive": 10001}),
    bad("upstream-servers-strings", upstream={"servers": ["127.0.0.1:8000"]}),
    bad("upstream-server-unknown-key", upstream={"servers": [{"address": "127.0.0.1:8000", "wieght": 2}]}),
    # tls
    raw("tls-off-unquoted", "tls:\n  mode: off\n", True), ok("tls-off-quoted", tls={"mode": "off"}),
    raw("tls-off-flow", "tls: {mode: off}\n", True), raw("tls-false", "tls:\n  mode: false\n", True),
    bad("tls-files-no-paths", tls={"mode": "files"}),
    bad("tls-files-one-path", tls={"mode": "files", "certificate": "/etc/ssl/shop/fullchain.pem"}),
    ok("tls-files", tls={"mode": "files", "certificate": "/etc/ssl/shop/fullchain.pem",
                         "certificate_key": "/etc/ssl/shop/privkey.pem"}),
    bad("tls-files-relative", tls={"mode": "files", "certificate": "fullchain.pem", "certificate_key": "/etc/k.pem"}),
    bad("tls-letsencrypt-paths", tls={"certificate": "/etc/ssl/shop/fullchain.pem"}),
    bad("tls-off-paths", tls={"mode": "off", "certificate_key": "/etc/ssl/shop/privkey.pem"}),
    ok("hsts-0-quoted", tls={"hsts_seconds": "0"}), bad("hsts-negative", tls={"hsts_seconds": -1}),
    bad("hsts-preload", tls={"hsts_preload": True, "hsts_include_subdomains": False}),
    ok("hsts-preload-ok", tls={"hsts_preload": "yes"}),
    bad("tls-profile", tls={"profile": "old"}), bad("tls-mode-typo", tls={"mode": "letsencrpyt"}),
    # static and media
    ok("static-url", static={"url": "/assets/"}), bad("static-url-no-slash", static={"url": "/static"}),
    bad("static-url-relative", static={"url": "static/"}), bad("static-url-root", static={"url": "/"}),
    bad("static-media-url", "static-media-distinct", static={"url": "/files/"}, media={"url": "/files/"}),
    bad("media-in-static", "static-media-distinct", static={"root": "/srv/shop/files"},
        media={"root": "/srv/shop/files/media"}),
    bad("media-root-relative", media={"root": "media"}),
    # nginx
    ok("http-port-quoted", nginx={"http_port": "8080"}), bad("http-port-0", nginx={"http_port": 0}),
    bad("http-port-text", nginx={"http_port": "80a"}), bad("https-port-high", nginx={"https_port": 65536}),
    bad("ports-same", "ports-distinct", nginx={"http_port": 8443, "https_port": 8443}),
    ok("nginx-version", nginx={"version": "1.26.2"}), ok("nginx-version-oldest", nginx={"version": "1.19.4"}),
    ok("nginx-version-2", nginx={"version": "2.0"}), bad("nginx-version-old", nginx={"version": "1.19.3"}),
    bad("nginx-version-1-18", nginx={"version": "1.18"}), bad("nginx-version-x", nginx={"version": "1.x"}),
    raw("nginx-version-float", "nginx:\n  version: 1.22\n", False),
    ok("body-size", nginx={"client_max_body_size": "0"}), bad("body-size-mb", nginx={"client_max_body_size": "10mb"}),
    raw("body-size-int", "nginx:\n  client_max_body_size: 10\n", False),
    ok("ipv6-no-quoted", nginx={"ipv6": "no"}), raw("ipv6-no-unquoted", "nginx:\n  ipv6: no\n", True),
    ok("ipv6-off-quoted", nginx={"ipv6": "OFF"}), bad("ipv6-nope", nginx={"ipv6": "nope"}),
    bad("ipv6-int", nginx={"ipv6": 0}),
    ok("real-ip", nginx={"real_ip_from": ["192.0.2.0/24", "2001:db8::/32"]}),
    bad("real-ip-everyone", nginx={"real_ip_from": ["0.0.0.0/0"]}), bad("real-ip-zone", nginx={"real_ip_from": ["fe80::1%eth0"]}),
    ok("rate-limit", nginx={"login_rate_limit": {"rate": "10r/s"}}),
    bad("rate-limit-hour", nginx={"login_rate_limit": {"rate": "10r/h"}}),
    bad("rate-limit-repeat", nginx={"login_rate_limit": {"paths": ["/admin/login/", "/admin/login/"]}}),
    bad("rate-limit-static", "login-path-outside-files", nginx={"login_rate_limit": {"paths": ["/static/login/"]}}),
    bad("rate-limit-burst", nginx={"login_rate_limit": {"burst": 10001}}),
    bad("nginx-list", nginx=[]),
    # background
    ok("background", background=[CELERY]), bad("background-web", background=[{**CELERY, "name": "web"}]),
    bad("background-name-case", background=[{**CELERY, "name": "Celery"}]),
    bad("background-twice", "background-names-unique", background=[CELERY, CELERY]),
    # the extras: health endpoint, admin, static server and CDN, protected files, error tracking, tasks
    ok("health", health={"path": "/-/up", "allow": ["10.0.0.0/8"]}), bad("health-path-relative", health={"path": "up"}),
    bad("health-everyone", health={"allow": ["0.0.0.0/0"]}), bad("health-key", health={"port": 8080}),
    bad("health-under-static", "app-paths-outside-files", health={"path": "/static/up"}),
    ok("admin-location", nginx__admin={"path": "/staff/", "allow": ["10.0.0.0/8", "2001:db8::/32"]}),
    bad("admin-everyone", nginx__admin={"allow": ["::/0"]}), bad("admin-path", nginx__admin={"path": "/staff"}),
    ok("login-paths-derived", nginx__login_rate_limit={"rate": "5r/m"}),
    ok("whitenoise", static={"server": "whitenoise"}), bad("static-server", static={"server": "caddy"}),
    ok("cdn", static={"url": "https://cdn.example.net/static/"}),
    bad("cdn-http", static={"url": "http://cdn.example.net/static/"}),
    bad("cdn-no-path", static={"url": "https://cdn.example.net/"}),
    bad("cdn-is-domain", "cdn-not-this-site", static={"url": f"https://{BASE['domain']}/static/"}),
    ok("protected", media__protected={}), ok("protected-url", media__protected={"url": "/downloads/"}),
    bad("protected-url-shape", media__protected={"url": "/downloads"}),
    bad("protected-in-media", "protected-apart", media__protected={"url": "/media/private/"}),
    ok("error-tracking", django__error_tracking={"environment": "staging", "release": "shop@1.0",
                                                 "traces_sample_rate": 0.25}),
    bad("error-tracking-rate", django__error_tracking={"traces_sample_rate": 1.5}),
    bad("error-tracking-dsn", django__error_tracking={"dsn": "https://k@e.example.org/1"}),
    ok("tasks-preset", background=[{"name": "tasks", "preset": "db_worker", "numprocs": 2}]),
    ok("tasks-command", background=[{"name": "tasks", "command": "manage.py db_worker --interval 5"}]),
    bad("tasks-no-command-nor-preset", background=[{"name": "tasks"}]),
    bad("tasks-preset-unknown", background=[{"name": "tasks", "preset": "rq_worker"}]),
    bad("tasks-preset-other-command", "preset-command",
        background=[{"name": "tasks", "preset": "db_worker", "command": "celery -A shop worker"}]),
    bad("background-newline", background=[{**CELERY, "command": "celery\nworker"}]),
    bad("background-quote", "command-shell-words", background=[{**CELERY, "command": "celery 'worker"}]),
    bad("background-path", "command-shell-words", background=[{**CELERY, "command": "/usr/bin/celery worker"}]),
    ok("background-numprocs-quoted", background=[{**CELERY, "numprocs": "64"}]),
    bad("background-numprocs-65", background=[{**CELERY, "numprocs": 65}]),
    bad("background-schedule-supervisor", background=[{**CELERY, "schedule": "daily"}]),
    ok("background-schedule", background=[{**CELERY, "schedule": "Mon *-*-* 04:00:00"}], process_manager="both"),
    bad("background-schedule-semicolon", background=[{**CELERY, "schedule": "daily; reboot"}], process_manager="systemd"),
    bad("background-signal", background=[{**CELERY, "stop_signal": "KILL"}]),
    ok("background-singleton-word", background=[{**CELERY, "singleton": "yes"}]),
    bad("background-comment", "supervisor-comment", background=[{**CELERY, "command": "celery worker # x"}]),
    ok("background-comment-systemd", background=[{**CELERY, "command": "celery worker # x"}], process_manager="systemd"),
    bad("background-schedule-numprocs", background=[{**CELERY, "schedule": "daily", "numprocs": 2}],
        process_manager="systemd"),
    bad("beat-numprocs", "singleton-numprocs",
        background=[{"name": "beat", "command": "celery -A shop beat", "numprocs": 2}]),
    bad("background-mapping", background={"celery": CELERY}), bad("background-no-command", background=[{"name": "x"}]),
    # paths
    ok("paths", paths={"run_dir": "/run/shop", "nginx_log_dir": "/var/log/nginx/"}),
    bad("paths-relative", paths={"run_dir": "run/shop"}), bad("paths-percent", paths={"log_dir": "/var/log/%n"}),
    raw("app-server-null", "app_server: null\n", False),
    # hosts, media.shared, and the tls shorthand
    ok("hosts", hosts={"nginx": ["lb1.example.com"], "ssh_user": "deploy"}), bad("hosts-nginx-empty", hosts={"nginx": []}),
    bad("hosts-nginx-bad", hosts={"nginx": ["lb 1"]}), bad("hosts-zone", hosts={"nginx": ["fe80::1%eth0"]}),
    ok("hosts-app", upstream={"servers": [{"address": "10.0.0.11:8000"}]}, app_server={"trusted_proxies": ["10.0.0.5"]},
       hosts={"app": ["app1.example.com"], "singleton": "app1.example.com"}),
    bad("hosts-app-count", "hosts-app-per-server", upstream={"servers": [{"address": "10.0.0.11:8000"}]},
        app_server={"trusted_proxies": ["10.0.0.5"]}, hosts={"app": ["app1.example.com", "app2.example.com"]}),
    bad("hosts-singleton", "hosts-singleton-in-app", hosts={"singleton": "app9.example.com"}),
    bad("hosts-unknown", hosts={"db": ["x"]}),
    bad("several-hosts-unshared", "shared-media-for-several-hosts",
        upstream={"servers": [{"address": "10.0.0.11:8000"}, {"address": "10.0.0.12:8000"}]},
        app_server={"trusted_proxies": ["10.0.0.5"]}),
    bad("several-hosts-sqlite", "shared-database-for-several-hosts",
        upstream={"servers": [{"address": "10.0.0.11:8000"}, {"address": "10.0.0.12:8000"}]},
        app_server={"trusted_proxies": ["10.0.0.5"]}, media={"shared": True}, django__database={"engine": "sqlite"}),
    ok("several-hosts-shared", upstream={"servers": [{"address": "10.0.0.11:8000"}, {"address": "10.0.0.12:8000"}]},
       app_server={"trusted_proxies": ["10.0.0.5"]}, media={"shared": "yes"}),
    bad("media-shared-word", media={"shared": "shared"}), bad("upstream-no-servers", upstream={"servers": []}),
    raw("tls-off-section", "tls: off\n", True), ok("tls-off-section-quoted", tls="off"),
    raw("tls-no-section", "tls: on\n", False), bad("tls-string", tls="letsencrypt"),
    # the rules between fields that the schema states too, both ways
    ok("venv-srv-systemd", django__venv="/srv/shop/venv", process_manager="systemd"),
    ok("root-homes-systemd", django__root="/homes/shop/app", process_manager="systemd"),
    ok("venv-run-shop-systemd", django__venv="/run/shop/venv", process_manager="both"),
    bad("venv-run-systemd", django__venv="/run/", process_manager="both"),
    bad("static-home-systemd", static={"root": "/home/shop/static"}, process_manager="systemd"),
    bad("sqlite-null-host", django__database={"engine": "sqlite", "host": NULL}),
    ok("db-name-null", django__database={"name": NULL}), bad("db-name-empty", django__database={"name": ""}),
    ok("memcached", django__cache={"backend": "memcached", "location": "127.0.0.1:11211"}),
    ok("locmem", django__cache={"backend": "locmem", "location": "default-cache"}),
    bad("locmem-url", django__cache={"backend": "locmem", "location": "redis://cache.internal"}),
    ok("cache-rediss", django__cache={"location": "rediss://cache.internal:6380/2"}),
    bad("cache-redis-address", django__cache={"location": "127.0.0.1:6379"}),
    ok("uvicorn-explicit", app_server={"kind": "uvicorn", "workers": "2", "interface": "asgi", "max_requests": 0,
                                       "threads": 1}),
    bad("uvicorn-wsgi", app_server={"kind": "uvicorn", "workers": 2, "interface": "wsgi"}),
    bad("gunicorn-asgi-threads", app_server={"interface": "asgi", "threads": 4}),
    ok("gunicorn-threads", app_server={"threads": "4"}), ok("bind-localhost", app_server={"bind": "localhost:8000"}),
    ok("upstream-remote-no-proxies", upstream={"servers": [{"address": "10.0.0.11:8000"}]},
       app_server={"trusted_proxies": []}),
    bad("upstream-remote-null-proxies", upstream={"servers": [{"address": "[2001:db8::1]:8000"}]},
        app_server={"trusted_proxies": NULL}),
    ok("upstream-loopback", upstream={"servers": [{"address": "127.0.0.2:8000"}, {"address": "[::1]:8000"}]}),
    ok("upstream-ip-hash", upstream={"method": "ip_hash", "servers": [{"address": "127.0.0.1:8000", "backup": False}]}),
    ok("upstream-one-down", upstream={"servers": [{"address": "127.0.0.1:8000"}, {"address": "[::1]:8000", "down": True}]}),
    bad("upstream-all-out-words", upstream={"servers": [{"address": "127.0.0.1:8000", "down": "yes"},
                                                        {"address": "[::1]:8000", "backup": "On"}]}),
    ok("hsts-preload-year", tls={"hsts_preload": True, "hsts_seconds": "31536000"}),
    bad("hsts-preload-short", tls={"hsts_preload": "on", "hsts_seconds": 31535999}),
    ok("schedule-null", background=[{**CELERY, "schedule": NULL}]),
]


def _data(case: Case) -> Any:
    return read_yaml(case.text)[0]


def _schema_accepts(data: Any) -> bool:
    return jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).is_valid(data)


def test_the_corpus_covers_what_the_issue_named() -> None:
    ids = [c.id for c in CORPUS]
    assert len(ids) == len(set(ids)), "corpus ids repeat"
    assert sum(not c.valid for c in CORPUS) >= 65 and sum(c.valid for c in CORPUS) >= 40
    assert {c.rule for c in CORPUS if c.rule} == set(VALIDATE_ONLY)
    assert all(not c.valid for c in CORPUS if c.rule)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_validate_and_the_schema_agree(case: Case, runner, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(case.text)
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == (0 if case.valid else 2), result.output
    assert "Traceback" not in result.output
    expected = case.valid or case.rule is not None
    assert _schema_accepts(_data(case)) is expected, (
        f"the schema should {'accept' if expected else 'refuse'} this spec"
        + (f" (validate-only rule: {VALIDATE_ONLY[case.rule][0]})" if case.rule else ""))


def test_check_jsonschema_agrees_on_the_corpus(tmp_path: Path) -> None:
    """check-jsonschema (ECMA-262 patterns, as editors read them) on the data `validate` reads."""
    schema = tmp_path / SCHEMA_FILE
    schema.write_text(schema_json())
    expected: dict[str, bool] = {}
    for i, case in enumerate(CORPUS):
        try:
            text = json.dumps(_data(case))
        except TypeError:
            continue                # bytes or dates: not JSON, so no JSON tool can see them
        path = tmp_path / f"{i:03d}.json"
        path.write_text(text)
        expected[str(path)] = case.valid or case.rule is not None
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema),
                          "--output-format", "json", *expected], capture_output=True, text=True)
    report = json.loads(out.stdout or "{}")
    assert not report.get("parse_errors"), out.stderr
    refused = {e["filename"] for e in report.get("errors", [])}
    wrong = [CORPUS[int(Path(p).stem)].id for p, accept in expected.items() if (p not in refused) is not accept]
    assert len(expected) > 200 and wrong == [], out.stderr


def test_the_example_specs_and_their_modelines_check_with_check_jsonschema() -> None:
    """As a user runs it on YAML (read as YAML 1.2), with the schema the modeline names."""
    for example in sorted(EXAMPLES.glob("*.yaml")):
        first = example.read_text().splitlines()[0]
        if first.startswith("# yaml-language-server: $schema="):
            target = (example.parent / first.split("=", 1)[1]).resolve()
            assert target == (ROOT / "schemas" / SCHEMA_FILE).resolve(), example
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile",
                          str(ROOT / "schemas" / SCHEMA_FILE), *map(str, sorted(EXAMPLES.glob("*.yaml")))],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _properties(node: Any, where: str = "") -> list[tuple[str, dict, bool]]:
    """Every property of every object schema: (path, schema, required)."""
    found = []
    if isinstance(node, dict):
        required = set(node.get("required", []))
        for key, value in node.get("properties", {}).items():
            found.append((f"{where}.{key}", value, key in required))
        for key, value in node.items():
            if key not in ("properties", "if", "then", "else"):
                found += _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for item in node:
            found += _properties(item, where)
    return found


def _described(prop: dict) -> bool:
    if "description" in prop:
        return True
    refs = [p["$ref"] for p in [prop, *prop.get("allOf", [])] if "$ref" in p]
    return any("description" in SCHEMA["definitions"][r.rsplit("/", 1)[1]] for r in refs)


def test_every_field_has_a_description_and_every_optional_one_a_default() -> None:
    props = _properties(SCHEMA)
    assert len(props) > 80
    assert [p for p, prop, _ in props if not _described(prop)] == []
    assert [p for p, prop, required in props if not required and "default" not in prop] == []
    patterns = re.findall(r'\{[^{}]*"pattern"[^{}]*\}', json.dumps(SCHEMA, sort_keys=True))
    unexplained = [p[:80] for p in patterns if '"type": "string"' in p and "patternErrorMessage" not in p]
    assert len(patterns) > 30 and unexplained == [], "editors would show the pattern instead of the rule"


def test_the_schema_is_valid_draft_07_and_has_no_unreachable_address() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in SCHEMA and "$id" not in SCHEMA
    assert SCHEMA_MARKER == MARKER and MARKER in SCHEMA["$comment"]
    text = json.dumps(SCHEMA)
    assert '"$ref": "#/definitions/' in text and UNREACHABLE not in text


def test_the_schema_is_the_same_in_every_process() -> None:
    code = "from scaffold.spec import schema_json; import sys; sys.stdout.write(schema_json())"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert outs == {schema_json()}


def test_nothing_in_the_repository_points_at_example_invalid() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        tracked = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    hits = [name for name in tracked
            if (ROOT / name).is_file() and UNREACHABLE in (ROOT / name).read_text(errors="replace")]
    assert hits == []


def _must(match: object) -> object:
    if not match:
        raise ValueError("no match")
    return match


# The grammars: each checker in scaffold/grammar.py against its schema pattern, in Python's and
# in ECMA-262's regular expressions, over seeds and their random mutations.
_GRAMMAR_SEEDS: dict[str, tuple[Callable[[str], object], list[str]]] = {
    "slug": (grammar.check_slug, ["shop", "a", "a-b-9", "x" * 32, "x" * 33, "9a", "A", "shop-"]),
    "hostname": (grammar.check_hostname, [
        "shop.example.com", "a", "localhost", "1.2.3.4", "a.1", "1.a", "a-.b", "-a", "x" * 63, "x" * 64,
        ".".join(["a" * 63] * 3 + ["a" * 61]), ".".join(["a" * 63] * 3 + ["a" * 62]), "a..b", "a.", "A.b"]),
    "abs_path": (grammar.check_abs_path, ["/srv/x", "/", "//", "/a//", "/a//b", "/a/./b", "/a/../b", "/.",
                                          "/..", "/...", "/.x", "/a/..", "relative", "/a b", "/a~b/", "/a@b+c=d,e"]),
    "url_path": (grammar.check_url_path, ["/static/", "/", "/a", "a/", "/a/b/", "/../", "//"]),
    "unix_name": (grammar.check_unix_name, ["www-data", "_x", "Root", "a" * 32, "a" * 33, "1a"]),
    "module": (grammar.check_module, ["shop", "shop.settings", "a.class", "class", "a.b.None", "_x.y1", "a..b",
                                      "async", "asyncio", "Nonex"]),
    "email": (grammar.check_email, ["ops@example.com", "a.b@c.d", ".a@b.c", "a..b@c.d", "a.@b.c", "@b.c", "a@",
                                    "a@b@c.d", "a@1.2.3.4", "x" * 64 + "@a.b", "x" * 65 + "@a.b", "a'b@c"]),
    "nginx_size": (grammar.check_nginx_size, ["10m", "0", "1K", "1mb", "m", ""]),
    "nginx_time": (grammar.check_nginx_time, ["10s", "1h30m", "30", "1ms", "1y2M", "s", "", "10S"]),
    "address": (grammar.check_address, [
        "127.0.0.1:8000", "unix:/run/a.sock", "unix:/", "unix:80", "[::1]:80", "[::1%eth0]:80", "[1.2.3.4]:80",
        "localhost:65535", "localhost:65536", "localhost:08", "a:b:80", ":80", "host:", "1.2.3:80",
        "01.2.3.4:80", "h.example.org:443", "UNIX:/x", "[::]:8000", "unix.x:80"]),
    "ip_or_network": (grammar.check_ip_or_network, [
        "10.0.0.1", "10.0.0.0/8", "10.0.0.0/08", "10.0.0.0/255.0.0.0", "10.0.0.0/33", "::1", "::/0", "::/128",
        "::/129", "fe80::1%eth0", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7",
        "1:2:3:4:5:6::7", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:1.2.3.4", "1::1.2.3.4", "12345::"]),
    "inventory_host": (grammar.check_inventory_host, ["localhost", "app1.example.com", "10.0.0.11", "::1", "fe80::1%1",
                                                      "App1", "1.2.3", "010.0.0.1"]),
    "db_host": (grammar.check_db_host, ["127.0.0.1", "::1", "db.example.org", "DB", "fe80::1%1", "/run/pg", "1.2.3"]),
    "line": (grammar.check_line, ["abc", "", "a\tb", "a\x7f", "é ☃"]),
    "django_check_id": (grammar.check_django_check_id, [
        "security.W001", "security.W007", "security.W999", "models.W042", "x.y.E001", "security.X001",
        "a.b.c.W1234", "4_0.E001", "mail.W001", "foo.security.W001"]),
    "nginx_variable_expr": (grammar.check_nginx_variable_expr, ["$request_uri", "$a$b", "$A", "x", "", "$", "a b"]),
    "calendar": (lambda v: _must(grammar.CALENDAR.fullmatch(v)), ["daily", "Mon *-*-* 04:00:00", "*:00/15", "a;b", ""]),
    "identifier": (lambda v: _must(grammar.IDENTIFIER_LIKE.fullmatch(v)), ["shop", "a-b_c", "x" * 64, "x" * 65, "a.b"]),
    "redis_url": (lambda v: _must(grammar.REDIS_URL.fullmatch(v)), [
        "redis://127.0.0.1:6379/0", "rediss://h", "redis://[::1]:6379", "unix:/run/redis.sock", "http://h"]),
}
_NOISE = ["", ".", "-", "/", ":", "@", "[", "]", "%", "0", "9", "a", "Z", "\n", " ", "..", "::", "$", "_", "é", "١"]


def _mutations(seed: str, rng: random.Random) -> set[str]:
    found, value = {seed}, seed
    for _ in range(60):
        value = value if rng.random() < 0.7 else seed
        i, noise = rng.randint(0, len(value)), rng.choice(_NOISE)
        value = rng.choice([value[:i] + noise + value[i:], value[:i] + value[i + 1:],
                            value[:i] + noise + value[i + 1:], value + "\n"])
        found.add(value)
    return found


def _accepts(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(_GRAMMAR_SEEDS))
def test_each_grammar_and_its_pattern_agree(name: str) -> None:
    check, seeds = _GRAMMAR_SEEDS[name]
    pattern = grammar.SCHEMAS[name]["pattern"]
    python, ecma = re.compile(pattern), regress.Regex(pattern, "u")
    rng = random.Random(name)
    values = sorted(set().union(*(_mutations(s, rng) for s in seeds)))
    slowest, wrong = 0.0, []
    for value in values:
        started = time.perf_counter()
        verdicts = (_accepts(check, value), bool(python.search(value)), ecma.find(value) is not None)
        slowest = max(slowest, time.perf_counter() - started)
        if len(set(verdicts)) > 1:
            wrong.append((value, verdicts))
    assert len(values) > 100 and wrong == []
    assert slowest < 0.05, "a pattern backtracks badly (editors would hang)"


@pytest.mark.parametrize("low, high", [(0, 0), (1, 9), (0, 32), (1, 65535), (1, 86400), (0, 3600), (7, 1234),
                                       (31536000, None), (0, None), (1, None)])
def test_range_patterns_match_exactly_the_numbers_in_range(low: int, high: int | None) -> None:
    regex = re.compile(grammar.anchored(grammar.range_pattern(low, high)))
    top = (high if high is not None else low + 10 ** 5)
    rng = random.Random(low)
    numbers = set(range(max(0, low - 200), min(top, low + 2000) + 200)) | {rng.randint(0, top * 2) for _ in range(2000)}
    assert [n for n in sorted(numbers) if bool(regex.search(str(n))) != (low <= n and (high is None or n <= high))] == []
    assert not regex.search("0" + str(max(low, 1))) and not regex.search(f"-{low}") and not regex.search(f"{low} ")


def test_schema_out_writes_the_file_and_replaces_only_its_own(runner, tmp_path: Path) -> None:
    target = tmp_path / SCHEMA_FILE
    result = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0 and f"wrote {target}" in result.output
    assert "# yaml-language-server: $schema=./djdeploy.schema.json" in result.output
    assert target.read_text() == schema_json()
    again = runner.invoke(app, ["schema", "--out", str(target)])
    assert again.exit_code == 0 and "up to date" in again.output
    target.write_text(target.read_text().replace("HTTPS at nginx.", "older text"))
    assert runner.invoke(app, ["schema", "-o", str(target)]).exit_code == 0
    assert target.read_text() == schema_json()
    mine = tmp_path / "mine.json"
    mine.write_text("{}\n")
    refused = runner.invoke(app, ["schema", "--out", str(mine)])
    assert refused.exit_code == 1 and "pass --force" in refused.output and "Traceback" not in refused.output
    assert mine.read_text() == "{}\n"
    assert runner.invoke(app, ["schema", "--out", str(mine), "--force"]).exit_code == 0
    assert mine.read_text() == schema_json()
    missing = runner.invoke(app, ["schema", "--out", str(tmp_path / "no" / "such.json")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_an_existing_spec_gets_a_working_modeline_as_the_readme_says(runner, tmp_path: Path) -> None:
    """README: `djdeploy schema --out djdeploy.schema.json` beside the spec, then the modeline."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("# yaml-language-server: $schema=./djdeploy.schema.json\n" + BASE_TEXT)
    assert runner.invoke(app, ["schema", "--out", str(tmp_path / "djdeploy.schema.json")]).exit_code == 0
    assert runner.invoke(app, ["validate", str(spec)]).exit_code == 0
    readme = (ROOT / "README.md").read_text()
    assert "djdeploy schema --out djdeploy.schema.json" in readme
    assert "# yaml-language-server: $schema=./djdeploy.schema.json" in readme
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile",
                          str(tmp_path / "djdeploy.schema.json"), str(spec)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _bare_scalars(node: Any, siblings: list | None = None) -> list[str]:
    """Integer or boolean schemas that are not beside their quoted form (a string) in an anyOf."""
    found: list[str] = []
    if isinstance(node, dict):
        kind = node.get("type")
        quoted = [s for s in siblings or [] if s.get("type") == "string" or "enum" in s]
        if kind in ("integer", "boolean") and not quoted:
            found.append(json.dumps(node)[:80])
        for key, value in node.items():
            found += _bare_scalars(value, value if key == "anyOf" else None)
    elif isinstance(node, list):
        for item in node:
            found += _bare_scalars(item, siblings)
    return found


def test_every_number_and_flag_takes_its_quoted_form_as_validation_does() -> None:
    """A field declared as a plain int or bool would refuse "8080" or "no": use _whole() or Flag."""
    assert _bare_scalars(SCHEMA) == []


def test_the_nginx_version_pattern_is_the_oldest_version_rule() -> None:
    pattern = SCHEMA["definitions"]["Nginx"]["properties"]["version"]["pattern"]
    python, ecma = re.compile(pattern), regress.Regex(pattern, "u")
    rng = random.Random(4)
    parts = ["0", "1", "01", "2", "19", "20", "18", "4", "3", "10", "0019", "99", "1" * 9, "1" * 10, "x", ""]
    values = {".".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(5000)}
    values |= {"1.19.4", "1.19.3", "1.19", "1.20", "2.0", "1.019.04", "1.22\n", "0001.0019.0004"}

    def accepted(value: str) -> bool:
        try:
            return grammar.parse_nginx_version(value) >= NGINX_OLDEST
        except ValueError:
            return False
    wrong = [v for v in sorted(values) if not accepted(v) == bool(python.search(v)) == (ecma.find(v) is not None)]
    assert len(values) > 1000 and wrong == []


# Random specs: the examples and the corpus's valid specs with one to three fields changed to
# values from a pool (good and bad for every grammar, numbers, flags, nulls, lists, mappings).
_POOL: list[Any] = [
    None, True, False, 0, 1, 2, 30, 600, 601, 65535, 65536, -1, 1.0, 2.5, "", "0", "1", "8080", "08", "auto",
    "yes", "no", "off", "On", "nope", "shop", "Shop", "web", "celery", "a" * 40, "localhost", "shop.example.com",
    "Shop.example.com", "*.example.com", "192.0.2.1", "10.0.0.0/8", "0.0.0.0/0", "::/0", "::1", "fe80::1%eth0",
    "10.0.0.11:8000", "127.0.0.1:8000", "[::1]:8000", "app.internal:8000", "localhost:70000",
    "unix:/run/shop/app.sock", "unix:/tmp/x.sock", "/srv/shop/app", "/home/shop", "/run", "relative/path",
    "/srv/a b", "/srv/../etc", "/static/", "/media/", "/x", "ops@example.com", "ops@", "security.W008",
    "security.W007", "models.W042", "10m", "10mb", "10s", "1h30m", "1.22", "1.19.3", "2.0", "10r/s", "10r/h",
    "$request_uri", "redis://127.0.0.1:6379/1", "127.0.0.1:11211", "default", "daily", "daily; x",
    "celery -A shop worker", "celery 'x", "celery worker -B", "/usr/bin/x", "x # y", "shop.settings",
    "shop.class", "files", "letsencrypt", "sqlite", "memcached", "locmem", "uvicorn", "gunicorn", "asgi", "wsgi",
    "hash", "ip_hash", "systemd", "both", "supervisor", "TERM", "KILL", "modern", "a\nb",
    [], ["10.0.0.5"], ["www.shop.example.com"], ["shop.example.com"], ["/admin/login/", "/admin/login/"],
    {}, {"address": "127.0.0.1:8000"}, [{"address": "10.0.0.11:8000"}], [{"address": "127.0.0.1:8000", "backup": True}],
    [{"name": "celery", "command": "celery -A shop worker"}], {"engine": "sqlite"}, {"backend": "locmem"},
]


def _field_paths(model: Any, prefix: tuple = ()) -> list[tuple]:
    """Every field of the spec models, as a path into the data (list fields at item 0)."""
    from scaffold.messages import model_in as _model_in
    from scaffold.spec import Spec
    paths = []
    for name, field in (model or Spec).model_fields.items():
        path = (*prefix, name)
        paths.append(path)
        inner = _model_in(field.annotation)
        if inner is not None:
            is_list = "list" in str(field.annotation)
            paths += _field_paths(inner, (*path, 0) if is_list else path)
    return paths


def _seen(seeds: list[Any], path: tuple) -> list[Any]:
    """The values the valid seeds hold at *path*, to cross them over into other specs."""
    found = []
    for seed in seeds:
        node = seed
        for key in path:
            ok = isinstance(node, list) and node if isinstance(key, int) else isinstance(node, dict) and key in node
            if not ok:
                break
            node = node[0] if isinstance(key, int) else node[key]
        else:
            found.append(node)
    return found


def _property_schemas(node: Any, key: str) -> list[dict]:
    """The schemas of property *key* inside *node*, through $ref, allOf and anyOf."""
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        node = {**node, **SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]}
        node.pop("$ref")
    found = [node["properties"][key]] if key in node.get("properties", {}) else []
    for sub in [*node.get("allOf", []), *node.get("anyOf", []), node.get("items")]:
        found += _property_schemas(sub, key)
    return found


def _edge_values(path: tuple) -> list[Any]:
    """Values at the edges of the field at *path*: each limit, one past it (bare and quoted), each enum."""
    nodes: list[dict] = [SCHEMA]
    for key in path:
        if not isinstance(key, int):
            nodes = [p for n in nodes for p in _property_schemas(n, key)]
    values: list[Any] = []
    text = json.dumps(nodes)
    for limit in set(re.findall(r'"(?:minimum|maximum)": (-?[0-9]+)', text)):
        for n in (int(limit) - 1, int(limit), int(limit) + 1):
            values += [n, str(n)]
    for members in re.findall(r'"enum": \[([^\]]*)\]', text):
        values += json.loads(f"[{members}]")
    return values


def _mutate(data: Any, rng: random.Random, paths: list[tuple], seeds: list[Any]) -> Any:
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        node = data
        for key in path[:-1]:
            if isinstance(key, int):
                if not isinstance(node, list) or not node:
                    break
                node = node[0]
            elif isinstance(node, dict):
                node = node.setdefault(key, {} if not isinstance(path[path.index(key) + 1], int) else [{}])
            else:
                break
        else:
            if isinstance(node, dict):
                if rng.random() < 0.15:
                    node.pop(path[-1], None)
                else:
                    pick = rng.random()
                    values = _seen(seeds, path) if pick < 0.5 else _edge_values(path) if pick < 0.75 else []
                    node[path[-1]] = copy.deepcopy(rng.choice(values or _POOL))
    return data


def _validate_only(problems: list[str]) -> bool:
    fragments = [fragment for _, fragments in VALIDATE_ONLY.values() for fragment in fragments.split("|")]
    return bool(problems) and all(any(f in p for f in fragments) for p in problems)


def test_the_schema_and_validate_agree_on_random_specs() -> None:
    from scaffold.errors import SpecError
    from scaffold.spec import Spec, resolve_spec, validate_data
    rng = random.Random(int(os.environ.get("DJDEPLOY_FUZZ_SEED", "11")))
    paths = _field_paths(None)
    seeds = [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]
    seeds += [_data(c) for c in CORPUS if c.valid]
    validator = jsonschema.Draft7Validator(SCHEMA)
    counts = {"agree": 0, "validate-only": 0, "valid": 0}
    wrong = []
    for _ in range(5000):
        data = _mutate(rng.choice(seeds), rng, paths, seeds)
        schema_ok = validator.is_valid(data)
        try:
            validate_data(data)
            valid, problems = True, []
        except SpecError as e:
            valid, problems = False, e.problems
        counts["valid"] += valid
        if schema_ok == valid:
            counts["agree"] += 1
            continue
        if schema_ok and not valid:
            try:
                only_cross = _validate_only([msg for _, msg in resolve_spec(Spec.model_validate(data))])
            except Exception:
                only_cross = False
            if only_cross:
                counts["validate-only"] += 1
                continue
        wrong.append((json.dumps(data, default=str)[:300], schema_ok, problems))
    assert wrong == [], wrong[:5]
    assert counts["agree"] > 4000 and counts["valid"] > 1200 and counts["validate-only"] > 10, counts
