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
NGINX_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
NGINX_TIME = re.compile(r"^([0-9]+(ms|s|m|h|d|w|M|y))+$|^[0-9]+$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#%&'*+/=?^_`{|}~.-]{1,64}$")
_NGINX_VARIABLE_EXPR = re.compile(r"^(\$[a-z_][a-z0-9_]*|[A-Za-z0-9_./:-])+$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")
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
    """``"1.22"`` → ``(1, 22, 0)``, to compare with the version a directive needs."""
    major, minor, patch = (check_nginx_version(value).split(".") + ["0"])[:3]
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
    """An IPv4/IPv6 address or network in CIDR form."""
    try:
        return str(ipaddress.ip_network(value, strict=False)) if "/" in value else str(
            ipaddress.ip_address(value)
        )
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from None


def check_inventory_host(value: str) -> str:
    """How Ansible reaches a host: a host name (``localhost`` included) or an IP address."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if value == "localhost":
        return value
    try:
        return check_hostname(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither a host name nor an IP address") from None


def check_port(text: str) -> int:
    """A TCP port written as text."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
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
        return str(ipaddress.ip_address(value))
    except ValueError:
        return check_hostname(value)


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
    if not _CHECK_ID.match(value):
        raise ValueError(f"{value!r} is not a Django check id like 'security.W021' or 'models.W042'")
    if value.rpartition(".")[0] in _CHECK_NAMESPACES and value not in DJANGO_CHECK_IDS:
        close = sorted(i for i in DJANGO_CHECK_IDS if i[-3:] == value[-3:] and i[:-4] == value[:-4])
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{value!r} is not a Django check id{hint}")
    return value
