"""nginx target: structure (parsed by crossplane), `nginx -t`, gixy-next, and the values it refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

import nginx_harness as harness
from scaffold.cli import app
from scaffold.spec import Spec, validate_data
from scaffold.targets import nginx
from support import EXAMPLES, UNDER_CI, example_paths, require_tool

# gixy-next findings accepted, by plugin name, each with the reason (also in the README). None.
ACCEPTED_GIXY: dict[str, str] = {}
INTERMEDIATE = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
NO_BACKUP = ({"address": "10.0.0.11:8000", "weight": 2, "max_fails": 3, "fail_timeout": "20s", "max_conns": 100},
             {"address": "10.0.0.12:8000", "down": True}, {"address": "10.0.0.13:8000"})


# --- building specs and reading rendered files -------------------------------------------------

def load_data(example: str) -> dict:
    return yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())


def make_spec(example: str, changes: dict[str, Any] | None = None) -> Spec:
    """An example spec with dotted-path changes (a None value removes the key)."""
    data = load_data(example)
    for dotted, value in (changes or {}).items():
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return validate_data(data)


def render(spec: Spec, out: Path) -> tuple[list[dict], list[dict]]:
    """Render and parse (default server, site)."""
    default, site = harness.render_nginx(spec, out)
    return harness.parse(default), harness.parse(site)


def walk(block: list[dict]) -> Iterator[dict]:
    for d in block:
        yield d
        yield from walk(d.get("block", []))


def find(block: list[dict], name: str) -> list[dict]:
    return [d for d in block if d["directive"] == name]


def args(block: list[dict], name: str) -> list[list[str]]:
    return [d["args"] for d in find(block, name)]


def one(block: list[dict], name: str) -> list[str]:
    found = args(block, name)
    assert len(found) == 1, (name, found)
    return found[0]


def servers(parsed: list[dict]) -> list[list[dict]]:
    return [d["block"] for d in find(parsed, "server")]


def server_for(parsed: list[dict], name: str, port: int) -> list[dict]:
    """The server block with *name* in server_name that listens on *port*."""
    found = [s for s in servers(parsed)
             if name in sum(args(s, "server_name"), []) and any(a[0] == str(port) for a in args(s, "listen"))]
    assert len(found) == 1, (name, port, len(found))
    return found[0]


def location(server: list[dict], *path: str) -> list[dict]:
    found = [d["block"] for d in find(server, "location") if d["args"] == list(path)]
    assert len(found) == 1, path
    return found[0]


def map_entries(block: list[dict]) -> set[tuple[str, ...]]:
    """A map's (key, value) pairs: crossplane reads each key as a directive name."""
    return {(d["directive"], *d["args"]) for d in block}


def headers(block: list[dict]) -> dict[str, list[str]]:
    return {a[0]: a[1:] for a in args(block, "add_header")}


def body(path: Path) -> str:
    """A rendered file without the generated-file header (which names the spec file)."""
    return path.read_text().split("\n\n", 1)[1]


# --- pure functions ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, ok", [
    ("max-age=63072000; includeSubDomains", True),
    ("default-src 'none'; sandbox", True),
    ('say "hi"', False), ("a\\b", False), ("$host", False), ("a\nb", False), ("a\x7fb", False),
])
def test_quote_refuses_what_nginx_reads_inside_quotes(value: str, ok: bool) -> None:
    if ok:
        assert nginx.quote(value) == f'"{value}"'
    else:
        with pytest.raises(ValueError):
            nginx.quote(value)


@pytest.mark.parametrize("bind, server", [
    ("unix:/run/shop/app.sock", "unix:/run/shop/app.sock"),
    ("0.0.0.0:8000", "127.0.0.1:8000"),
    ("[::]:8000", "[::1]:8000"),
    ("10.0.0.5:8001", "10.0.0.5:8001"),
])
def test_local_server_connects_where_the_app_listens(bind: str, server: str) -> None:
    assert nginx.local_server(bind) == server


@pytest.mark.parametrize("changes, servers", [
    ({}, ["unix:/run/blog/app.sock max_fails=0", "unix:/run/blog/app.sock max_fails=0 backup"]),
    ({"upstream": {"servers": [{"address": "127.0.0.1:8000", "weight": 3}]}, "app_server": {"bind": "127.0.0.1:8000"}},
     ["127.0.0.1:8000 weight=3 max_fails=0", "127.0.0.1:8000 weight=3 max_fails=0 backup"]),
    ({"upstream": {"method": "least_conn", "servers": [{"address": "127.0.0.1:8000"}]},
      "app_server": {"bind": "127.0.0.1:8000"}}, ["127.0.0.1:8000 max_fails=0", "127.0.0.1:8000 max_fails=0 backup"]),
    ({"upstream": {"next_upstream_tries": 1}}, ["unix:/run/blog/app.sock"]),
    ({"upstream": {"method": "ip_hash", "servers": [{"address": "127.0.0.1:8000"}]},
      "app_server": {"bind": "127.0.0.1:8000"}}, ["127.0.0.1:8000 max_fails=0"]),
    ({"upstream": {"servers": [{"address": "127.0.0.1:8000"}, {"address": "127.0.0.2:8000"}]},
      "app_server": {"bind": "0.0.0.0:8000"}}, ["127.0.0.1:8000 max_fails=0", "127.0.0.2:8000 max_fails=0"]),
])
def test_one_app_server_is_listed_again_as_its_own_backup(changes: dict, servers: list[str]) -> None:
    """With two tries and a method that takes backups, a group's only server is its own backup, so
    nginx can send a GET again whose fresh connection a reload reset (tests/live/test_edge.py)."""
    data = load_data("minimal")
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    assert nginx.upstream_context(validate_data(data))["servers"] == servers


