"""HTTP and HTTPS clients that connect to a loopback address while naming a site by SNI and Host."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

LOOPBACK = "127.0.0.1"
# A loopback address that is neither nginx's (127.0.0.1) nor a trusted proxy's: a client's own.
CLIENT = "127.0.0.3"
FORGED = "203.0.113.9"  # TEST-NET-3 (RFC 5737): what a lying client claims to be
_server = LOOPBACK  # where every connection goes: loopback, or a test machine's address (`server`)


@contextmanager
def server(address: str) -> Iterator[None]:
    """Send every connection made in the block to *address* instead of loopback (a test machine)."""
    global _server
    previous, _server = _server, address
    try:
        yield
    finally:
        _server = previous


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

    def __init__(self, name: str, port: int, *, address: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(name, port, **kwargs)
        self._address = address or _server

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to a fixed address, naming the site only in the Host header."""

    def __init__(self, name: str, port: int, *, address: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(name, port, **kwargs)
        self._address = address or _server

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
    with socket.create_connection((_server, port), timeout) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def handshake(port: int, sni: Optional[str], *, timeout: float = 5.0) -> str:
    """Complete a TLS handshake with *sni* (None sends none); return the negotiated version or raise SSLError."""
    with socket.create_connection((_server, port), timeout) as sock:
        with tls_context(None).wrap_socket(sock, server_hostname=sni) as tls:
            return tls.version() or ""


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA  # opcodes, RFC 6455 section 5.2


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer *key* with (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()


def websocket_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final frame, as a client must send it (RFC 6455 section 5.2); payload under 126 bytes."""
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WebSocket:
    """A WebSocket client over TLS to loopback: handshake, text messages, pings answered.

    Reads go through its own buffer, so a socket timeout (TimeoutError) loses no byte.
    """

    def __init__(self, port: int, name: str, path: str, *, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        self.key = base64.b64encode(os.urandom(16)).decode()
        raw = socket.create_connection((_server, port), timeout)
        self.tls = context.wrap_socket(raw, server_hostname=name)
        self.buffer = b""
        self.tls.sendall((f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer and self._fill():
            pass
        self.head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")

    def _fill(self) -> bool:
        chunk = self.tls.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    @property
    def upgraded(self) -> bool:
        """Whether the server switched protocols with the right Sec-WebSocket-Accept."""
        accept = [line.split(b":", 1)[1].strip() for line in self.head.split(b"\r\n")
                  if line.lower().startswith(b"sec-websocket-accept:")]
        return self.head.startswith(b"HTTP/1.1 101 ") and accept == [websocket_accept(self.key).encode()]

    def send_text(self, text: str) -> None:
        self.tls.sendall(websocket_frame(TEXT, text.encode()))

    def receive(self) -> tuple[int, bytes]:
        """The next data or close frame (opcode, payload), answering pings on the way; (CLOSE, b"") at EOF."""
        while True:
            while len(self.buffer) < 2 or len(self.buffer) < 2 + (self.buffer[1] & 0x7F):
                if not self._fill():
                    return CLOSE, b""
            assert self.buffer[1] < 126, self.buffer[:2]  # unmasked, short: all this client expects
            size = 2 + self.buffer[1]
            opcode, payload, self.buffer = self.buffer[0] & 0x0F, self.buffer[2:size], self.buffer[size:]
            if opcode == PING:
                self.tls.sendall(websocket_frame(PONG, payload))
            elif opcode != PONG:
                return opcode, payload

    def close(self) -> None:
        self.tls.close()
