"""Value grammars: each check matches what the config file a value lands in can read safely.

Every checker takes a string and returns it (possibly normalised) or raises
``ValueError`` with a message meant for the user. They are plain functions so
the wizard can reuse them on single answers.
"""

from __future__ import annotations

import ipaddress
import keyword
import re

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Path characters that no target reads as syntax: nginx, supervisor, systemd, Python literals.
_PATH = re.compile(r"^(/[A-Za-z0-9._@+=,~-]+)+$")
_URL_PATH = re.compile(r"^/([A-Za-z0-9._~-]+/)+$")
# An endpoint such as /healthz or /-/health/: one exact path, with or without a trailing '/'.
_ENDPOINT_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+/?$")
NGINX_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
NGINX_TIME = re.compile(r"^([0-9]+(ms|s|m|h|d|w|M|y))+$|^[0-9]+$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#%&'*+/=?^_`{|}~.-]{1,64}$")
_NGINX_VARIABLE_EXPR = re.compile(r"^(\$[a-z_][a-z0-9_]*|[A-Za-z0-9_./:-])+$")
# At most 9 digits a part, so that int() of a part is always cheap.
VERSION_PATTERN = r"[0-9]{1,9}\.[0-9]{1,9}(?:\.[0-9]{1,9})?"
_VERSION = re.compile(f"^{VERSION_PATTERN}$")
_PREFIX = re.compile(r"0|[1-9][0-9]{0,2}")
_PORT_TEXT = re.compile(r"[1-9][0-9]{0,4}")
_FORBIDDEN_SHOWN = {" ": "a space", "\t": "a tab", "\n": "a newline", ";": "';'", "{": "'{'",
                    "}": "'}'", "$": "'$'", "'": "a quote", '"': "a quote", "#": "'#'", "%": "'%'"}


def check_slug(value: str) -> str:
    """A name for files, programs, the upstream and the socket."""
    if not _SLUG.fullmatch(value):
        raise ValueError(
            "must be a slug: a lowercase letter, then up to 31 lowercase letters, digits or '-'"
        )
    return value


def check_hostname(value: str) -> str:
    """An RFC 1123 host name, lowercase, no wildcard, no trailing dot."""
    if "*" in value:
        raise ValueError("wildcard host names are not supported; list each name")
    if value != value.lower():
        raise ValueError(f"host names must be lowercase ({value.lower()!r})")
    if len(value) > 253 or not value:
        raise ValueError("a host name is 1-253 characters")
    labels = value.split(".")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if bad is not None:
        raise ValueError(
            f"{value!r} is not a valid host name (label {bad!r}: letters, digits and '-', "
            "1-63 characters, not starting or ending with '-')"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} looks like an IP address; a host name is needed")
    return value


def check_abs_path(value: str) -> str:
    """An absolute path that every config format can carry without quoting."""
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with '/'), not {value!r}")
    stripped = value.rstrip("/") if value != "/" else value
    if not _PATH.fullmatch(stripped):
        shown = _describe_forbidden(stripped)
        raise ValueError(
            f"{value!r} is not a safe path{shown}: use letters, digits and . _ - @ + = , ~ only"
        )
    if any(part in (".", "..") for part in stripped.split("/")):
        raise ValueError(f"{value!r} must not contain '.' or '..' segments")
    return stripped


def check_url_path(value: str) -> str:
    """A URL prefix such as ``/static/``: starts and ends with '/', not '/' alone."""
    if not _URL_PATH.fullmatch(value):
        raise ValueError(
            f"{value!r} must be a URL path that starts and ends with '/', like '/static/'"
        )
    return value


def check_endpoint_path(value: str) -> str:
    """One exact URL path such as ``/healthz``: starts with '/', no '//', no query."""
    if not _ENDPOINT_PATH.fullmatch(value):
        raise ValueError(f"{value!r} must be a URL path starting with '/', like '/healthz'")
    return value


def check_static_url(value: str) -> str:
    """STATIC_URL: a URL path (``/static/``) or an https:// URL on another host (a CDN)."""
    if _URL_PATH.fullmatch(value) or _STATIC_CDN.fullmatch(value):
        return value
    raise ValueError(f"{value!r} must be a URL path that starts and ends with '/', like '/static/', "
                     "or an https:// URL of a CDN ending with '/', like 'https://cdn.example.com/static/'")


