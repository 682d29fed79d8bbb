"""What Django believes about a request that came through nginx, and what a client cannot make it believe."""

from __future__ import annotations

import pytest

from live.client import CLIENT, FORGED
from live.layout import DOMAIN
from live.stack import Stack

pytestmark = pytest.mark.live



def whoami(stack: Stack, headers: dict[str, str] | None = None) -> dict:
    reply = stack.fetch("/whoami/", source=CLIENT, headers=headers)
    assert reply.status == 200, reply.body[:300]
    return reply.json()


def expected_view() -> tuple:
    """(secure, scheme, host, X-Forwarded-For, REMOTE_ADDR) as Django must see any request from CLIENT.

    nginx replaces X-Forwarded-For with its peer's address, so the header holds exactly the client;
    REMOTE_ADDR is the client's too (uvicorn trusts nginx's headers; for gunicorn, whose REMOTE_ADDR is
    the socket peer, the rendered settings take it from nginx's X-Real-IP).
    """
    return True, "https", DOMAIN, CLIENT, CLIENT


def view(seen: dict) -> tuple:
    return seen["secure"], seen["scheme"], seen["host"], seen["x_forwarded_for"], seen["remote_addr"]


def test_django_sees_https_its_host_and_the_client_address(stack: Stack) -> None:
    assert view(whoami(stack)) == expected_view()


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Proto": "http"},
    {"X-Forwarded-For": FORGED},
    {"X-Real-IP": FORGED},
    {"X-Forwarded-Host": "evil.test"},
    {"X-Forwarded-Ssl": "off", "X-Forwarded-Protocol": "http"},
    {"Forwarded": f"for={FORGED};proto=http;host=evil.test"},
], ids=["proto", "for", "real-ip", "host", "ssl-protocol", "forwarded"])
def test_forwarding_headers_sent_by_the_client_change_nothing(stack: Stack, headers: dict[str, str]) -> None:
    assert view(whoami(stack, headers)) == expected_view()