@pytest.mark.parametrize("app, upstream", [(5, "4s"), (2, "1s"), (1, "500ms")])
def test_upstream_idle_timeout_is_below_the_apps(app: int, upstream: str) -> None:
    assert nginx.keepalive_timeout(app) == upstream


def test_output_files_do_not_name_the_default_server_after_the_spec() -> None:
    spec = make_spec("full")
    assert nginx.output_files(spec) == [Path("nginx/default-server.conf"), Path("nginx/shop.conf")]
    assert [job.dest for job in nginx.jobs(spec)] == nginx.output_files(spec)


# --- structure -----------------------------------------------------------------------------------

def test_default_server_closes_unknown_names(tmp_path: Path) -> None:
    default, _ = render(make_spec("full"), tmp_path)
    plain, secure = servers(default)
    assert args(plain, "listen") == [["80", "default_server"], ["[::]:80", "default_server"]]
    assert one(plain, "return") == ["444"]
    assert args(secure, "listen") == [["443", "ssl", "http2", "default_server"],
                                      ["[::]:443", "ssl", "http2", "default_server"]]
    assert one(secure, "ssl_reject_handshake") == ["on"]
    assert not find(secure, "ssl_certificate")
    assert one(location(secure, "/"), "return") == ["421"]
    assert one(plain, "server_tokens") == one(secure, "server_tokens") == ["off"]


def test_default_server_carries_the_sites_tls_policy(tmp_path: Path) -> None:
    """nginx negotiates protocol, group and session cache with the default server's settings."""
    for profile in ("intermediate", "modern"):
        default, site = render(make_spec("full", {"tls.profile": profile}), tmp_path / profile)
        catch_all = servers(default)[1]
        main = server_for(site, "shop.example.com", 443)
        for name in ("ssl_protocols", "ssl_ciphers", "ssl_ecdh_curve", "ssl_session_cache",
                     "ssl_session_tickets", "ssl_prefer_server_ciphers"):
            assert args(catch_all, name) == args(main, name), name


def test_default_server_depends_only_on_ports_ipv6_version_and_profile(tmp_path: Path) -> None:
    a, _ = harness.render_nginx(make_spec("full"), tmp_path / "a")
    b, _ = harness.render_nginx(make_spec("minimal"), tmp_path / "b")
    c, _ = harness.render_nginx(make_spec("minimal", {"nginx": {"http_port": 8080}}), tmp_path / "c")
    assert body(a) == body(b)
    assert body(a) != body(c)


@pytest.mark.parametrize("profile, protocols", [("intermediate", ["TLSv1.2", "TLSv1.3"]),
                                                 ("modern", ["TLSv1.3"])])
def test_tls_follows_mozilla_guideline_6(tmp_path: Path, profile: str, protocols: list[str]) -> None:
    _, site = render(make_spec("full", {"tls.profile": profile}), tmp_path)
    main = server_for(site, "shop.example.com", 443)
    assert one(main, "ssl_protocols") == protocols
    assert one(main, "ssl_ciphers") == [INTERMEDIATE]
    assert "DHE-" not in INTERMEDIATE.replace("ECDHE-", "")
    assert one(main, "ssl_ecdh_curve") == ["X25519:prime256v1:secp384r1"]  # no PQ group OpenSSL 3.0 refuses
    assert one(main, "ssl_certificate") == ["/etc/ssl/shop/fullchain.pem"]
    assert not [d for d in walk(site) if d["directive"].startswith("ssl_stapling")]


@pytest.mark.parametrize("version, listen_http2, http2_on, tickets_off", [
    ("1.22", True, False, True), ("1.23.2", True, False, False), ("1.25.0", True, False, False),
    ("1.25.1", False, True, False), ("1.28", False, True, False),
    # A series means its newest patch release: every real 1.25.x but 1.25.0 warns on `listen ... http2`.
    ("1.25", False, True, False), ("1.23", True, False, False),
])
def test_syntax_follows_the_nginx_version(tmp_path: Path, version: str, listen_http2: bool,
                                          http2_on: bool, tickets_off: bool) -> None:
    default, site = render(make_spec("full", {"nginx.version": version}), tmp_path)
    for server in [servers(default)[1], server_for(site, "shop.example.com", 443)]:
        assert all(("http2" in a) == listen_http2 for a in args(server, "listen"))
        assert (args(server, "http2") == [["on"]]) == http2_on
        assert (args(server, "ssl_session_tickets") == [["off"]]) == tickets_off


def test_ipv6_off_listens_on_ipv4_only(tmp_path: Path) -> None:
    default, site = render(make_spec("full", {"nginx.ipv6": False}), tmp_path)
    listens = [d["args"][0] for d in walk(default + site) if d["directive"] == "listen"]
    assert listens and not [a for a in listens if a.startswith("[")]


@pytest.mark.parametrize("method, first", [
    ("round_robin", None), ("least_conn", ["least_conn"]), ("ip_hash", ["ip_hash"]),
    ("hash", ["hash", "$request_uri", "consistent"]), ("random", ["random", "two", "least_conn"]),
])
def test_upstream_method_precedes_servers_and_keepalive(tmp_path: Path, method: str, first) -> None:
    spec = make_spec("full", {"upstream.method": method, "upstream.servers": list(NO_BACKUP)})
    _, site = render(spec, tmp_path)
    upstream = find(site, "upstream")
    assert [u["args"] for u in upstream] == [["shop"]]
    names = [d["directive"] for d in upstream[0]["block"]]
    assert names == ([] if first is None else [first[0]]) + ["server"] * 3 + [
        "keepalive", "keepalive_timeout", "keepalive_requests", "keepalive_time"]
    if first:
        assert upstream[0]["block"][0]["args"] == first[1:]
    assert args(upstream[0]["block"], "server") == [
        ["10.0.0.11:8000", "weight=2", "max_fails=3", "fail_timeout=20s", "max_conns=100"],
        ["10.0.0.12:8000", "max_fails=0", "down"], ["10.0.0.13:8000", "max_fails=0"]]