def split_static_url(value: str) -> tuple[str | None, str]:
    """(CDN host or None, URL path) of a checked static URL."""
    found = _STATIC_CDN.fullmatch(value)
    return (found["host"], found["path"]) if found else (None, value)


def check_unix_name(value: str) -> str:
    """A unix user or group name."""
    if not _UNIX_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid unix user or group name")
    return value


def check_module(value: str) -> str:
    """A dotted Python module path such as ``shop.settings_production``."""
    parts = value.split(".")
    if not all(_IDENT.fullmatch(p) and not keyword.iskeyword(p) for p in parts):
        raise ValueError(f"{value!r} is not a dotted Python module path")
    return value


def check_email(value: str) -> str:
    """An e-mail address: local part @ a host name."""
    local, at, domain = value.rpartition("@")
    if not at or not _EMAIL_LOCAL.fullmatch(local) or local.startswith(".") or ".." in local:
        raise ValueError(f"{value!r} is not an e-mail address")
    try:
        check_hostname(domain)
    except ValueError:
        raise ValueError(f"{value!r} is not an e-mail address") from None
    return value


def check_nginx_size(value: str) -> str:
    """An nginx size such as ``10m``, ``512k`` or ``0``."""
    if not NGINX_SIZE.fullmatch(value):
        raise ValueError(f"{value!r} is not an nginx size (a number, optionally k, m or g)")
    return value


def check_nginx_time(value: str) -> str:
    """An nginx time such as ``10s``, ``1m`` or ``1h30m``."""
    if not NGINX_TIME.fullmatch(value):
        raise ValueError(f"{value!r} is not an nginx time (like 10s, 1m, 1h30m)")
    return value


def check_nginx_version(value: str) -> str:
    """An nginx version, ``MAJOR.MINOR`` or ``MAJOR.MINOR.PATCH``."""
    if not _VERSION.fullmatch(value):
        raise ValueError(f"{value!r} is not a version like \"1.22\" or \"1.26.2\"")
    return value


def parse_nginx_version(value: str) -> tuple[int, int, int]:
    """``"1.22"`` → ``(1, 22, 0)``: the series' first release, for the oldest-version rule."""
    major, minor, patch = (check_nginx_version(value).split(".") + ["0"])[:3]
    return int(major), int(minor), int(patch)


# For the syntax a config uses, "MAJOR.MINOR" means the series' newest patch release: nginx adds
# directives in patch releases too (`http2 on` in 1.25.1, ticket key rotation in 1.23.2), and a
# site written for "1.25" must load warning-free on the 1.25.x an operator actually runs. An older
# patch release is written out in full ("1.25.0").
SERIES_NEWEST_PATCH = 10**6


def nginx_syntax_version(value: str) -> tuple[int, int, int]:
    """``"1.22.1"`` → ``(1, 22, 1)``; ``"1.22"`` → the newest 1.22.x, to compare with what a directive needs."""
    major, minor, patch = (check_nginx_version(value).split(".") + [str(SERIES_NEWEST_PATCH)])[:3]
    return int(major), int(minor), int(patch)


def check_nginx_variable_expr(value: str) -> str:
    """An nginx hash key: variables and plain characters, nothing nginx reads as syntax."""
    if not _NGINX_VARIABLE_EXPR.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a usable hash key: use nginx variables such as $request_uri "
            "and letters, digits, '_', '.', '/', ':' or '-'"
        )
    return value


def check_ip_or_network(value: str) -> str:
    """An IPv4/IPv6 address or network in CIDR form (prefix length, not a netmask)."""
    address, slash, prefix = value.partition("/")
    try:
        if "%" in value or (slash and not _PREFIX.fullmatch(prefix)):
            raise ValueError(prefix)
        return str(ipaddress.ip_network(value, strict=False)) if slash else str(_ip_address(address))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from None


