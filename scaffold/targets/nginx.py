"""nginx: the site (upstream group, servers, locations) and the catch-all default server."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Optional

from scaffold import grammar
from scaffold.spec import Spec, Upstream, UpstreamServer, static_origin
from scaffold.spec.values import NGINX_RESOLVE_SINCE
from scaffold.targets._base import RenderJob

NAME = "nginx"
# Where certbot --webroot writes challenge files; served over HTTP in tls.mode letsencrypt.
ACME_WEBROOT = "/var/www/letsencrypt"
ACME_PATH = "/.well-known/acme-challenge/"
DEFAULT_SERVER_FILE = PurePosixPath("nginx", "default-server.conf")

# nginx CHANGES: `http2 on;` since 1.25.1, the `listen ... http2` parameter is deprecated there.
HTTP2_DIRECTIVE_SINCE = (1, 25, 1)
# nginx 1.23.2 rotates session ticket keys itself when ssl_session_cache is shared; before it,
# Mozilla's generator turns tickets off (mozilla/ssl-config-generator, commit a172281).
TICKET_ROTATION_SINCE = (1, 23, 2)
# Mozilla server-side TLS 6.0 (guidelines/6.0.json): the six ECDHE AEAD suites, no DHE.
INTERMEDIATE_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
# Mozilla server-side TLS 6.0 groups. X25519MLKEM768 (post-quantum hybrid) comes first where the
# OpenSSL nginx runs with has it (3.5, Debian 13); nginx fails to start with it on OpenSSL 3.0.
TLS_GROUPS = "X25519:prime256v1:secp384r1"
PQ_GROUP = "X25519MLKEM768"
PQ_GROUP_SINCE = (3, 5, 0)
# nginx CHANGES 1.27.3 (NGINX_RESOLVE_SINCE): `resolve` on upstream servers, `resolver` in the
# upstream block. 1.29.7: upstream keepalive on by default (`keepalive 0` turns it off).
KEEPALIVE_DEFAULT_SINCE = (1, 29, 7)
RESOLVER_VALID = "30s"  # re-resolve at most this often, whatever the records' TTL
PROTOCOLS = {"intermediate": "TLSv1.2 TLSv1.3", "modern": "TLSv1.3"}
SESSION_CACHE = "shared:djdeploy_tls:10m"  # about 40000 sessions (Mozilla)
# Django's own defaults (SECURE_CONTENT_TYPE_NOSNIFF, SECURE_REFERRER_POLICY, X_FRAME_OPTIONS),
# so static files, media and nginx's own error pages carry what the app sends.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
# Upload types a browser shows without running code; every other upload (HTML, SVG, XML,
# JavaScript, ...) is sent as application/octet-stream, so it downloads instead of rendering.
MEDIA_TYPES = (
    ("image/avif", "avif"), ("image/gif", "gif"), ("image/jpeg", "jpeg jpg"), ("image/png", "png"),
    ("image/webp", "webp"), ("image/x-icon", "ico"), ("application/pdf", "pdf"),
    ("audio/mpeg", "mp3"), ("audio/ogg", "oga ogg"), ("video/mp4", "mp4"), ("video/webm", "webm"),
    ("text/plain", "txt"), ("text/csv", "csv"),
)
# Headers gunicorn (secure_scheme_headers, forwarded_allow_ips) or Django may trust: only
# nginx sets them, so a client cannot forge them; an empty value removes the client's copy.
CLEARED_HEADERS = ("Forwarded", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Protocol",
                   "X-Forwarded-Ssl")
# Retries (see the comment in the site template): a connect timeout (3 s) still fails over, a
# request an app had for 4 s is never sent again, so neither is one that hit proxy_read_timeout
# (app_server.timeout + 5 >= 6 s).
CONNECT_TIMEOUT = "3s"
NEXT_UPSTREAM_TIMEOUT = "4s"
# nginx's own max_fails default (1 in 10s) takes a host out after one request that killed its
# worker or ran too long; 0 never marks a server failed (connect failures still move on).
DEFAULT_MAX_FAILS = 0
RETRY_AFTER_SECONDS = 30  # on nginx's own 502/503/504
UNAVAILABLE_PAGE = ("<!doctype html><html lang=en><meta charset=utf-8><title>Temporarily unavailable</title>"
                    "<h1>Temporarily unavailable</h1><p>The site could not answer this request. "
                    "Please try again in a moment.</p></html>")
# Uploads are documents of the site's origin: this policy gives one that is opened directly a
# unique origin (sandbox) and lets it load nothing (no script, no frames, no requests).
MEDIA_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
# Where the site's own checks come from: curl on this host (INSTALL.md's checks).
LOOPBACK_NETWORKS = ("127.0.0.1", "::1")
# Upstream keep-alive connections are closed after this many requests or this long, and opened
# again: a new connection goes to whichever app worker accepts first. Without that, connections
# opened while one worker restarted (max_requests) stay with the others, which do most of the
# work while the new worker idles (measured with tests/bench.py; nginx's default is 1000 and 1h).
UPSTREAM_KEEPALIVE_REQUESTS = 100
UPSTREAM_KEEPALIVE_TIME = "10s"
KEEPALIVE_TIME_SINCE = (1, 19, 10)  # nginx CHANGES: upstream keepalive_time
# Access log: written in 64 KiB blocks, at the latest 5 s after a line (nginx docs, access_log),
# so `tail -f` lags by seconds and a busy site makes far fewer write() calls.
ACCESS_LOG_BUFFER = "buffer=64k flush=5s"
# ManifestStaticFilesStorage names (name.<12 hex>.ext) never change content.
HASHED_NAME = r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$"
IMMUTABLE = '"public, max-age=31536000, immutable"'
# Hashed static files each nginx worker keeps open (nginx docs, open_file_cache): a site's pages
# use a few dozen; the rest of the 1,024 descriptors systemd gives a worker stay for its
# connections. One unused for a minute is closed.
OPEN_HASHED_FILES = 256
OPEN_FILE_INACTIVE = "60s"
# nginx's uwsgi_params file (the variables uWSGI and Django read), written out so that the site
# does not depend on a file of the host's nginx.
UWSGI_PARAMS = (
    ("QUERY_STRING", "$query_string"), ("REQUEST_METHOD", "$request_method"),
    ("CONTENT_TYPE", "$content_type"), ("CONTENT_LENGTH", "$content_length"),
    ("REQUEST_URI", "$request_uri"), ("PATH_INFO", "$document_uri"),
    ("SERVER_PROTOCOL", "$server_protocol"), ("REQUEST_SCHEME", "$scheme"),
    ("HTTPS", "$https if_not_empty"), ("REMOTE_ADDR", "$remote_addr"), ("REMOTE_PORT", "$remote_port"),
    ("SERVER_PORT", "$server_port"), ("SERVER_NAME", "$server_name"),
)
PROXY_READ_MARGIN = 5  # seconds beyond app_server.timeout (see read_timeout_reason)
GZIP_TYPES = ("text/css", "text/javascript", "application/javascript", "application/json",
              "application/manifest+json", "image/svg+xml", "text/plain", "text/xml",
              "application/xml", "font/ttf", "font/otf")


def site_file(spec: Spec) -> PurePosixPath:
    """Where the site (http-context include) is written."""
    return PurePosixPath("nginx", f"{spec.name}.conf")


def output_files(spec: Spec) -> list[PurePosixPath]:
    """Every file this target writes, for the runbook and the live tests."""
    return [DEFAULT_SERVER_FILE, site_file(spec)]


def jobs(spec: Spec) -> list[RenderJob]:
    """The catch-all default server and the site."""
    shared = {"tls": tls_policy(spec), "listen": listens(spec), "http2_on": http2_directive(spec)}
    return [
        RenderJob("nginx/default-server.conf.j2", DEFAULT_SERVER_FILE, shared),
        RenderJob("nginx/site.conf.j2", site_file(spec), {**shared, **site_context(spec)}),
    ]


def http2_directive(spec: Spec) -> bool:
    """True when HTTP/2 is turned on with `http2 on;` rather than a listen parameter."""
    return grammar.nginx_syntax_version(spec.nginx.version) >= HTTP2_DIRECTIVE_SINCE


def listens(spec: Spec) -> dict[str, list[str]]:
    """`listen` arguments: plain and TLS, for sites and for the default server."""
    n = spec.nginx
    tls_flags = "ssl" if http2_directive(spec) else "ssl http2"
    plain = _addresses(n.http_port, n.ipv6)
    if n.load_balancer is not None and n.load_balancer.proxy_protocol:
        plain = [f"{a} proxy_protocol" for a in plain]
    # A plain-HTTP site (tls.mode off) opens only its HTTP port, in the default server too.
    secure = [f"{a} {tls_flags}" for a in _addresses(n.https_port, n.ipv6)] if tls_on(spec) else []
    return {
        "http": plain,
        "https": secure,
        "default_http": [f"{a} default_server" for a in plain],
        "default_https": [f"{a} default_server" for a in secure],
    }


def tls_on(spec: Spec) -> bool:
    """Whether nginx terminates TLS itself (tls.mode files or letsencrypt)."""
    return spec.tls.mode != "off"


def _addresses(port: int, ipv6: bool) -> list[str]:
    return [str(port), f"[::]:{port}"] if ipv6 else [str(port)]


def tls_policy(spec: Spec) -> dict[str, object]:
    """Mozilla server-side TLS 6.0 for the spec's profile and nginx version.

    The default server carries it too: nginx 1.22 with OpenSSL 3.0 negotiates the protocol
    version, the key-exchange group and the session cache with the default server's settings,
    before the SNI name selects the site (checked with openssl s_client).
    """
    return {
        "protocols": PROTOCOLS[spec.tls.profile],
        # Kept for modern too: they apply only if TLS 1.2 is ever negotiated on the port.
        "ciphers": INTERMEDIATE_CIPHERS,
        "groups": tls_groups(spec),
        "session_cache": SESSION_CACHE,
        "tickets_off": grammar.nginx_syntax_version(spec.nginx.version) < TICKET_ROTATION_SINCE,
    }


def tls_groups(spec: Spec) -> str:
    """ssl_ecdh_curve: Mozilla's groups, the post-quantum hybrid first where OpenSSL has it."""
    if grammar.parse_nginx_version(spec.nginx.openssl) >= PQ_GROUP_SINCE:
        # "?": an OpenSSL without the group (3.3, 3.4) skips it instead of refusing the list.
        return f"?{PQ_GROUP}:{TLS_GROUPS}"
    return TLS_GROUPS


