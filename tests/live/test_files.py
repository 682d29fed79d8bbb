"""Files nginx serves itself: static files (cached, compressed) and uploads (inert bytes), nothing beside them."""

from __future__ import annotations

import gzip
import http.client
import json
import re

import pytest

from live.layout import BULK_CSS, MEDIA_FILES, SECRET_OUTSIDE, SECRET_OUTSIDE_TEXT, STATIC_ONLY, bulk_css
from live.stack import Stack, assert_app_never_saw, probe_marker

pytestmark = pytest.mark.live

LONG_LIVED = 30 * 86400  # seconds: a month or more of browser caching for content-hashed static files


def max_age(cache_control: str | None) -> int:
    found = re.search(r"max-age=(\d+)", cache_control or "")
    return int(found[1]) if found else 0


def test_static_files_come_from_nginx_not_django(stack: Stack) -> None:
    marker = probe_marker()
    reply = stack.fetch(f"/static/{STATIC_ONLY}?{marker}")
    assert reply.status == 200
    assert reply.body == (stack.site.static / STATIC_ONLY).read_bytes()
    assert_app_never_saw(stack, marker)


def hashed_name(stack: Stack, name: str) -> str:
    """The content-hashed copy collectstatic made of *name* (ManifestStaticFilesStorage's manifest)."""
    return json.loads((stack.site.static / "staticfiles.json").read_text())["paths"][name]


def test_hashed_static_files_are_cached_long(stack: Stack) -> None:
    reply = stack.fetch(f"/static/{hashed_name(stack, 'css/site.css')}")
    assert reply.status == 200
    assert reply.body == (stack.site.app / "assets" / "css" / "site.css").read_bytes()
    assert max_age(reply.header("Cache-Control")) >= LONG_LIVED, reply.header("Cache-Control")


def test_static_files_are_gzipped_for_clients_that_ask(stack: Stack) -> None:
    zipped = stack.fetch(f"/static/{BULK_CSS}", headers={"Accept-Encoding": "gzip"})
    plain = stack.fetch(f"/static/{BULK_CSS}")
    assert zipped.status == plain.status == 200
    assert zipped.header("Content-Encoding") == "gzip"
    assert gzip.decompress(zipped.body).decode() == bulk_css()
    assert len(zipped.body) < len(plain.body) // 3
    assert "accept-encoding" in (zipped.header("Vary") or "").lower()
    assert plain.header("Content-Encoding") is None
    assert plain.body.decode() == bulk_css()


@pytest.mark.parametrize("name", sorted(MEDIA_FILES))
def test_uploaded_code_is_served_as_inert_bytes(stack: Stack, name: str) -> None:
    reply = stack.fetch(f"/media/{name}")
    assert reply.status == 200
    assert reply.body == MEDIA_FILES[name]  # never run (PHP) nor rewritten
    content_type = (reply.header("Content-Type") or "").lower()
    assert not content_type.startswith(("text/html", "application/xhtml", "application/x-httpd-php")), content_type
    assert reply.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path", [
    f"/static/../{SECRET_OUTSIDE}",
    f"/static../{SECRET_OUTSIDE}",
    f"/media../{SECRET_OUTSIDE}",
    f"/static/%2e%2e/{SECRET_OUTSIDE}",
    f"/media/..%2f{SECRET_OUTSIDE}",
    f"/media/%2e%2e%2f{SECRET_OUTSIDE}",
    f"/static//..//{SECRET_OUTSIDE}",
])
def test_path_traversal_out_of_the_served_directories_is_refused(stack: Stack, path: str) -> None:
    try:
        reply = stack.fetch(path)
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return  # refused by closing the connection
    assert SECRET_OUTSIDE_TEXT not in reply.body
    assert reply.status in (400, 403, 404), reply.status