def check_inventory_host(value: str) -> str:
    """How Ansible reaches a host: a host name (``localhost`` included) or an IP address."""
    try:
        return str(_ip_address(value))
    except ValueError:
        pass
    if value == "localhost":
        return value
    try:
        return check_hostname(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither a host name nor an IP address") from None


def _ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """ipaddress.ip_address without IPv6 zone ids (``%eth0``), which no target config accepts."""
    if "%" in value:
        raise ValueError(value)
    return ipaddress.ip_address(value)


def check_port(text: str) -> int:
    """A TCP port written as text: ASCII digits without leading zeros."""
    if not _PORT_TEXT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError("port must be 1-65535")
    return int(text)


def split_address(value: str) -> tuple[str, str | int]:
    """Split ``unix:/ABS``, ``HOST:PORT`` or ``[v6]:PORT`` into ``(host_or_"unix", port_or_path)``."""
    if value.startswith("unix:"):
        return "unix", check_abs_path(value[len("unix:"):])
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r}: write an IPv6 address as [ADDRESS]:PORT")
        try:
            if "%" in host:
                raise ValueError(host)
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
        return f"[{host}]", check_port(port)
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} must be HOST:PORT, [IPv6]:PORT or unix:/ABSOLUTE/PATH")
    if ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address as [ADDRESS]:PORT")
    _check_host(value, host)
    return host, check_port(port)


def check_address(value: str) -> str:
    """An address to listen on or connect to (see ``split_address``)."""
    split_address(value)
    return value


def _check_host(value: str, host: str) -> None:
    try:
        ipaddress.IPv4Address(host)
        return
    except ValueError:
        pass
    if all(part.isdigit() for part in host.split(".")):
        raise ValueError(f"{value!r}: {host!r} is not a valid IPv4 address")
    try:
        check_hostname(host)
    except ValueError:
        raise ValueError(f"{value!r}: {host!r} is not a valid host name or IPv4 address") from None