def site_context(spec: Spec) -> dict[str, object]:
    """Everything the site template lays out."""
    return {
        "domain": spec.domain,
        "aliases": spec.aliases,
        "tls_on": tls_on(spec),
        "certificate": spec.tls.certificate,
        "certificate_key": spec.tls.certificate_key,
        "acme_webroot": ACME_WEBROOT if spec.tls.mode == "letsencrypt" else None,
        "acme_path": ACME_PATH,
        "canonical": canonical_origin(spec),
        "upstream": upstream_context(spec),
        "header_maps": header_maps(spec),
        "connection_map": connection_map(spec),
        "proxy": proxy_context(spec),
        "rate_limit": rate_limit_context(spec),
        "logs": log_paths(spec),
        "real_ip": real_ip_context(spec),
        "load_balancer": load_balancer_context(spec),
        "retry": retry_context(spec),
        "unavailable": unavailable_context(spec),
        "log_format": log_format_context(spec),
        "client_max_body_size": spec.nginx.client_max_body_size,
        "static": static_context(spec),
        "static_cors": static_cors(spec),
        "media": media_context(spec),
        "protected": protected_context(spec),
        "health": health_context(spec),
        "admin": admin_context(spec),
        "gzip_types": " ".join(GZIP_TYPES),
    }


