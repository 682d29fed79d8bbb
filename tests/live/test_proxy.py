"""What Django believes about a request that came through nginx, and what a client cannot make it believe."""

from __future__ import annotations

import pytest

from live.layout import DOMAIN
from live.stack import Stack

pytestmark = pytest.mark.live

# A loopback address that is neither nginx's (127.0.0.1) nor a trusted proxy: the client's own.
CLIENT = "127.0.0.3"
FORGED = "203.0.113.9"  # TEST-NET-3, RFC 5737


def whoami(stack: Stack, headers: dict[str, str] | None = None) -> dict:
    reply = stack.fetch("/whoami/", source=CLIENT, headers=headers)
    assert reply.status == 200, reply.body[:300]
    return reply.json()


def expected_view(stack: Stack) -> tuple:
    """(secure, scheme, host, X-Forwarded-For, REMOTE_ADDR) as Django must see a request from CLIENT.

    nginx overwrites X-Forwarded-For with its peer's address, so the header holds exactly the client.
    uvicorn, trusting nginx, puts that address in REMOTE_ADDR; gunicorn leaves REMOTE_ADDR as the
    socket peer, and a unix socket peer has no address: '' (gunicorn docs, deploy.md).
    """
    remote_addr = CLIENT if stack.site.kind == "uvicorn" else ""
    return True, "https", DOMAIN, CLIENT, remote_addr


def view(seen: dict) -> tuple:
    return seen["secure"], seen["scheme"], seen["host"], seen["x_forwarded_for"], seen["remote_addr"]


def test_django_sees_https_its_host_and_the_client_address(stack: Stack) -> None:
    assert view(whoami(stack)) == expected_view(stack)


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Proto": "http"},
    {"X-Forwarded-For": FORGED},
    {"X-Forwarded-Host": "evil.test"},
    {"X-Forwarded-Ssl": "off", "X-Forwarded-Protocol": "http"},
    {"Forwarded": f"for={FORGED};proto=http;host=evil.test"},
], ids=["proto", "for", "host", "ssl-protocol", "forwarded"])
def test_forwarding_headers_sent_by_the_client_change_nothing(stack: Stack, headers: dict[str, str]) -> None:
    assert view(whoami(stack, headers)) == expected_view(stack)
