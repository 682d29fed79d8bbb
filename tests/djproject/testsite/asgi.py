"""ASGI entry point: Django, plus a WebSocket echo at /ws/echo/ (plain ASGI, no Channels)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")
django_application = get_asgi_application()
ECHO_PATH = "/ws/echo/"


async def echo(receive, send):
    """Accept the WebSocket and send every text or binary message back until the client leaves."""
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})
        else:
            return


async def application(scope, receive, send):
    """The echo for WebSockets on ECHO_PATH, Django for everything else (Django refuses WebSockets)."""
    if scope["type"] == "websocket" and scope["path"] == ECHO_PATH:
        await echo(receive, send)
    else:
        await django_application(scope, receive, send)