def static_context(spec: Spec) -> dict[str, object]:
    """The static location: its path (a CDN's URL names this site's path too), who serves it,
    precompressed copies and the caching of hashed names."""
    return {"url": static_origin(spec)[1], "alias": f"{spec.static.root}/",
            "whitenoise": spec.static.server == "whitenoise", "brotli": spec.static.brotli,
            "hashed": HASHED_NAME, "immutable": IMMUTABLE, "open_files": OPEN_HASHED_FILES,
            "open_inactive": OPEN_FILE_INACTIVE}


def static_cors(spec: Spec) -> Optional[dict[str, str]]:
    """With static files on a CDN: Access-Control-Allow-Origin on them, which fonts (and module
    scripts) from another origin need (Fetch standard, CORS; fonts are always fetched in cors
    mode). `*`, as the files are public; nginx sends it only on the static path.

    WhiteNoise sends the header itself (WHITENOISE_ALLOW_ALL_ORIGINS), so nginx does not then.
    """
    cdn, path = static_origin(spec)
    if cdn is None or spec.static.server == "whitenoise":
        return None
    return {"variable": f"${variable_prefix(spec)}_static_cors", "pattern": quote(f"~^{path}"),
            "value": quote("*")}


def protected_context(spec: Spec) -> Optional[dict[str, object]]:
    """The internal location X-Accel-Redirect names; None without media.protected."""
    p = spec.media.protected
    if p is None:
        return None
    return {"url": p.url, "alias": f"{p.root}/"}