def check_line(value: str) -> str:
    """A single line of text: no newline or other control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be a single line without control characters")
    return value


def _describe_forbidden(value: str) -> str:
    found = sorted({shown for ch, shown in _FORBIDDEN_SHOWN.items() if ch in value})
    return f" (it contains {', '.join(found)})" if found else ""


IDENTIFIER_LIKE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REDIS_URL = re.compile(
    r"^rediss?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?(/[0-9]{1,2})?$|^unix:(/[A-Za-z0-9._@+=,~-]+)+$"
)


def check_host(value: str) -> str:
    """A host name or an IPv4/IPv6 address."""
    try:
        return str(_ip_address(value))
    except ValueError:
        return check_hostname(value)


def check_db_host(value: str) -> str:
    """A database host: a host name, an IP address, or the directory of a unix socket."""
    return check_abs_path(value) if value.startswith("/") else check_host(value)


# Characters an OnCalendar= expression uses (systemd.time(7)); nothing systemd reads as a specifier.
CALENDAR = re.compile(r"^[A-Za-z0-9 *:,./~+-]+$")
RATE = re.compile(r"^[1-9][0-9]*r/[sm]$")


# Django system check ids in the namespaces a production settings module touches, read from
# django/core/checks/ of Django 5.2.19 and 6.1.3 (mail.* and security.W027 are 6.1 only). In these
# namespaces an id must be one of these; in others (models, fields, admin, third-party apps) only
# the shape is checked.
DJANGO_CHECK_IDS = frozenset({
    *(f"security.W{n:03d}" for n in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19,
                                     20, 21, 22, 25, 27)),
    "security.E023", "security.E024", "security.E026", "security.E101", "security.E102",
    "async.E001", "caches.E001", "caches.W002", "caches.W003", "mail.E001", "mail.W001", "4_0.E001",
})
_CHECK_NAMESPACES = {"security", "async", "caches", "mail", "4_0"}
_RETIRED_CHECK_IDS = {
    "security.W007": "was removed in Django 3.0 with SECURE_BROWSER_XSS_FILTER",
    "security.W017": "was removed in Django 1.11 (CSRF_COOKIE_HTTPONLY)",
    "security.E100": "existed only in Django 3.1-3.2",
}
_CHECK_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*\.[CEWID][0-9]{3}$")


def check_django_check_id(value: str) -> str:
    """A Django system check id such as ``security.W021``, for SILENCED_SYSTEM_CHECKS."""
    if value in _RETIRED_CHECK_IDS:
        raise ValueError(f"{value!r} {_RETIRED_CHECK_IDS[value]}; nothing to silence")
    if not _CHECK_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a Django check id like 'security.W021' or 'models.W042'")
    if value.rpartition(".")[0] in _CHECK_NAMESPACES and value not in DJANGO_CHECK_IDS:
        close = sorted(i for i in DJANGO_CHECK_IDS if i[-3:] == value[-3:] and i[:-4] == value[:-4])
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{value!r} is not a Django check id{hint}")
    return value


# JSON Schema fragments stating the same grammars, so editors and check-jsonschema refuse what
# `validate` refuses. JSON Schema patterns are ECMA-262 regular expressions (JSON Schema
# Validation draft-07, 6.3.3 and 4.3), searched, not matched: each is anchored. Python's `$` also
# matches before a final newline and ECMA-262's does not, so every pattern ends with `$(?!\n)`,
# which is the end of the text in both. Only ASCII classes such as [0-9] are used (Python's \d is
# Unicode), and no `.` (ECMA-262's excludes \r and U+2028 too).


def anchored(body: str) -> str:
    """A pattern that matches exactly *body*, whole, in ECMA-262 and in Python."""
    return f"^(?:{body})$(?!\\n)"


def pattern_schema(body: str, message: str) -> dict[str, object]:
    """A string schema whose pattern is *body*, anchored; editors show *message* when it fails.

    patternErrorMessage is the YAML and JSON language servers' keyword (draft-07 ignores
    keywords it does not know), so a user reads the rule instead of the pattern.
    """
    return {"type": "string", "pattern": anchored(body), "patternErrorMessage": f"must be {message}"}


def range_pattern(low: int, high: int | None) -> str:
    """An unanchored pattern for the decimal numbers low..high (no sign, no leading zeros)."""
    if high is None:
        widest = 10 ** len(str(low)) - 1
        longer = f"[1-9][0-9]{{{len(str(low))},{INTEGER_DIGITS - 1}}}"
        return f"{range_pattern(low, widest)}|{longer}"
    parts: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        last = min(high, 10 ** digits - 1)
        if first <= last:
            parts += _same_length_range(str(first), str(last))
    return "|".join(parts)


def _same_length_range(first: str, last: str) -> list[str]:
    """Patterns for the numbers first..last, written with the same number of digits."""
    rest = len(first) - 1
    if rest == 0:
        return [_digit_class(first, last)]
    if first[0] == last[0]:
        return [first[0] + p for p in _same_length_range(first[1:], last[1:])]
    low, high, head, tail = int(first[0]), int(last[0]), [], []
    if first[1:] != "0" * rest:
        head, low = [first[0] + p for p in _same_length_range(first[1:], "9" * rest)], low + 1
    if last[1:] != "9" * rest:
        tail, high = [last[0] + p for p in _same_length_range("0" * rest, last[1:])], high - 1
    middle = [_digit_class(str(low), str(high)) + _any_digits(rest)] if low <= high else []
    return head + middle + tail


def _any_digits(count: int) -> str:
    return "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


def _digit_class(first: str, last: str) -> str:
    return first if first == last else f"[{first}-{last}]"


# A quoted whole number: ASCII digits, no sign, no leading zero, at most this many digits (so
# int() never meets a huge string).
INTEGER_DIGITS = 18
INTEGER_TEXT = re.compile(f"0|[1-9][0-9]{{0,{INTEGER_DIGITS - 1}}}")


def integer_schema(low: int, high: int | None) -> dict[str, object]:
    """A whole number low..high, as YAML writes it or as a quoted string (validation reads both)."""
    number: dict[str, object] = {"type": "integer", "minimum": low}
    if high is not None:
        number["maximum"] = high
    within = f"{low} or more" if high is None else f"from {low} to {high}" if high > low else f"equal to {low}"
    return {"anyOf": [number, pattern_schema(range_pattern(low, high), f"a whole number {within}, digits only")]}


_HEX16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]"
IPV4_PATTERN = f"(?:{_OCTET})(?:\\.(?:{_OCTET})){{3}}"


def _ipv6_pattern() -> str:
    """RFC 3986's IPv6address rule (section 3.2.2), which is what ipaddress.IPv6Address reads."""
    group, ls32 = f"{_HEX16}:", f"(?:{_HEX16}:{_HEX16}|{IPV4_PATTERN})"
    forms = [f"(?:{group}){{6}}{ls32}", f"::(?:{group}){{5}}{ls32}"]
    tails = [f"(?:{group}){{4}}{ls32}", f"(?:{group}){{3}}{ls32}", f"(?:{group}){{2}}{ls32}",
             f"{group}{ls32}", ls32, _HEX16, ""]
    for before, tail in enumerate(tails):
        head = f"(?:(?:{group}){{0,{before}}}{_HEX16})" if before else _HEX16
        forms.append(f"(?:{head})?::{tail}")
    return "|".join(forms)