def test_backup_server_is_marked(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    assert ["10.0.0.13:8000", "max_fails=0", "backup"] in args(find(site, "upstream")[0]["block"], "server")


def test_without_servers_nginx_proxies_to_the_local_socket(tmp_path: Path) -> None:
    _, site = render(make_spec("minimal"), tmp_path)
    block = find(site, "upstream")[0]["block"]
    assert args(block, "server") == [["unix:/run/blog/app.sock", "max_fails=0"],
                                     ["unix:/run/blog/app.sock", "max_fails=0", "backup"]]
    assert one(block, "keepalive") == ["16"]


@pytest.mark.parametrize("version, keepalive_time", [("1.19.4", None), ("1.19.10", ["10s"]), ("1.22", ["10s"])])
def test_upstream_connections_are_renewed_so_they_spread_over_workers(tmp_path: Path, version: str,
                                                                      keepalive_time) -> None:
    _, site = render(make_spec("minimal", {"nginx.version": version}), tmp_path)
    block = find(site, "upstream")[0]["block"]
    assert one(block, "keepalive_requests") == [str(nginx.UPSTREAM_KEEPALIVE_REQUESTS)]
    assert int(nginx.UPSTREAM_KEEPALIVE_REQUESTS) < 1000  # nginx's default, which kept workers unevenly busy
    assert (args(block, "keepalive_time") or [None])[0] == keepalive_time  # keepalive_time: nginx 1.19.10


def test_app_server_keepalive_off_turns_upstream_keepalive_off(tmp_path: Path) -> None:
    _, site = render(make_spec("full", {"app_server.keepalive": 0}), tmp_path)
    assert not find(find(site, "upstream")[0]["block"], "keepalive")
    main = server_for(site, "shop.example.com", 443)
    assert ["Connection", "close"] in args(main, "proxy_set_header")


def test_proxy_headers_are_set_once_and_cannot_be_forged(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    main = server_for(site, "shop.example.com", 443)
    set_headers = {a[0]: a[1:] for a in args(main, "proxy_set_header")}
    assert set_headers["Host"] == ["$host"]
    assert set_headers["X-Forwarded-Proto"] == ["$scheme"]
    assert set_headers["X-Forwarded-For"] == set_headers["X-Real-IP"] == ["$remote_addr"]
    assert set_headers["Connection"] == [""]
    for cleared in ("Forwarded", "X-Forwarded-Host", "X-Forwarded-Protocol", "X-Forwarded-Ssl"):
        assert set_headers[cleared] == [""]
    assert one(main, "proxy_http_version") == ["1.1"]
    assert one(main, "proxy_redirect") == ["off"]
    assert one(main, "proxy_buffering") == ["on"]
    assert one(main, "proxy_next_upstream") == ["error", "timeout"]
    nested = [d for loc in find(main, "location") for d in walk(loc["block"])]
    assert not [d for d in nested if d["directive"] == "proxy_set_header"]
    assert one(location(main, "/"), "proxy_pass") == ["http://shop"]


@pytest.mark.parametrize("timeout", [30, 45, 600])
def test_proxy_read_timeout_outlasts_the_app_timeout(tmp_path: Path, timeout: int) -> None:
    _, site = render(make_spec("full", {"app_server.timeout": timeout}), tmp_path)
    value = one(server_for(site, "shop.example.com", 443), "proxy_read_timeout")[0]
    assert value.endswith("s") and int(value[:-1]) > timeout


def test_asgi_keeps_websockets_and_keepalive(tmp_path: Path) -> None:
    _, site = render(make_spec("asgi-both"), tmp_path)
    upgrade = [d for d in find(site, "map") if d["args"][0] == "$http_upgrade"]
    assert [d["args"] for d in upgrade] == [["$http_upgrade", "$market_connection"]]
    assert map_entries(upgrade[0]["block"]) == {("default", "upgrade"), ("", "")}
    main = server_for(site, "market.example.com", 443)
    set_headers = {a[0]: a[1:] for a in args(main, "proxy_set_header")}
    assert set_headers["Connection"] == ["$market_connection"]
    assert set_headers["Upgrade"] == ["$http_upgrade"]


def test_security_headers_are_set_at_server_level_and_kept_in_locations(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    for name in ("shop.example.com", "www.shop.example.com"):
        server = server_for(site, name, 443)
        top = headers(server)
        assert set(top) == {"Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy",
                            "X-Frame-Options"}
        assert all(value[-1] == "always" for value in top.values())
        for loc in [d for d in walk(server) if d["directive"] == "location"]:
            nested = headers(loc["block"])
            assert not nested or set(top) <= set(nested), loc["args"]  # add_header replaces, never drops


def test_security_header_values_defer_to_the_app(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    maps = {d["args"][0]: (d["args"][1], map_entries(d["block"])) for d in find(site, "map")}
    variable, entries = maps["$upstream_http_strict_transport_security"]
    assert entries == {("", "max-age=63072000; includeSubDomains"), ("default", "")}
    assert headers(server_for(site, "shop.example.com", 443))["Strict-Transport-Security"][0] == variable
    assert maps["$upstream_http_x_content_type_options"][1] == {("", "nosniff"), ("default", "")}


def test_hsts_follows_the_spec(tmp_path: Path) -> None:
    _, site = render(make_spec("uvicorn-systemd"), tmp_path / "preload")
    maps = {d["args"][0]: map_entries(d["block"]) for d in find(site, "map")}
    assert ("", "max-age=31536000; includeSubDomains; preload") in maps["$upstream_http_strict_transport_security"]
    _, site = render(make_spec("full", {"tls.hsts_seconds": 0}), tmp_path / "none")
    assert "Strict-Transport-Security" not in headers(server_for(site, "shop.example.com", 443))


def test_http_redirects_every_name_to_https_on_the_primary(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    plain = server_for(site, "www.shop.example.com", 80)
    assert one(plain, "server_name") == ["shop.example.com", "www.shop.example.com"]
    assert one(location(plain, "/"), "return") == ["301", "https://shop.example.com$request_uri"]
    assert [d["args"] for d in find(plain, "location")] == [["/"]]  # no ACME outside letsencrypt
    alias = server_for(site, "www.shop.example.com", 443)
    assert one(alias, "return") == ["301", "https://shop.example.com$request_uri"]


def test_letsencrypt_serves_the_acme_webroot_over_http(tmp_path: Path) -> None:
    _, site = render(make_spec("minimal", {"nginx.https_port": 8443}), tmp_path)
    plain = server_for(site, "blog.example.org", 80)
    assert one(location(plain, nginx.ACME_PATH), "root") == [nginx.ACME_WEBROOT]
    assert one(location(plain, "/"), "return") == ["301", "https://blog.example.org:8443$request_uri"]
    main = server_for(site, "blog.example.org", 8443)
    assert one(main, "ssl_certificate") == ["/etc/letsencrypt/live/blog.example.org/fullchain.pem"]


def test_tls_off_serves_plain_http(tmp_path: Path) -> None:
    spec = make_spec("uvicorn-systemd", {"tls": {"mode": "off"}})
    default, site = render(spec, tmp_path)
    main = server_for(site, "chat.example.net", 80)
    assert one(location(main, "/"), "proxy_pass") == ["http://chat"]
    assert not [d for d in walk(site) if d["directive"].startswith("ssl_") or d["args"][:1] == ["443"]]
    assert "Strict-Transport-Security" not in headers(main)
    alias = server_for(site, "chat.example.com", 80)
    assert one(alias, "return") == ["301", "http://chat.example.net$request_uri"]
    # A plain-HTTP site opens no HTTPS port, in the catch-all default server either.
    assert [args(s, "listen") for s in servers(default)] == [[["80", "default_server"], ["[::]:80", "default_server"]]]
    assert not [d for d in walk(default) if d["directive"].startswith("ssl_")]


def test_static_and_media_locations(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    main = server_for(site, "shop.example.com", 443)
    static, media = location(main, "/static/"), location(main, "/media/")
    assert one(static, "alias") == ["/srv/shop/static/"]  # trailing slashes match: gixy alias_traversal
    assert one(media, "alias") == ["/srv/shop/media/"]
    assert one(static, "gzip") == ["on"] and "text/css" in one(static, "gzip_types")
    assert one(static, "gzip_static") == ["on"] and one(static, "gzip_vary") == ["on"]
    assert one(static, "brotli_static") == ["on"]  # static.brotli
    assert one(static, "expires") == ["1h"]
    hashed = [d for d in find(static, "location") if d["args"][0] == "~"]
    assert one(hashed[0]["block"], "expires") == ["off"]
    assert headers(hashed[0]["block"])["Cache-Control"] == ["public, max-age=31536000, immutable", "always"]
    # Open files are cached for hashed names only: an unhashed name's .gz/.br is rewritten in place.
    assert one(hashed[0]["block"], "open_file_cache") == ["max=256", "inactive=60s"]
    assert one(hashed[0]["block"], "open_file_cache_errors") == ["on"]
    cached = [d for d in walk(site) if d["directive"].startswith("open_file_cache")]
    assert cached == find(hashed[0]["block"], "open_file_cache") + find(hashed[0]["block"], "open_file_cache_errors")
    assert not [d for d in walk(media) if d["directive"] in ("proxy_pass", "fastcgi_pass", "uwsgi_pass")]
    media_types = {d["directive"] for d in find(media, "types")[0]["block"]}
    assert "image/png" in media_types and not media_types & {"text/html", "image/svg+xml", "text/xml"}
    assert one(media, "default_type") == ["application/octet-stream"]
    assert one(main, "client_max_body_size") == ["10m"]
    dotfiles = [d for d in find(main, "location") if d["args"][:1] == ["~"]]
    assert one(dotfiles[0]["block"], "deny") == ["all"]



def test_only_static_files_are_compressed(tmp_path: Path) -> None:
    """Debian's nginx.conf says `gzip on;` in http{}: every server turns it off (BREACH), static turns it on."""
    _, site = render(make_spec("full"), tmp_path)
    for server in servers(site):
        assert one(server, "gzip") == ["off"]
        on = [d for d in walk(server) if d["directive"] in ("gzip", "gzip_static") and d["args"] != ["off"]]
        main = server_for(site, "shop.example.com", 443)
        assert on == ([] if server is not main else [*find(location(main, "/static/"), "gzip_static"),
                                                     *find(location(main, "/static/"), "gzip")])


@pytest.mark.parametrize("brotli", [False, True])
def test_brotli_copies_are_served_when_the_spec_asks(tmp_path: Path, brotli: bool) -> None:
    _, site = render(make_spec("minimal", {"static.brotli": brotli}), tmp_path)
    static = location(server_for(site, "blog.example.org", 443), "/static/")
    assert args(static, "brotli_static") == ([["on"]] if brotli else [])
    assert not [d for d in walk(site) if d["directive"] == "brotli"]  # never compressed on the fly


def test_logs_rate_limit_and_real_ip(tmp_path: Path) -> None:
    _, site = render(make_spec("asgi-both"), tmp_path)
    assert one(site, "limit_req_zone") == ["$binary_remote_addr", "zone=market_login:10m", "rate=5r/m"]
    main = server_for(site, "market.example.com", 443)
    login = location(main, "/backoffice/login/")  # follows nginx.admin.path
    assert one(login, "limit_req") == ["zone=market_login", "burst=5", "nodelay"]
    assert one(login, "proxy_pass") == ["http://market"]
    # A location of its own, so the admin's allow-list is repeated there.
    assert args(login, "allow") == [["203.0.113.0/24"], ["2001:db8:1::/48"]] and one(login, "deny") == ["all"]
    assert not find(location(main, "/accounts/login/"), "allow")
    assert args(main, "set_real_ip_from") == [["192.0.2.10"], ["198.51.100.0/24"]]
    assert one(main, "real_ip_header") == ["X-Forwarded-For"]
    # Buffered, flushed within 5 s: far fewer writes, and `tail -f` still follows.
    assert one(main, "access_log") == ["/var/log/nginx/market.access.log", "market_timing", "buffer=64k", "flush=5s"]
    assert one(main, "error_log") == ["/var/log/nginx/market.error.log"]


def test_retries_are_bounded_and_no_request_takes_a_host_out(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    main = server_for(site, "shop.example.com", 443)
    assert one(main, "proxy_next_upstream") == ["error", "timeout"]
    assert one(main, "proxy_next_upstream_tries") == ["2"]
    assert one(main, "proxy_next_upstream_timeout") == ["4s"]
    assert one(main, "proxy_connect_timeout") == ["3s"]
    servers_ = args(find(site, "upstream")[0]["block"], "server")
    assert all("max_fails=0" in s for s in servers_), servers_
    one_try = make_spec("full", {"upstream.next_upstream_tries": 1})
    _, site = render(one_try, tmp_path / "one")
    assert one(server_for(site, "shop.example.com", 443), "proxy_next_upstream_tries") == ["1"]


def test_nginx_errors_get_a_small_page_with_retry_after(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    main = server_for(site, "shop.example.com", 443)
    assert one(main, "error_page") == ["502", "503", "504", "@shop_unavailable"]
    page = location(main, "@shop_unavailable")
    sent = headers(page)
    assert sent["Retry-After"] == ["30", "always"] and sent["Cache-Control"] == ["no-store", "always"]
    # add_header in a location replaces the server's: every security header is there again.
    assert set(headers(main)) <= set(sent)
    assert one(page, "return")[0] == "503"


def test_access_log_format_has_timing_and_upstream(tmp_path: Path) -> None:
    _, site = render(make_spec("full"), tmp_path)
    fmt = find(site, "log_format")
    assert [f["args"][0] for f in fmt] == ["shop_timing"]
    text = "".join(fmt[0]["args"][1:])
    for variable in ("$request_time", "$upstream_addr", "$upstream_status", "$upstream_response_time"):
        assert variable in text


@pytest.mark.parametrize("disposition", ["inline", "attachment"])
def test_media_is_sandboxed_with_every_security_header(tmp_path: Path, disposition: str) -> None:
    _, site = render(make_spec("full", {"media.content_disposition": disposition}), tmp_path)
    main = server_for(site, "shop.example.com", 443)
    sent = headers(location(main, "/media/"))
    assert set(headers(main)) <= set(sent)
    assert "sandbox" in sent["Content-Security-Policy"][0]
    assert ("Content-Disposition" in sent) is (disposition == "attachment")


def test_openssl_35_puts_the_post_quantum_group_first(tmp_path: Path) -> None:
    default, site = render(make_spec("full", {"nginx.openssl": "3.5"}), tmp_path)
    for parsed in (default, site):
        assert {tuple(a) for a in args(list(walk(parsed)), "ssl_ecdh_curve")} == {
            ("?X25519MLKEM768:X25519:prime256v1:secp384r1",)}
    _, site = render(make_spec("full"), tmp_path / "old")
    assert {tuple(a) for a in args(list(walk(site)), "ssl_ecdh_curve")} == {("X25519:prime256v1:secp384r1",)}


def test_host_names_resolve_at_run_time_from_nginx_1_27_3(tmp_path: Path) -> None:
    spec = make_spec("full", {"nginx.version": "1.27.3", "nginx.resolver": ["127.0.0.53"],
                              "upstream.servers": [{"address": "app1.internal:8000"}, {"address": "10.0.0.12:8000"}],
                              "hosts.app": None, "hosts.singleton": None})
    _, site = render(spec, tmp_path)
    block = find(site, "upstream")[0]["block"]
    assert one(block, "zone") == ["shop_upstream", "64k"]
    assert one(block, "resolver") == ["127.0.0.53", "valid=30s"]
    assert args(block, "server") == [["app1.internal:8000", "max_fails=0", "resolve"], ["10.0.0.12:8000", "max_fails=0"]]


def test_nginx_1_29_7_gets_keepalive_turned_off_explicitly(tmp_path: Path) -> None:
    for version, wanted in (("1.29.7", [["0"]]), ("1.28", [])):
        _, site = render(make_spec("full", {"upstream.keepalive": 0, "nginx.version": version}), tmp_path / version)
        assert args(find(site, "upstream")[0]["block"], "keepalive") == wanted


def test_load_balancer_in_front(tmp_path: Path) -> None:
    spec = make_spec("minimal", {"tls": {"mode": "off"},
                                 "nginx": {"load_balancer": {"addresses": ["10.0.0.0/24"], "proxy_protocol": True}}})
    default, site = render(spec, tmp_path)
    main = server_for(site, "blog.example.org", 80)
    assert args(main, "listen") == [["80", "proxy_protocol"], ["[::]:80", "proxy_protocol"]]
    assert one(main, "real_ip_header") == ["proxy_protocol"] and one(main, "set_real_ip_from") == ["10.0.0.0/24"]
    geo = find(site, "geo")[0]
    assert geo["args"] == ["$realip_remote_addr", "$blog_via_load_balancer"]
    assert one(find(main, "if")[0]["block"], "return") == ["301", "https://blog.example.org$request_uri"]
    assert ["X-Forwarded-Proto", "https"] in args(main, "proxy_set_header")
    assert "Strict-Transport-Security" in headers(main)  # browsers are on HTTPS, at the load balancer
def test_health_endpoint_is_for_this_host_and_the_load_balancers_only(tmp_path: Path) -> None:
    _, site = render(make_spec("asgi-both"), tmp_path)
    health = location(server_for(site, "market.example.com", 443), "=", "/-/health/")
    assert args(health, "allow") == [["127.0.0.1"], ["::1"], ["192.0.2.10"], ["198.51.100.0/24"], ["192.0.2.20"]]
    assert one(health, "deny") == ["all"]
    assert one(health, "access_log") == ["off"]
    assert one(health, "proxy_pass") == ["http://market"]
    _, site = render(make_spec("minimal"), tmp_path / "minimal")
    health = location(server_for(site, "blog.example.org", 443), "=", "/healthz")
    assert args(health, "allow") == [["127.0.0.1"], ["::1"]] and one(health, "deny") == ["all"]


def test_admin_location_admits_its_networks_only(tmp_path: Path) -> None:
    _, site = render(make_spec("asgi-both"), tmp_path)
    admin = location(server_for(site, "market.example.com", 443), "/backoffice/")
    assert args(admin, "allow") == [["203.0.113.0/24"], ["2001:db8:1::/48"]]
    assert one(admin, "deny") == ["all"] and one(admin, "proxy_pass") == ["http://market"]
    _, site = render(make_spec("full"), tmp_path / "full")  # no allow-list: no admin location
    assert not [d for d in find(server_for(site, "shop.example.com", 443), "location") if d["args"] == ["/admin/"]]


def test_protected_files_are_internal_and_inert(tmp_path: Path) -> None:
    _, site = render(make_spec("asgi-both"), tmp_path)
    protected = location(server_for(site, "market.example.com", 443), "/private-downloads/")
    assert one(protected, "internal") == []
    # nginx drops the app's security headers on X-Accel-Redirect: the location sets its own.
    assert headers(protected) == {"X-Content-Type-Options": ["nosniff", "always"],
                                  "Referrer-Policy": ["same-origin", "always"],
                                  "X-Frame-Options": ["DENY", "always"],
                                  "Strict-Transport-Security": ["max-age=63072000; includeSubDomains", "always"]}
    assert one(protected, "alias") == ["/srv/market/protected/"]
    assert one(protected, "default_type") == ["application/octet-stream"]
    assert not [d for d in walk(protected) if d["directive"].endswith("_pass")]


def test_whitenoise_static_is_proxied_to_the_app(tmp_path: Path) -> None:
    _, site = render(make_spec("asgi-both"), tmp_path)
    main = server_for(site, "market.example.com", 443)
    static = location(main, "/assets/")  # the path of the CDN URL
    assert one(static, "proxy_pass") == ["http://market"] and not find(static, "alias")
    assert "Access-Control-Allow-Origin" not in headers(main)  # WhiteNoise sends its own


def test_cdn_origin_allows_cross_origin_static_files(tmp_path: Path) -> None:
    _, site = render(make_spec("uvicorn-systemd"), tmp_path)
    maps = {d["args"][0]: (d["args"][1], map_entries(d["block"])) for d in find(site, "map")}
    variable, entries = maps["$uri"]
    assert entries == {("~^/static/", "*"), ("default", "")}
    main = server_for(site, "chat.example.net", 443)
    assert headers(main)["Access-Control-Allow-Origin"] == [variable, "always"]
    assert one(location(main, "/static/"), "alias") == ["/srv/chat/static/"]
    _, site = render(make_spec("full"), tmp_path / "full")
    assert "$uri" not in {d["args"][0] for d in find(site, "map")}


# --- nginx -t and gixy-next ----------------------------------------------------------------------

CASES = {
    "full": ("full", {}),
    "minimal": ("minimal", {}),
    "asgi-both": ("asgi-both", {}),
    "uvicorn-systemd": ("uvicorn-systemd", {}),
    "pm2": ("pm2", {}),
    "fleet": ("fleet", {}),
    "uwsgi-both": ("uwsgi-both", {}),
    "daphne-supervisor": ("daphne-supervisor", {}),
    "hypercorn-systemd": ("hypercorn-systemd", {}),
    "modern": ("full", {"tls.profile": "modern"}),
    "round-robin": ("full", {"upstream.method": "round_robin"}),
    "ip-hash": ("full", {"upstream.method": "ip_hash", "upstream.servers": list(NO_BACKUP)}),
    "hash": ("full", {"upstream.method": "hash", "upstream.servers": list(NO_BACKUP)}),
    "random": ("full", {"upstream.method": "random", "upstream.servers": list(NO_BACKUP)}),
    "tls-off": ("full", {"tls": {"mode": "off"}}),
    "letsencrypt-aliases": ("full", {"tls": {"mode": "letsencrypt"}}),
    "ipv4-only": ("full", {"nginx.ipv6": False}),
    "asgi-no-keepalive": ("asgi-both", {"upstream.keepalive": 0, "nginx.ipv6": True}),
    "nginx-1.24-modern": ("minimal", {"nginx": {"version": "1.24"}, "tls": {"profile": "modern"}}),
    "nginx-1.28": ("full", {"nginx.version": "1.28"}),
    "openssl-3.5": ("full", {"nginx": {"version": "1.26", "openssl": "3.5"}}),
    "resolve": ("full", {"nginx.version": "1.30", "nginx.resolver": ["127.0.0.53"],
                         "upstream.servers": [{"address": "localhost:8000"}, {"address": "app2.internal:8000"}],
                         "hosts.app": None, "hosts.singleton": None}),
    "keepalive-off-1.30": ("asgi-both", {"upstream.keepalive": 0, "nginx.version": "1.30"}),
    "load-balancer": ("minimal", {"tls": {"mode": "off"}, "nginx": {"load_balancer": {"addresses": ["10.0.0.0/24"]}}}),
    "load-balancer-proxy": ("minimal", {"tls": {"mode": "off"},
                                        "nginx": {"load_balancer": {"addresses": ["10.0.0.5"], "proxy_protocol": True}}}),
    "media-attachment": ("full", {"media.content_disposition": "attachment"}),
    "cdn-protected": ("full", {"static.url": "https://cdn.shop.example.net/static/", "media.protected": {},
                               "nginx.admin": {"allow": ["10.0.0.0/8"]}, "nginx.login_rate_limit": {}}),
    "nginx-1.19.4": ("minimal", {"nginx.version": "1.19.4"}),
    "no-brotli": ("full", {"static.brotli": False}),
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool("openssl", "for throwaway certificates")
    return harness.make_certificate(tmp_path_factory.mktemp("cert"))


def require_brotli_module() -> None:
    """Debian's brotli_static module, which nginx -t needs to read a static.brotli site."""
    if not (harness.MODULES / "50-mod-http-brotli-static.conf").exists():
        message = "nginx's brotli_static module is not installed (Debian: libnginx-mod-http-brotli-static)"
        if UNDER_CI:
            pytest.fail(f"{message} (CI=true: .ci/run must install it)")
        pytest.skip(message)


def check_with_tools(specs: list[Spec], tmp: Path, certificate: tuple[Path, Path]) -> None:
    """nginx -t (when the installed nginx reads this syntax) and gixy-next on the rendered sites."""
    nginx_bin, gixy_bin = require_tool("nginx"), require_tool("gixy", "pip install gixy-next")
    if any(s.static.brotli for s in specs):
        require_brotli_module()
    files: list[Path] = []
    for i, spec in enumerate(specs):
        default, site = harness.render_nginx(harness.localize(spec, tmp, *certificate), tmp / f"site{i}")
        files += [default] if i == 0 else []
        files.append(site)
    conf = harness.write_wrapper(tmp, files)
    if all(not nginx.http2_directive(s) for s in specs) and all(_openssl_30(s) for s in specs):
        # Debian 12's nginx is 1.22 with OpenSSL 3.0: it cannot read `http2 on;` (1.25.1+), nor a
        # post-quantum group; test_newer_nginx_accepts runs those through newer builds.
        result = harness.run_nginx_test(nginx_bin, conf)
        assert result.returncode == 0, result.stderr
    findings = harness.gixy_findings(gixy_bin, conf)
    assert [f for f in findings if f["plugin"] not in ACCEPTED_GIXY and not _resolver_in_upstream(f, specs)] == []


# gixy-next 0.9's stale_dns_cache looks for `resolver` where proxy_pass is, not in the upstream block,
# where nginx 1.27.3 reads it for `resolve`: that one finding is accepted when the upstream has one.
RESOLVER_NOT_SEEN = "Upstream uses `server ... resolve`, but no `resolver` is configured"


def _resolver_in_upstream(finding: dict, specs: list[Spec]) -> bool:
    return (finding["plugin"] == "stale_dns_cache" and finding["reason"].startswith(RESOLVER_NOT_SEEN)
            and all(nginx.upstream_context(s)["resolver"] for s in specs
                    if any(nginx.needs_resolve(x.address) for x in (s.upstream.servers if s.upstream else []))))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_nginx_and_gixy_accept(case: str, tmp_path: Path, certificate) -> None:
    example, changes = CASES[case]
    check_with_tools([make_spec(example, changes)], tmp_path, certificate)


def _openssl_30(spec: Spec) -> bool:
    return spec.nginx.openssl.startswith("3.0")


# What each newer nginx build reads: its version and OpenSSL (trixie: 1.26 with 3.5; sid: 1.30).
NEWER_CASES = {
    "trixie": ["openssl-3.5", "nginx-1.28", "nginx-1.24-modern", "load-balancer-proxy", "media-attachment"],
    "sid": ["openssl-3.5", "nginx-1.28", "resolve", "keepalive-off-1.30", "load-balancer"],
}


@pytest.fixture(scope="module")
def newer_builds() -> dict[str, list[str]]:
    builds = harness.newer_nginx_builds()
    if not builds and UNDER_CI:
        # CI has what the test bed needs (root, debootstrap): build its trixie and sid roots.
        from machines.images import ensure_image, nginx_image

        for suite in ("trixie", "sid"):
            ensure_image(nginx_image(suite))
        builds = harness.newer_nginx_builds()
    if not builds:
        pytest.skip(f"no Debian trixie or sid root file system with nginx at {harness.DEBIAN_ROOTS}")
    return builds


@pytest.mark.parametrize("release", sorted(NEWER_CASES))
def test_newer_nginx_accepts(release: str, newer_builds, tmp_path: Path, certificate) -> None:
    """`nginx -t` (no warning) on a real newer nginx: Debian 13's 1.26 with OpenSSL 3.5, unstable's."""
    builds = {name: argv for name, argv in newer_builds.items() if name.startswith(release + " ")}
    if not builds:
        pytest.skip(f"no Debian {release} root file system with nginx at {harness.DEBIAN_ROOTS}")
    (name, argv), = builds.items()
    for case in NEWER_CASES[release]:
        example, changes = CASES[case]
        # The copied binary has no dynamic modules (brotli_static is one): static.brotli off.
        spec = make_spec(example, {**changes, "nginx.version": name.split("/")[1], "static.brotli": False})
        out = tmp_path / case
        out.mkdir()
        files = harness.render_nginx(harness.localize(spec, out, *certificate), out / "site")
        conf = harness.write_wrapper(out, files, host_modules=False)
        done = subprocess.run([*argv, "-t", "-c", str(conf), "-p", str(out)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, (case, done.stderr)
        assert "[warn]" not in done.stderr and "[emerg]" not in done.stderr, (case, done.stderr)


def test_every_example_is_covered() -> None:
    assert {p.stem for p in example_paths()} <= {example for example, _ in CASES.values()}


def test_two_sites_share_one_default_server(tmp_path: Path, certificate) -> None:
    """Names of maps, zones and the session cache do not collide between sites on one nginx."""
    check_with_tools([make_spec("full"), make_spec("minimal"),
                      make_spec("asgi-both", {"nginx.version": "1.22", "nginx.ipv6": True})], tmp_path, certificate)


def test_the_gates_catch_planted_defects(tmp_path: Path, certificate) -> None:
    """The checks above can fail: nginx -t and gixy each reject a broken copy."""
    nginx_bin, gixy_bin = require_tool("nginx"), require_tool("gixy", "pip install gixy-next")
    default, site = harness.render_nginx(harness.localize(make_spec("full"), tmp_path, *certificate), tmp_path)
    conf = harness.write_wrapper(tmp_path, [default, site])
    text = site.read_text()
    site.write_text(text.replace("proxy_set_header Host $host;", "proxy_set_header Host $http_host;"))
    assert [f["plugin"] for f in harness.gixy_findings(gixy_bin, conf)] == ["host_spoofing"]
    site.write_text(text.replace("keepalive 16;", "keepalive 16 ;;"))
    assert harness.run_nginx_test(nginx_bin, conf).returncode != 0


# --- refused input -------------------------------------------------------------------------------

BAD = [
    ({"nginx": {"version": "1.18"}}, "nginx.version", "1.19.4"),
    ({"nginx": {"version": "1.22;"}}, "nginx.version", "version"),
    ({"nginx": {"client_max_body_size": "10m; root /"}}, "nginx.client_max_body_size", "size"),
    ({"nginx": {"real_ip_from": ["0.0.0.0/0"]}}, "nginx.real_ip_from[0]", "forge"),
    ({"nginx": {"real_ip_from": ["10.0.0.1 always"]}}, "nginx.real_ip_from[0]", "IP"),
    ({"nginx": {"login_rate_limit": {"rate": "0r/s"}}}, "nginx.login_rate_limit.rate", "expected form"),
    ({"nginx": {"login_rate_limit": {"paths": ["/login/", "/login/"]}}}, "nginx.login_rate_limit.paths[1]", "twice"),
    ({"nginx": {"login_rate_limit": {"paths": ["/static/login/"]}}}, "nginx.login_rate_limit.paths[0]", "static.url"),
    ({"nginx": {"login_rate_limit": {"paths": ["/a;b/"]}}}, "nginx.login_rate_limit.paths[0]", "URL path"),
    ({"aliases": ["www.blog.example.org;"]}, "aliases[0]", "host name"),
    ({"static": {"root": "/srv/a{b}"}}, "static.root", "safe path"),
    ({"media": {"url": "/me dia/"}}, "media.url", "URL path"),
    ({"upstream": {"method": "hash", "hash_key": "$uri;evil", "servers": [{"address": "10.0.0.1:8000"}]},
      "app_server": {"trusted_proxies": ["10.0.0.5"]}}, "upstream.hash_key", "hash key"),
    ({"upstream": {"servers": [{"address": "app1.example.com:8000"}]},
      "app_server": {"trusted_proxies": ["10.0.0.5"]}}, "upstream.servers[0].address", "resolves"),
    ({"upstream": {"servers": [{"address": "app1.example.com:8000"}]}, "nginx": {"version": "1.28"},
      "app_server": {"trusted_proxies": ["10.0.0.5"]}}, "nginx.resolver", "required"),
    ({"nginx": {"resolver": ["10.0.0.0/8"]}}, "nginx.resolver[0]", "address"),
    ({"nginx": {"openssl": 3.5}}, "nginx.openssl", "quoted"),
    ({"nginx": {"load_balancer": {"addresses": ["10.0.0.5"]}}}, "nginx.load_balancer", "tls.mode: off"),
    ({"tls": "off", "nginx": {"load_balancer": {"addresses": ["0.0.0.0/0"]}}}, "nginx.load_balancer.addresses[0]", "forge"),
    ({"tls": "off", "nginx": {"load_balancer": {"addresses": []}}}, "nginx.load_balancer.addresses", "at least 1"),
    ({"tls": "off", "nginx": {"load_balancer": {"addresses": ["10.0.0.5"]}, "real_ip_from": ["10.0.0.6"]}},
     "nginx.real_ip_from", "load_balancer.addresses"),
    ({"media": {"content_disposition": "download"}}, "media.content_disposition", "attachment"),
    ({"upstream": {"next_upstream_tries": 0, "servers": [{"address": "127.0.0.1:8000"}]}},
     "upstream.next_upstream_tries", "1"),
    ({"upstream": {"servers": [{"address": "10.0.0.1:8000", "fail_timeout": "10s\""}]},
      "app_server": {"trusted_proxies": ["10.0.0.5"]}}, "upstream.servers[0].fail_timeout", "time"),
    ({"tls": {"mode": "files", "certificate": "/etc/ssl/a$b.pem", "certificate_key": "/etc/ssl/k.pem"}},
     "tls.certificate", "safe path"),
    ({"paths": {"nginx_log_dir": "/var/log/nginx\n"}}, "paths.nginx_log_dir", "safe path"),
]


@pytest.mark.parametrize("changes, field, words", BAD, ids=[b[1] for b in BAD])
def test_render_refuses_bad_nginx_values(runner, tmp_path: Path, changes: dict, field: str, words: str) -> None:
    data = {**load_data("minimal"), **changes}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(spec), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip().startswith(field + ":")]
    assert lines and words in lines[0], result.output
    assert not out.exists()