def health_context(spec: Spec) -> dict[str, object]:
    """The health endpoint: reachable from this host, the proxies and load balancer in front, and health.allow only."""
    lb = spec.nginx.load_balancer
    allowed = [*LOOPBACK_NETWORKS, *spec.nginx.real_ip_from, *(lb.addresses if lb else ()), *spec.health.allow]
    return {"path": spec.health.path, "allow": list(dict.fromkeys(allowed))}


def admin_context(spec: Spec) -> Optional[dict[str, object]]:
    """The admin location restricted to nginx.admin.allow, or None when everyone may reach it."""
    a = spec.nginx.admin
    return {"path": a.path, "allow": a.allow} if a.allow else None


def variable_prefix(spec: Spec) -> str:
    """Prefix of this site's http-level names (variables, zones): the slug with '-' as '_'."""
    return spec.name.replace("-", "_")


def canonical_origin(spec: Spec) -> str:
    """`https://domain[:port]` (or http:// with TLS off): where aliases and HTTP redirect to."""
    n = spec.nginx
    if n.load_balancer is not None:
        return f"https://{spec.domain}"  # the load balancer's HTTPS listener
    scheme, port, usual = ("http", n.http_port, 80) if spec.tls.mode == "off" else ("https", n.https_port, 443)
    return f"{scheme}://{spec.domain}" + ("" if port == usual else f":{port}")


def browsers_use_https(spec: Spec) -> bool:
    """Whether browsers reach the site over HTTPS: at nginx, or at a load balancer in front of it."""
    return tls_on(spec) or spec.nginx.load_balancer is not None


def upstream_context(spec: Spec) -> dict[str, object]:
    """The upstream group: method line, server lines, idle keepalive."""
    u = spec.upstream or Upstream()
    resolve = grammar.nginx_syntax_version(spec.nginx.version) >= NGINX_RESOLVE_SINCE
    servers = [server_line(s, resolve) for s in u.servers] or [local_server(spec.app_server.bind or "")]
    again = second_try_lines(spec, resolve)
    keepalive = u.keepalive if spec.app_server.keepalive > 0 and not speaks_uwsgi(spec) else 0
    named = any(needs_resolve(s.address) for s in u.servers)
    return {
        "name": spec.name,
        "method": method_line(u),
        "servers": again or servers,
        "second_try": again is not None,
        "zone": f"{variable_prefix(spec)}_upstream" if named else None,
        "resolver": " ".join([*spec.nginx.resolver, f"valid={RESOLVER_VALID}"]) if named else None,
        "keepalive": keepalive,
        "keepalive_off": keepalive == 0 and (grammar.nginx_syntax_version(spec.nginx.version)
                                             >= KEEPALIVE_DEFAULT_SINCE),
        "keepalive_timeout": keepalive_timeout(spec.app_server.keepalive),
        "keepalive_requests": UPSTREAM_KEEPALIVE_REQUESTS,
        "keepalive_time": (UPSTREAM_KEEPALIVE_TIME if grammar.nginx_syntax_version(spec.nginx.version)
                           >= KEEPALIVE_TIME_SINCE else None),
    }