IPV6_PATTERN = f"(?:{_ipv6_pattern()})"


def hostname_pattern(end: str = "$") -> str:
    """check_hostname as a pattern, followed by *end* (what comes after the host name).

    The label rules are lookaheads so that labels, which hold no '.', can be matched one way
    only: a nested quantifier such as [a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])? takes exponential
    time in backtracking engines (ECMA-262 ones among them) on names that almost match.
    """
    return (f"(?=[a-z0-9.-]{{1,253}}(?:{end}))(?!-)(?![a-z0-9.-]*(?:\\.-|-\\.|-(?:{end})))"
            f"(?:[a-z0-9-]{{1,63}}\\.)*(?![0-9]+(?:{end}))[a-z0-9-]{{1,63}}")


_PATH_SEGMENT = "/(?!\\.\\.?(?:/|$))[A-Za-z0-9._@+=,~-]+"
ABS_PATH_PATTERN = f"(?:{_PATH_SEGMENT})+/*"
PORT_PATTERN = f"(?:{range_pattern(1, 65535)})"
_EMAIL_LOCAL_PATTERN = "(?!\\.)(?![^@]*\\.\\.)[A-Za-z0-9!#%&'*+/=?^_`{|}~.-]{1,64}"


def _module_pattern() -> str:
    words = "|".join(sorted(keyword.kwlist))
    part = f"(?!(?:{words})(?:\\.|$))[A-Za-z_][A-Za-z0-9_]*"
    return f"{part}(?:\\.{part})*"


def _django_check_pattern() -> str:
    """Any check id of the right shape outside the listed namespaces, or a listed id."""
    namespaces = "|".join(sorted(_CHECK_NAMESPACES))
    shape = "[a-z0-9_]+(?:\\.[a-z0-9_]+)*\\.[CEWID][0-9]{3}"
    listed = "|".join(re.escape(i) for i in sorted(DJANGO_CHECK_IDS))
    return f"(?!(?:{namespaces})\\.[CEWID][0-9]{{3}}$){shape}|{listed}"


def address_pattern(named_hosts: bool = True) -> str:
    """split_address as a pattern; without *named_hosts*, only IP addresses and localhost."""
    host = hostname_pattern(":") if named_hosts else "localhost"
    return (f"unix:{ABS_PATH_PATTERN}|\\[{IPV6_PATTERN}\\]:{PORT_PATTERN}"
            f"|(?!unix:)(?:{IPV4_PATTERN}|{host}):{PORT_PATTERN}")


IP_OR_NETWORK_PATTERN = (f"{IPV4_PATTERN}(?:/(?:{range_pattern(0, 32)}))?"
                         f"|{IPV6_PATTERN}(?:/(?:{range_pattern(0, 128)}))?")


def version_at_least_pattern(major: int, minor: int, patch: int) -> str:
    """check_nginx_version's grammar, for versions from major.minor.patch on (leading zeros too)."""
    def at_least(low: int) -> str:
        digits = len(str(low))
        return f"0*(?:{range_pattern(low, 10 ** digits - 1)}|[1-9][0-9]{{{digits},}})"
    rest = "[0-9]+"
    return (f"(?={VERSION_PATTERN}$)(?:{at_least(major + 1)}\\.{rest}(?:\\.{rest})?"
            f"|0*{major}\\.{at_least(minor + 1)}(?:\\.{rest})?"
            f"|0*{major}\\.0*{minor}\\.{at_least(patch)})")


