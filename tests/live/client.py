"""HTTP and HTTPS clients that connect to a loopback address while naming a site by SNI and Host."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

LOOPBACK = "127.0.0.1"
# A loopback address that is neither nginx's (127.0.0.1) nor a trusted proxy's: a client's own.
CLIENT = "127.0.0.3"
FORGED = "203.0.113.9"  # TEST-NET-3 (RFC 5737): what a lying client claims to be


@dataclass(frozen=True)
class Response:
    """What came back: status, headers and the body as bytes (never decoded by the client)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """The value of one header, or None."""
        return self.headers.get(name)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def tls_context(cafile: Optional[Path]) -> ssl.SSLContext:
    """A client context trusting only *cafile*, or one that checks nothing when *cafile* is None."""
    if cafile is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(cafile))


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address; the connection's host is used only for SNI, the certificate check and Host."""

    def __init__(self, name: str, port: int, *, address: str = LOOPBACK, **kwargs: Any) -> None:
        super().__init__(name, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to a fixed address, naming the site only in the Host header."""

    def __init__(self, name: str, port: int, *, address: str = LOOPBACK, **kwargs: Any) -> None:
        super().__init__(name, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout, self.source_address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def open_connection(scheme: str, name: str, port: int, *, context: Optional[ssl.SSLContext] = None,
                    source: Optional[str] = None, timeout: float = 10.0) -> http.client.HTTPConnection:
    """A keep-alive connection to *name* on loopback *port*; *source* picks the client's loopback address."""
    source_address = (source, 0) if source else None
    if scheme == "https":
        return PinnedHTTPSConnection(name, port, context=context, timeout=timeout, source_address=source_address)
    return PinnedHTTPConnection(name, port, timeout=timeout, source_address=source_address)


def send(conn: http.client.HTTPConnection, path: str, headers: Optional[dict[str, str]] = None,
         method: str = "GET") -> Response:
    """One request on an open connection; the Host header comes from the connection unless given."""
    conn.request(method, path, headers=headers or {})
    reply = conn.getresponse()
    return Response(reply.status, reply.headers, reply.read())


def fetch(scheme: str, name: str, port: int, path: str = "/", *, headers: Optional[dict[str, str]] = None,
          context: Optional[ssl.SSLContext] = None, source: Optional[str] = None, method: str = "GET",
          timeout: float = 10.0) -> Response:
    """One request on a fresh connection, closed afterwards."""
    conn = open_connection(scheme, name, port, context=context, source=source, timeout=timeout)
    try:
        return send(conn, path, headers, method)
    finally:
        conn.close()


def exchange_raw(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send *data* on a plain TCP connection and return every byte received until the server closes."""
    received = b""
    with socket.create_connection((LOOPBACK, port), timeout) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def handshake(port: int, sni: Optional[str], *, timeout: float = 5.0) -> str:
    """Complete a TLS handshake with *sni* (None sends none); return the negotiated version or raise SSLError."""
    with socket.create_connection((LOOPBACK, port), timeout) as sock:
        with tls_context(None).wrap_socket(sock, server_hostname=sni) as tls:
            return tls.version() or ""


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer *key* with (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()


def websocket_frame(text: str) -> bytes:
    """One masked, final text frame, as a client must send it (RFC 6455 section 5.2); under 126 bytes."""
    payload, mask = text.encode(), os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_websocket_frame(stream: Any) -> tuple[int, bytes]:
    """(opcode, payload) of one unmasked frame from the server; payloads under 126 bytes."""
    head = stream.read(2)
    assert len(head) == 2 and head[1] < 126, head
    return head[0] & 0x0F, stream.read(head[1])


def websocket_echo(port: int, name: str, path: str, message: str, *, context: ssl.SSLContext,
                   timeout: float = 10.0) -> tuple[bytes, str]:
    """Open a WebSocket over TLS, send *message*; return the handshake's head and the text echoed."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    with socket.create_connection((LOOPBACK, port), timeout) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(request)
            stream = tls.makefile("rb")
            head = b""
            while not head.endswith(b"\r\n\r\n") and (line := stream.readline()):
                head += line
            if not head.startswith(b"HTTP/1.1 101 "):
                return head + stream.read(4096), ""
            accept = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                      if line.lower().startswith(b"sec-websocket-accept:")]
            assert accept == [websocket_accept(key).encode()], head
            tls.sendall(websocket_frame(message))
            opcode, payload = read_websocket_frame(stream)
            return head, payload.decode() if opcode == 0x1 else f"opcode {opcode}"
