"""nginx's own decisions, live: retries and failure accounting, its 502/503/504 page, a load balancer
in front of it, uploads, and a plain-HTTP site's ports."""

from __future__ import annotations

import http.client
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import require_tool

from live import client
from live.edge import DOMAIN, Edge, start_edge
from live.stack import wait_for

pytestmark = pytest.mark.live

APP_HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.4"]  # the third is the backup; 127.0.0.3 is the client
LB = "127.0.0.5"


@pytest.fixture
def nginx_bin() -> str:
    return require_tool("nginx", "for the live edge tests")


@pytest.fixture
def edge(nginx_bin: str) -> Iterator[Edge]:
    running = start_edge(nginx_bin, APP_HOSTS)
    try:
        yield running
    finally:
        running.stop()


def get(edge: Edge, path: str, *, method: str = "GET", body: bytes | None = None,
        source: str = client.CLIENT, headers: dict[str, str] | None = None) -> client.Response:
    conn = client.open_connection("http", DOMAIN, edge.http_port, source=source, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return client.Response(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


def counts(edge: Edge, path: str) -> list[int]:
    return [b.count(path) for b in edge.backends]


def assert_unavailable_page(reply: client.Response, status: int) -> None:
    """nginx's own error: its status kept, a small page, Retry-After, and every security header."""
    assert reply.status == status, reply.body[:200]
    assert reply.header("Retry-After") == "30"
    assert (reply.header("Content-Type") or "").startswith("text/html")
    assert b"Temporarily unavailable" in reply.body and b"nginx" not in reply.body
    assert reply.header("X-Frame-Options") == "DENY" and reply.header("X-Content-Type-Options") == "nosniff"


def assert_both_app_hosts_serve(edge: Edge) -> None:
    """Neither app host was taken out of rotation, and the backup was not needed."""
    served = [get(edge, "/").json()["backend"] for _ in range(12)]
    assert {"b0", "b1"} <= set(served), served
    assert "b2" not in served, served


def test_a_get_whose_worker_dies_reaches_two_hosts_at_most_and_takes_none_out(edge: Edge) -> None:
    """nginx cannot tell this from a refused connection: one more app host gets it, never the backup."""
    assert_unavailable_page(get(edge, "/die/"), 502)
    assert sorted(counts(edge, "/die/")) == [0, 1, 1], counts(edge, "/die/")
    assert edge.backends[2].count("/die/") == 0
    assert_both_app_hosts_serve(edge)


def test_with_one_try_a_get_whose_worker_dies_reaches_one_host(nginx_bin: str) -> None:
    edge = start_edge(nginx_bin, APP_HOSTS, {"upstream": {"next_upstream_tries": 1}})
    try:
        assert_unavailable_page(get(edge, "/die/"), 502)
        assert sum(counts(edge, "/die/")) == 1, counts(edge, "/die/")
        assert_both_app_hosts_serve(edge)
    finally:
        edge.stop()


def test_a_post_whose_worker_dies_is_not_sent_again(edge: Edge) -> None:
    assert_unavailable_page(get(edge, "/die/", method="POST", body=b"a=1"), 502)
    assert sum(counts(edge, "/die/")) == 1, counts(edge, "/die/")
    assert_both_app_hosts_serve(edge)


def test_a_slow_get_reaches_one_host_and_gets_504(edge: Edge) -> None:
    assert_unavailable_page(get(edge, "/slow/"), 504)
    assert sum(counts(edge, "/slow/")) == 1, counts(edge, "/slow/")
    assert_both_app_hosts_serve(edge)


def test_requests_move_on_when_a_host_refuses_connections(edge: Edge) -> None:
    edge.backends[0].stop()
    replies = [get(edge, "/") for _ in range(8)] + [get(edge, "/form/", method="POST", body=b"a=1")
                                                    for _ in range(4)]
    assert [r.status for r in replies] == [200] * 12
    assert {r.json()["backend"] for r in replies} == {"b1"}
    assert [s.body for s in edge.backends[1].seen if s.path == "/form/"] == [b"a=1"] * 4


def test_one_app_server_gets_a_get_again_whose_fresh_connection_a_stopping_worker_reset(nginx_bin: str) -> None:
    """The group's only server is also its backup: a GET whose connection was reset unread (a reload
    stopping the worker that accepted it) is answered by a second connection; a POST is not resent."""
    edge = start_edge(nginx_bin, ["127.0.0.1"])
    try:
        (backend,) = edge.backends
        backend.reset_next = 1
        reply = get(edge, "/after-reset/")
        assert reply.status == 200, reply.body[:200]
        assert (backend.resets, backend.count("/after-reset/")) == (1, 1)
        backend.reset_next = 1
        assert_unavailable_page(get(edge, "/form/", method="POST", body=b"a=1"), 502)
        assert (backend.resets, backend.count("/form/")) == (2, 0)
        assert [get(edge, "/").status for _ in range(4)] == [200] * 4
    finally:
        edge.stop()


def test_with_one_try_one_app_server_is_not_listed_again(nginx_bin: str) -> None:
    edge = start_edge(nginx_bin, ["127.0.0.1"], {"upstream": {"next_upstream_tries": 1}})
    try:
        (backend,) = edge.backends
        backend.reset_next = 1
        assert_unavailable_page(get(edge, "/after-reset/"), 502)
        assert (backend.resets, backend.count("/after-reset/")) == (1, 0)
    finally:
        edge.stop()


def test_the_apps_own_503_passes_unchanged(edge: Edge) -> None:
    reply = get(edge, "/maintenance/")
    assert reply.status == 503 and reply.json()["backend"] in ("b0", "b1")
    assert reply.header("Retry-After") is None
    assert sum(counts(edge, "/maintenance/")) == 1


def test_the_access_log_shows_timing_and_the_upstream(edge: Edge) -> None:
    mark = f"/?timing={uuid.uuid4().hex}"
    get(edge, mark)
    # The access log is buffered (flushed within 5 s): wait for this request's line.
    line = wait_for(lambda: next((ln for ln in edge.access_log.read_text().splitlines() if mark in ln), None)
                    if edge.access_log.exists() else None, 15, "the request in nginx's access log")
    assert f'"GET {mark} HTTP/1.1" 200' in line
    assert "request_time=" in line and 'upstream_status="200"' in line
    assert 'upstream_addr="127.0.0.' in line and 'upstream_response_time="0.' in line


# --- a load balancer that terminates TLS in front of nginx ---------------------------------------

def raw_request(edge: Edge, source: str, preface: bytes, headers: str = "") -> bytes:
    """Send *preface* (a PROXY protocol line, or nothing) and a GET from *source*; the raw reply."""
    request = f"GET /whoami/ HTTP/1.1\r\nHost: {DOMAIN}\r\n{headers}Connection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", edge.http_port), 10, (source, 0)) as sock:
        sock.sendall(preface + request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def app_saw(reply: bytes) -> dict[str, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)["headers"]


@pytest.mark.parametrize("proxy_protocol", [False, True], ids=["x-forwarded-for", "proxy-protocol"])
def test_behind_a_load_balancer_the_app_sees_https_and_the_client(nginx_bin: str, proxy_protocol: bool) -> None:
    edge = start_edge(nginx_bin, APP_HOSTS, {"nginx": {"load_balancer": {"addresses": [LB],
                                                                          "proxy_protocol": proxy_protocol}}})
    try:
        if proxy_protocol:
            preface, headers = f"PROXY TCP4 198.51.100.7 127.0.0.1 40000 {edge.http_port}\r\n".encode(), ""
        else:
            preface, headers = b"", "X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\nX-Forwarded-Proto: http\r\n"
        seen = app_saw(raw_request(edge, LB, preface, headers))
        assert seen["X-Forwarded-Proto"] == "https"
        assert seen["X-Real-IP"] == "198.51.100.7" and seen["X-Forwarded-For"] == "198.51.100.7"
        # Anyone else: redirected to the HTTPS address, whatever it claims, and the app never asked.
        before = sum(len(b.seen) for b in edge.backends)
        forged = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\n" if proxy_protocol else b""
        reply = raw_request(edge, client.CLIENT, forged, "X-Forwarded-For: 198.51.100.7\r\n"
                                                         "X-Forwarded-Proto: https\r\n")
        assert reply.startswith(b"HTTP/1.1 301"), reply[:200]
        assert f"Location: https://{DOMAIN}/whoami/".encode() in reply
        assert sum(len(b.seen) for b in edge.backends) == before
    finally:
        edge.stop()


# --- uploads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("disposition", ["inline", "attachment"])
def test_uploads_are_sandboxed_and_keep_every_security_header(nginx_bin: str, disposition: str) -> None:
    edge = start_edge(nginx_bin, APP_HOSTS, {"media": {"content_disposition": disposition}})
    try:
        media = edge.base / "media"
        (media / "page.html").write_text("<script>alert(document.cookie)</script>")
        (media / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        for name in ("page.html", "photo.png"):
            (media / name).chmod(0o644)
        page, photo = get(edge, "/media/page.html"), get(edge, "/media/photo.png")
        assert page.header("Content-Type") == "application/octet-stream"
        assert photo.header("Content-Type") == "image/png"
        for reply in (page, photo):
            assert reply.status == 200
            policy = reply.header("Content-Security-Policy") or ""
            assert "sandbox" in policy.split("; ") and "default-src 'none'" in policy
            assert reply.header("X-Content-Type-Options") == "nosniff"
            assert reply.header("X-Frame-Options") == "DENY"
            assert reply.header("Referrer-Policy") == "same-origin"
            assert reply.header("Content-Disposition") == ("attachment" if disposition == "attachment" else None)
    finally:
        edge.stop()


# --- a plain-HTTP site ----------------------------------------------------------------------------

def listening_ports(pid: int) -> set[int]:
    """The TCP ports the processes of nginx (master *pid* and its workers) listen on, from /proc."""
    pids = {pid} | {int(p) for p in (Path(f"/proc/{pid}/task/{pid}/children").read_text().split())}
    inodes = set()
    for each in pids:
        for fd in Path(f"/proc/{each}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_a_plain_http_site_opens_only_its_http_port(edge: Edge) -> None:
    assert edge.process is not None
    assert listening_ports(edge.process.pid) == {edge.http_port}
