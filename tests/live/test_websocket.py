"""WebSockets through nginx to the ASGI app: the upgrade nginx passes is one the app server can take."""

from __future__ import annotations

import pytest

from live import client
from live.layout import DOMAIN
from live.stack import Stack

pytestmark = pytest.mark.live

ECHO = "/ws/echo/"  # tests/djproject/testsite/asgi.py


def test_websocket_upgrade_reaches_the_asgi_app_and_echoes(stack: Stack) -> None:
    if stack.site.kind != "uvicorn":
        pytest.skip("the gunicorn stack serves WSGI, which has no WebSockets")
    head, echoed = client.websocket_echo(stack.site.ports.https, DOMAIN, ECHO, "hello through nginx",
                                         context=client.tls_context(stack.site.cert))
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert echoed == "hello through nginx"
