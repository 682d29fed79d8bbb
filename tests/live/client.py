"""HTTP and HTTPS clients that connect to a loopback address while naming a site by SNI and Host."""

from __future__ import annotations

import http.client
import json
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