def needs_resolve(address: str) -> bool:
    """Whether an upstream address names a host other than localhost (resolved through DNS)."""
    if address.startswith("unix:"):
        return False
    host, _ = grammar.split_address(address)
    return host != "localhost" and not host.startswith("[") and not _is_ipv4(host)


def _is_ipv4(host: str) -> bool:
    try:
        grammar.check_ip_or_network(host)
    except ValueError:
        return False
    return True


def method_line(u: Upstream) -> Optional[str]:
    """The balancing-method directive, or None for round robin (nginx's default)."""
    return {
        "round_robin": None,
        "least_conn": "least_conn",
        "ip_hash": "ip_hash",
        # consistent (ketama): adding or removing a server moves few keys.
        "hash": f"hash {u.hash_key} consistent",
        # "power of two choices", the least-connections pick of two random servers.
        "random": "random two least_conn",
    }[u.method]


def server_line(s: UpstreamServer, resolve: bool = False) -> str:
    """`address weight=N max_fails=N fail_timeout=T max_conns=N backup down resolve`."""
    max_fails = DEFAULT_MAX_FAILS if s.max_fails is None else s.max_fails
    params = [f"{key}={value}" for key, value in (("weight", s.weight), ("max_fails", max_fails),
                                                  ("fail_timeout", s.fail_timeout),
                                                  ("max_conns", s.max_conns)) if value is not None]
    params += [flag for flag, on in (("backup", s.backup), ("down", s.down)) if on]
    params += ["resolve"] if resolve and needs_resolve(s.address) else []
    return " ".join([s.address, *params])


def second_try_lines(spec: Spec, resolve: bool) -> Optional[list[str]]:
    """The one app server, then the same server as its own backup; None where that does not apply.

    nginx retries a request on a failed kept-alive connection, but on a fresh one only if the
    group has another server. A reload stops the old workers, and one that had accepted a
    connection without reading its request yet closes it (gunicorn's uvicorn worker does): with the
    same server as a backup, proxy_next_upstream sends that GET once more, to the new workers. With
    one try, or a method that refuses backups (ip_hash, hash, random), nothing is added.
    """
    u = spec.upstream or Upstream()
    if u.next_upstream_tries < 2 or u.method not in ("round_robin", "least_conn") or len(u.servers) > 1:
        return None
    if u.servers:
        only = u.servers[0]
        return [server_line(only, resolve), server_line(only.model_copy(update={"backup": True}), resolve)]
    # max_fails=0 on both: one reset must not take the address out (nginx ignores max_fails only
    # while a group has a single server).
    address = f"{local_server(spec.app_server.bind or '')} max_fails={DEFAULT_MAX_FAILS}"
    return [address, f"{address} backup"]


def local_server(bind: str) -> str:
    """The app server on this host, as nginx connects to it (a wildcard bind → loopback)."""
    if bind.startswith("unix:"):
        return bind
    host, port = grammar.split_address(bind)
    loopback = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"{loopback}:{port}"


def keepalive_timeout(app_keepalive: int) -> str:
    """Idle time for nginx's upstream connections: below the app's, so nginx never reuses one the
    app is closing (a race that fails a request nginx may not retry, e.g. a POST)."""
    return f"{app_keepalive - 1}s" if app_keepalive >= 2 else "500ms"


def header_maps(spec: Spec) -> list[dict[str, str]]:
    """One map per security header: nginx's value when the app sent none, else empty.

    An empty add_header value is not sent, so the app's own choice (and a single copy of
    each header) wins on proxied responses; static files, media and errors get nginx's.
    """
    prefix = variable_prefix(spec)
    maps = []
    for header, value in security_headers(spec):
        field = header.lower().replace("-", "_")
        maps.append({"header": header, "source": f"$upstream_http_{field}",
                     "variable": f"${prefix}_{field}", "value": quote(value)})
    return maps


