"""Names and schemes: the site answers on its name over HTTPS, redirects the rest, drops strangers."""

from __future__ import annotations

import http.client
import ssl

import pytest

from live import client
from live.layout import ALIAS, DOMAIN
from live.stack import Stack, assert_app_never_saw, probe_marker

pytestmark = pytest.mark.live


def https_origin(stack: Stack, name: str = DOMAIN) -> str:
    """The origin a redirect must point to: the name, and the HTTPS port unless it is 443."""
    port = stack.site.ports.https
    return f"https://{name}" if port == 443 else f"https://{name}:{port}"


def test_site_answers_200_over_https_on_its_name(stack: Stack) -> None:
    reply = stack.fetch("/page/")
    assert reply.status == 200
    assert b"<title>page</title>" in reply.body
    assert (reply.header("Strict-Transport-Security") or "").startswith("max-age=63072000")


def test_http_redirects_to_https_keeping_path_and_query(stack: Stack) -> None:
    reply = stack.fetch("/page/?q=1", scheme="http")
    assert reply.status == 301
    assert reply.header("Location") == f"{https_origin(stack)}/page/?q=1"


def test_alias_redirects_to_the_primary_name_over_https(stack: Stack) -> None:
    reply = stack.fetch("/page/?q=1", name=ALIAS)
    assert reply.status == 301
    assert reply.header("Location") == f"{https_origin(stack)}/page/?q=1"


def test_alias_over_http_ends_on_the_primary_name(stack: Stack) -> None:
    reply = stack.fetch("/page/?q=1", name=ALIAS, scheme="http")
    assert reply.status == 301
    # One hop straight to the primary name, or via the alias over HTTPS (which redirects again).
    assert reply.header("Location") in (f"{https_origin(stack)}/page/?q=1", f"{https_origin(stack, ALIAS)}/page/?q=1")


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
], ids=["foreign-host", "bare-ip", "no-host"])
def test_unknown_host_on_http_gets_the_connection_closed_without_a_response(stack: Stack,
                                                                           request_bytes: bytes) -> None:
    assert client.exchange_raw(stack.site.ports.http, request_bytes) == b""
    # The same request naming the site gets an answer: the empty reply above is the default server's.
    named = b"GET / HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\nConnection: close\r\n\r\n"
    assert client.exchange_raw(stack.site.ports.http, named).startswith(b"HTTP/1.1 301 ")


@pytest.mark.parametrize("sni", ["evil.test", None], ids=["foreign-name", "no-sni"])
def test_unknown_name_on_https_gets_its_handshake_rejected(stack: Stack, sni: str | None) -> None:
    with pytest.raises(ssl.SSLError):
        client.handshake(stack.site.ports.https, sni)
    # The client checks nothing, so the failure above is the server's refusal; the site's name succeeds.
    assert client.handshake(stack.site.ports.https, DOMAIN).startswith("TLSv1.")


def test_known_name_with_a_foreign_host_header_never_reaches_django(stack: Stack) -> None:
    marker = probe_marker()
    try:
        outcome: int | str = stack.fetch(f"/whoami/?{marker}", headers={"Host": "evil.test"}).status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        outcome = "closed"  # return 444
    assert outcome in (400, 421, "closed")
    assert_app_never_saw(stack, marker)
