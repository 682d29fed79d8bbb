"""nginx: the site (upstream group, servers, locations) and the catch-all default server."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Optional

from scaffold import grammar
from scaffold.spec import Spec, Upstream, UpstreamServer
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
# Mozilla 6.0 lists X25519MLKEM768 first; OpenSSL < 3.5 (Debian 12 has 3.0) refuses to start
# with it, and the spec does not know the target's OpenSSL, so the classic groups only.
TLS_GROUPS = "X25519:prime256v1:secp384r1"
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
    secure = [f"{a} {tls_flags}" for a in _addresses(n.https_port, n.ipv6)]
    return {
        "http": plain,
        "https": secure,
        "default_http": [f"{a} default_server" for a in plain],
        "default_https": [f"{a} default_server" for a in secure],
    }


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
        "groups": TLS_GROUPS,
        "session_cache": SESSION_CACHE,
        "tickets_off": grammar.nginx_syntax_version(spec.nginx.version) < TICKET_ROTATION_SINCE,
    }


def site_context(spec: Spec) -> dict[str, object]:
    """Everything the site template lays out."""
    return {
        "domain": spec.domain,
        "aliases": spec.aliases,
        "tls_on": spec.tls.mode != "off",
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
        "real_ip_from": spec.nginx.real_ip_from,
        "client_max_body_size": spec.nginx.client_max_body_size,
        "static": {"url": spec.static.url, "alias": f"{spec.static.root}/"},
        "media": {"url": spec.media.url, "alias": f"{spec.media.root}/", "types": MEDIA_TYPES},
        "gzip_types": " ".join(GZIP_TYPES),
    }


def variable_prefix(spec: Spec) -> str:
    """Prefix of this site's http-level names (variables, zones): the slug with '-' as '_'."""
    return spec.name.replace("-", "_")


def canonical_origin(spec: Spec) -> str:
    """`https://domain[:port]` (or http:// with TLS off): where aliases and HTTP redirect to."""
    n = spec.nginx
    scheme, port, usual = ("http", n.http_port, 80) if spec.tls.mode == "off" else ("https", n.https_port, 443)
    return f"{scheme}://{spec.domain}" + ("" if port == usual else f":{port}")


def upstream_context(spec: Spec) -> dict[str, object]:
    """The upstream group: method line, server lines, idle keepalive."""
    u = spec.upstream or Upstream()
    servers = [server_line(s) for s in u.servers] or [local_server(spec.app_server.bind or "")]
    keepalive = u.keepalive if spec.app_server.keepalive > 0 and not speaks_uwsgi(spec) else 0
    return {
        "name": spec.name,
        "method": method_line(u),
        "servers": servers,
        "keepalive": keepalive,
        "keepalive_timeout": keepalive_timeout(spec.app_server.keepalive),
    }


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


def server_line(s: UpstreamServer) -> str:
    """`address weight=N max_fails=N fail_timeout=T max_conns=N backup down`."""
    params = [f"{key}={value}" for key, value in (("weight", s.weight), ("max_fails", s.max_fails),
                                                  ("fail_timeout", s.fail_timeout),
                                                  ("max_conns", s.max_conns)) if value is not None]
    params += [flag for flag, on in (("backup", s.backup), ("down", s.down)) if on]
    return " ".join([s.address, *params])


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
    if t.mode == "off" or t.hsts_seconds == 0:
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
        ("X-Forwarded-Proto", "$scheme"),
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


def rate_limit_context(spec: Spec) -> Optional[dict[str, object]]:
    """limit_req on the login paths, or None."""
    r = spec.nginx.login_rate_limit
    if r is None:
        return None
    return {"zone": f"{variable_prefix(spec)}_login", "rate": r.rate, "burst": r.burst,
            "paths": r.paths}


def log_paths(spec: Spec) -> dict[str, str]:
    """Per-site access and error logs."""
    d = spec.paths.nginx_log_dir
    return {"access": f"{d}/{spec.name}.access.log", "error": f"{d}/{spec.name}.error.log"}


def quote(value: str) -> str:
    """A double-quoted nginx string; refuses what nginx would read inside quotes.

    `$` starts a variable and a backslash escapes; neither may reach a constant value.
    """
    bad = [c for c in value if c in '"\\$' or ord(c) < 32 or ord(c) == 127]
    if bad:
        raise ValueError(f"{value!r} cannot be an nginx string constant (contains {bad[0]!r})")
    return f'"{value}"'