_STATIC_CDN = re.compile(r"^https://(?P<host>" + hostname_pattern("/") + r")(?P<path>/([A-Za-z0-9._~-]+/)+)$")

SCHEMAS: dict[str, dict[str, object]] = {
    "endpoint_path": pattern_schema(_ENDPOINT_PATH.pattern[1:-1], "a URL path starting with '/', like /healthz"),
    "static_url": pattern_schema(f"{_URL_PATH.pattern[1:-1]}|https://{hostname_pattern('/')}/([A-Za-z0-9._~-]+/)+",
                                 "a URL path that starts and ends with '/', like /static/, or an https:// "
                                 "URL ending with '/', like https://cdn.example.com/static/"),
    "slug": pattern_schema(_SLUG.pattern[1:-1], "a slug: a lowercase letter, then up to 31 lowercase letters, digits or '-'"),
    "hostname": pattern_schema(hostname_pattern(), "a lowercase host name (RFC 1123), no wildcard or trailing dot"),
    "abs_path": pattern_schema(ABS_PATH_PATTERN, "an absolute path of letters, digits and . _ - @ + = , ~ only, "
                                                 "without '.' or '..' parts"),
    "url_path": pattern_schema(_URL_PATH.pattern[1:-1], "a URL path that starts and ends with '/', like /static/"),
    "unix_name": pattern_schema(_UNIX_NAME.pattern[1:-1], "a unix user or group name"),
    "module": pattern_schema(_module_pattern(), "a dotted Python module path"),
    "email": pattern_schema(f"{_EMAIL_LOCAL_PATTERN}@{hostname_pattern()}", "an e-mail address"),
    "nginx_size": pattern_schema(NGINX_SIZE.pattern[1:-1], "an nginx size: a number, optionally k, m or g"),
    "nginx_time": pattern_schema(NGINX_TIME.pattern.replace("^", "").replace("$", ""),
                                 "an nginx time, like 10s, 1m or 1h30m"),
    "address": pattern_schema(address_pattern(), "HOST:PORT, [IPv6]:PORT or unix:/ABSOLUTE/PATH"),
    "proxied_address": pattern_schema(address_pattern(named_hosts=False),
                                      "IP:PORT, [IPv6]:PORT, localhost:PORT or unix:/ABSOLUTE/PATH "
                                      "(nginx resolves host names only when it starts)"),
    "ip_or_network": pattern_schema(IP_OR_NETWORK_PATTERN, "an IP address or a CIDR network (ADDRESS/PREFIX)"),
    "db_host": pattern_schema(f"{ABS_PATH_PATTERN}|{IPV4_PATTERN}|{IPV6_PATTERN}|{hostname_pattern()}",
                              "a host name, an IP address or a unix socket directory"),
    "inventory_host": pattern_schema(f"{IPV4_PATTERN}|{IPV6_PATTERN}|{hostname_pattern()}",
                                     "a host name or an IP address"),
    "calendar": pattern_schema(CALENDAR.pattern[1:-1], "a systemd OnCalendar expression, like daily"),
    "rate": pattern_schema(RATE.pattern[1:-1], "a rate like 10r/s or 10r/m"),
    "line": pattern_schema("[^\\x00-\\x1f\\x7f]*", "a single line without control characters"),
    "django_check_id": pattern_schema(_django_check_pattern(), "a Django check id like security.W021 "
                                                               "(one that exists, in Django's own namespaces)"),
    "nginx_variable_expr": pattern_schema(_NGINX_VARIABLE_EXPR.pattern[1:-1], "nginx variables such as "
                                          "$request_uri and letters, digits, '_', '.', '/', ':' or '-'"),
    "identifier": pattern_schema(IDENTIFIER_LIKE.pattern[1:-1], "letters, digits, '_' or '-' (1-64)"),
    "redis_url": pattern_schema(REDIS_URL.pattern.replace("^", "").replace("$", ""),
                                "redis://HOST:PORT/DB, rediss://... or unix:/PATH"),
}
