"""WebSockets through nginx to the ASGI app: the upgrade nginx passes is one the app server can take."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from live import client
from live.layout import DOMAIN
from live.stack import Host, Stack, launch

pytestmark = pytest.mark.live

ECHO = "/ws/echo/"  # tests/djproject/testsite/asgi.py
WSGI_KINDS = ("gunicorn", "uwsgi")  # the live specs' gunicorn is WSGI
SHORT_TIMEOUT = 2  # app_server.timeout of the quiet-socket stack: nginx's proxy_read_timeout is 7 s


def open_echo(stack: Stack) -> client.WebSocket:
    return client.WebSocket(stack.site.ports.https, DOMAIN, ECHO, context=client.tls_context(stack.site.cert))


def test_websocket_upgrade_reaches_the_asgi_app_and_echoes(stack: Stack) -> None:
    if stack.site.kind in WSGI_KINDS:
        pytest.skip(f"the {stack.site.kind} stack serves WSGI, which has no WebSockets")
    ws = open_echo(stack)
    try:
        assert ws.upgraded, ws.head
        ws.send_text("hello through nginx")
        assert ws.receive() == (client.TEXT, b"hello through nginx")
    finally:
        ws.close()


@pytest.fixture
def short_timeout_stack(live_host: Host) -> Iterator[Stack]:
    """uvicorn with app_server.timeout 2: nginx drops a proxied connection quiet for 7 s."""
    running = launch(live_host, "uvicorn", pair=False, app_server={"timeout": SHORT_TIMEOUT})
    try:
        yield running
    finally:
        running.stop()


def test_a_quiet_websocket_outlives_nginx_read_timeout(short_timeout_stack: Stack) -> None:
    """uvicorn's pings (ws_ping_interval, half of proxy_read_timeout) keep a quiet connection open."""
    ws = open_echo(short_timeout_stack)
    try:
        assert ws.upgraded, ws.head
        ws.tls.settimeout(0.5)
        quiet_until = time.monotonic() + 2 * (SHORT_TIMEOUT + 5)
        while time.monotonic() < quiet_until:  # answer pings, send nothing
            try:
                opcode, _ = ws.receive()
            except TimeoutError:
                continue
            assert opcode != client.CLOSE, "the quiet WebSocket was closed"
        ws.tls.settimeout(10)
        ws.send_text("still here")
        assert ws.receive() == (client.TEXT, b"still here")
    finally:
        ws.close()