def security_headers(spec: Spec) -> list[tuple[str, str]]:
    """The headers every response carries, HSTS first when TLS is on."""
    hsts = hsts_value(spec)
    return ([("Strict-Transport-Security", hsts)] if hsts else []) + list(SECURITY_HEADERS)


def hsts_value(spec: Spec) -> Optional[str]:
    """The Strict-Transport-Security value, or None (TLS off or hsts_seconds 0)."""
    t = spec.tls
    if not browsers_use_https(spec) or t.hsts_seconds == 0:
        return None
    parts = [f"max-age={t.hsts_seconds}"]
    parts += ["includeSubDomains"] if t.hsts_include_subdomains else []
    parts += ["preload"] if t.hsts_preload else []
    return "; ".join(parts)


def connection_map(spec: Spec) -> Optional[dict[str, str]]:
    """For ASGI: Upgrade passes WebSockets through, plain requests keep the idle connection."""
    if spec.app_server.interface != "asgi":
        return None
    return {"variable": f"${variable_prefix(spec)}_connection", "plain": _plain_connection(spec)}


def _plain_connection(spec: Spec) -> str:
    return '""' if upstream_context(spec)["keepalive"] else "close"


def speaks_uwsgi(spec: Spec) -> bool:
    """Whether nginx talks the uwsgi protocol to the app (uWSGI), rather than HTTP.

    The uwsgi protocol carries one request per connection, so the upstream has no keepalive.
    """
    return spec.app_server.kind == "uwsgi"


def uwsgi_params(spec: Spec) -> list[tuple[str, str]]:
    """The variables of each uwsgi request, as nginx's uwsgi_params file names them, then the
    forwarded scheme and client address exactly as the HTTP proxy path sets them.

    uWSGI takes wsgi.url_scheme from UWSGI_SCHEME, HTTPS, HTTP_X_FORWARDED_SSL and
    HTTP_X_FORWARDED_PROTO (uWSGI 2.0 core/protocol.c): each is set or emptied here.
    """
    params = [(name, value) for name, value in UWSGI_PARAMS]
    params += [("UWSGI_SCHEME", "$scheme"), ("HTTP_HOST", "$host"), ("HTTP_X_FORWARDED_PROTO", "$scheme"),
               ("HTTP_X_FORWARDED_FOR", "$remote_addr"), ("HTTP_X_REAL_IP", "$remote_addr")]
    return params + [("HTTP_" + name.upper().replace("-", "_"), '""') for name in CLEARED_HEADERS]


def proxy_context(spec: Spec) -> dict[str, object]:
    """proxy_* (or uwsgi_*) settings for the app locations (set once, at server level)."""
    if speaks_uwsgi(spec):
        return {"protocol": "uwsgi", "directive": "uwsgi_pass", "pass": spec.name, "params": uwsgi_params(spec),
                "read_timeout": f"{spec.app_server.timeout + PROXY_READ_MARGIN}s",
                "read_timeout_why": read_timeout_reason(spec)}
    conn = connection_map(spec)
    headers = [
        ("Host", "$host"),  # never $http_host: gixy host_spoofing
        # Behind a load balancer every proxied request came through its HTTPS listener (the
        # site redirects any other peer), so the scheme is https whatever nginx's own is.
        ("X-Forwarded-Proto", "https" if spec.nginx.load_balancer is not None else "$scheme"),
        ("X-Forwarded-For", "$remote_addr"),  # replaces the client's list instead of appending
        ("X-Real-IP", "$remote_addr"),
        ("Connection", conn["variable"] if conn else _plain_connection(spec)),
    ]
    headers += [("Upgrade", "$http_upgrade")] if conn else []
    headers += [(name, '""') for name in CLEARED_HEADERS]
    return {
        "protocol": "http",
        "directive": "proxy_pass",
        "pass": f"http://{spec.name}",
        "headers": headers,
        "read_timeout": f"{spec.app_server.timeout + PROXY_READ_MARGIN}s",
        "read_timeout_why": read_timeout_reason(spec),
    }


