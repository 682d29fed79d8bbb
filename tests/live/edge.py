"""nginx alone from the rendered site, in front of small recording backends: what nginx itself decides.

Retries, failure accounting, its own error pages, the headers it passes to the app and the files it
serves do not depend on which app server stands behind it. Each backend here records every request
it receives, as it arrives, before answering; a test reads those records (the backends' own logs)
after the response, so nothing depends on timing.
"""

from __future__ import annotations

import http.server
import json
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import nginx_harness as harness
from scaffold.spec import Spec, validate_data

from live.host import free_ports
from live.stack import die_with_parent, is_listening, listen_on_loopback, wait_for

DOMAIN = "edge.example.test"
SLOW_SECONDS = 8  # longer than proxy_read_timeout (app_server.timeout 1 + 5 s)


@dataclass
class Seen:
    """One request as a backend received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Backend:
    """An HTTP/1.0 server on one loopback address that records each request, then acts on its path.

    /die/ closes the connection without a response, as the kernel does when a worker is killed
    mid-request; /slow/ answers after SLOW_SECONDS; /maintenance/ answers 503; anything else answers
    200. Every answer is JSON: the backend's name and the headers it received.
    """

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.reset_next = 0  # connections to reset unread, as a stopping worker does
        self.resets = 0
        self.server = http.server.ThreadingHTTPServer((address, port), self._handler())
        self.server.verify_request = self._verify
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with backend.lock:
                    backend.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                if self.path.startswith("/die/"):
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if self.path.startswith("/slow/"):
                    time.sleep(SLOW_SECONDS)
                status = 503 if self.path.startswith("/maintenance/") else 200
                payload = json.dumps({"backend": backend.name, "headers": dict(self.headers.items())}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # nginx gave up on a slow answer

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one

        return Handler

    def _verify(self, request: socket.socket, client_address: object) -> bool:
        """Serve the connection, or (while reset_next > 0) reset it once the request is waiting in
        it, unread: what a worker that accepted the connection and then stopped (a reload) does."""
        with self.lock:
            if self.reset_next == 0:
                return True
            self.reset_next -= 1
            self.resets += 1
        select.select([request], [], [], 5)
        request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.close()
        return False

    def count(self, path: str) -> int:
        """How many requests for *path* this backend received."""
        with self.lock:
            return sum(1 for s in self.seen if s.path == path)

    def stop(self) -> None:
        """Stop listening: connections to it are refused from now on."""
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Edge:
    """nginx running the rendered site (default server included) from a temporary prefix."""

    spec: Spec
    base: Path
    http_port: int
    backends: list[Backend] = field(default_factory=list)
    process: Optional[subprocess.Popen] = None

    @property
    def access_log(self) -> Path:
        return self.base / "logs" / f"{self.spec.name}.access.log"

    def start(self, nginx_bin: str) -> None:
        files = harness.render_nginx(self.spec, self.base / "rendered")
        for path in files:
            path.write_text(listen_on_loopback(path.read_text()))
        conf = harness.write_wrapper(self.base, files)
        check = harness.run_nginx_test(nginx_bin, conf)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.process = subprocess.Popen(
            [nginx_bin, "-c", str(conf), "-p", str(self.base), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent)
        wait_for(lambda: is_listening(self.http_port), 15, "nginx listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for backend in self.backends:
            try:
                backend.stop()
            except OSError:
                pass


def edge_spec(base: Path, port: int, http_port: int, addresses: list[str], extra: dict) -> Spec:
    """A plain-HTTP spec whose upstream servers are *addresses* on *port*, logs and media under *base*."""
    data = {
        "version": 1, "name": "edge", "domain": DOMAIN,
        "django": {"project": "edge"},
        "app_server": {"timeout": 1, "graceful_timeout": 10},
        "upstream": {"servers": [{"address": f"{a}:{port}", **({"backup": True} if i == 2 else {})}
                                 for i, a in enumerate(addresses)]},
        "tls": {"mode": "off"},
        "media": {"root": str(base / "media")},
        "static": {"root": str(base / "static")},
        "nginx": {"http_port": http_port, "ipv6": False},
        "paths": {"nginx_log_dir": str(base / "logs")},
    }
    for section, values in extra.items():
        data[section] = {**data.get(section, {}), **values}
    return validate_data(data)


def start_edge(nginx_bin: str, addresses: list[str], extra: Optional[dict] = None) -> Edge:
    """nginx from a rendered plain-HTTP site, in front of one recording backend per address."""
    base = Path(tempfile.mkdtemp(prefix="djdeploy-edge-"))
    base.chmod(0o755)  # nginx's workers (nobody) read the media files under it
    for sub in ("media", "static", "logs"):
        (base / sub).mkdir(mode=0o755)
    port, http_port = free_ports(2)
    edge = Edge(edge_spec(base, port, http_port, addresses, extra or {}), base, http_port)
    try:
        edge.backends = [Backend(f"b{i}", address, port) for i, address in enumerate(addresses)]
        edge.start(nginx_bin)
    except BaseException:
        edge.stop()
        raise
    return edge