def read_timeout_reason(spec: Spec) -> list[str]:
    """proxy_read_timeout's comment lines: whether the app server's own limit fires first."""
    from scaffold.targets import gunicorn

    if spec.app_server.kind == "gunicorn" and gunicorn.bounds_requests(spec):
        return ["Longer than gunicorn's timeout, which kills a sync worker busy that long with one",
                "request: the app's own limit fires first."]
    if speaks_uwsgi(spec):
        return ["Longer than uWSGI's harakiri, which kills a worker busy that long with one request:",
                "the app's own limit fires first."]
    return ["Nothing in this app server bounds a request (gthread, ASGI): after this long nginx",
            "answers 504 and closes the upstream connection. The database's statement timeout",
            "bounds the queries of a request that goes on."]


def retry_context(spec: Spec) -> dict[str, object]:
    """proxy_next_upstream's bounds: how many servers, and until when a retry may start."""
    u = spec.upstream or Upstream()
    return {"tries": u.next_upstream_tries, "connect_timeout": CONNECT_TIMEOUT,
            "timeout": NEXT_UPSTREAM_TIMEOUT}


def unavailable_context(spec: Spec) -> dict[str, object]:
    """The named location that answers nginx's own 502, 503 and 504."""
    return {"location": f"@{variable_prefix(spec)}_unavailable", "retry_after": RETRY_AFTER_SECONDS,
            "page": quote(UNAVAILABLE_PAGE)}


def log_format_context(spec: Spec) -> dict[str, str]:
    """The access-log format: nginx's combined, then timings and which app server answered."""
    return {"name": f"{variable_prefix(spec)}_timing"}


def real_ip_context(spec: Spec) -> Optional[dict[str, object]]:
    """Where the client address comes from (realip module), or None: the connection's peer."""
    lb = spec.nginx.load_balancer
    if lb is not None:
        return {"from": lb.addresses, "header": "proxy_protocol" if lb.proxy_protocol else "X-Forwarded-For"}
    if spec.nginx.real_ip_from:
        return {"from": spec.nginx.real_ip_from, "header": "X-Forwarded-For"}
    return None


def load_balancer_context(spec: Spec) -> Optional[dict[str, object]]:
    """The geo variable that is 1 for connections from the load balancer, and its addresses."""
    lb = spec.nginx.load_balancer
    if lb is None:
        return None
    return {"variable": f"${variable_prefix(spec)}_via_load_balancer", "addresses": lb.addresses,
            "proxy_protocol": lb.proxy_protocol}


def media_context(spec: Spec) -> dict[str, object]:
    """The media location: alias, inert types, and its own headers (which replace inherited ones)."""
    m = spec.media
    headers = [("Content-Security-Policy", quote(MEDIA_CSP))]
    if m.content_disposition == "attachment":
        headers.append(("Content-Disposition", "attachment"))
    return {"url": m.url, "alias": f"{m.root}/", "types": MEDIA_TYPES, "headers": headers}


def rate_limit_context(spec: Spec) -> Optional[dict[str, object]]:
    """limit_req on the login paths, or None."""
    r = spec.nginx.login_rate_limit
    if r is None:
        return None
    admin = spec.nginx.admin
    # A login path inside the admin's is a location of its own: it repeats the admin's allow-list.
    paths = [{"path": path, "allow": admin.allow if path.startswith(admin.path) else []}
             for path in r.paths or []]
    return {"zone": f"{variable_prefix(spec)}_login", "rate": r.rate, "burst": r.burst, "paths": paths}


def log_paths(spec: Spec) -> dict[str, str]:
    """Per-site access and error logs."""
    d = spec.paths.nginx_log_dir
    return {"access": f"{d}/{spec.name}.access.log", "access_buffer": ACCESS_LOG_BUFFER,
            "error": f"{d}/{spec.name}.error.log"}


def quote(value: str) -> str:
    """A double-quoted nginx string; refuses what nginx would read inside quotes.

    `$` starts a variable and a backslash escapes; neither may reach a constant value.
    """
    bad = [c for c in value if c in '"\\$' or ord(c) < 32 or ord(c) == 127]
    if bad:
        raise ValueError(f"{value!r} cannot be an nginx string constant (contains {bad[0]!r})")
    return f'"{value}"'
