"""Files nginx serves itself: static files (cached, compressed) and uploads (inert bytes), nothing beside them."""

from __future__ import annotations

import gzip
import http.client
import json
import re

import pytest

from support import UNDER_CI
from live.layout import (BROTLI_MODULE, BULK_CSS, HAS_BROTLI, MEDIA_FILES, NAME, SECRET_OUTSIDE, SECRET_OUTSIDE_TEXT,
                         STATIC_ONLY, bulk_css)
from live.stack import Stack, assert_app_never_saw, probe_marker, wait_for

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


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "unhashed"])
def test_collected_files_are_sent_as_the_copies_collectstatic_compressed(stack: Stack, hashed: bool) -> None:
    name = hashed_name(stack, "css/site.css") if hashed else "css/site.css"
    copy = stack.site.static / f"{name}.gz"
    assert copy.exists(), "collectstatic (the settings' storage) wrote no .gz copy"
    reply = stack.fetch(f"/static/{name}", headers={"Accept-Encoding": "gzip"})
    assert reply.status == 200 and reply.header("Content-Encoding") == "gzip"
    assert reply.body == copy.read_bytes()  # gzip_static: the file on disk, not nginx's own compression
    assert gzip.decompress(reply.body) == (stack.site.app / "assets" / "css" / "site.css").read_bytes()
    assert "accept-encoding" in (reply.header("Vary") or "").lower()
    cache = reply.header("Cache-Control") or ""
    assert ("immutable" in cache) is hashed, cache
    assert max_age(cache) == (365 * 86400 if hashed else 3600), cache
    assert reply.header("X-Content-Type-Options") == "nosniff"  # the location's add_header kept them
    assert reply.header("Strict-Transport-Security")


def test_a_copy_rewritten_in_place_is_sent_whole_at_once(stack: Stack) -> None:
    """collectstatic (WhiteNoise's storage) rewrites each .gz in place, same file, new size: nginx must not
    send an unhashed name's new copy with a size it cached before (it caches open files for hashed names)."""
    copy = stack.site.static / "css/site.css.gz"
    before = copy.read_bytes()
    for _ in range(4):  # several requests, so that more than one nginx worker has the file open
        assert stack.fetch("/static/css/site.css", headers={"Accept-Encoding": "gzip"}).body == before
    news = "".join(f".release-{i} {{ color: #{i * 2654435761 % 0xFFFFFF:06x}; }}\n" for i in range(400))
    grown = gzip.compress(news.encode() + gzip.decompress(before), mtime=0)
    inode = copy.stat().st_ino
    try:
        with open(copy, "r+b") as f:  # as WhiteNoise writes it: the same inode, truncated and written
            f.truncate(0)
            f.write(grown)
        assert copy.stat().st_ino == inode and len(grown) > len(before)
        for _ in range(4):
            reply = stack.fetch("/static/css/site.css", headers={"Accept-Encoding": "gzip"})
            assert reply.status == 200 and reply.body == grown
    finally:
        with open(copy, "r+b") as f:
            f.truncate(0)
            f.write(before)


def test_brotli_copies_are_sent_to_clients_that_accept_them(stack: Stack) -> None:
    if not HAS_BROTLI:
        message = f"nginx's brotli_static module is not installed ({BROTLI_MODULE}; libnginx-mod-http-brotli-static)"
        pytest.fail(f"{message} (CI=true: .ci/run installs it)") if UNDER_CI else pytest.skip(message)
    name = hashed_name(stack, "css/site.css")
    reply = stack.fetch(f"/static/{name}", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert reply.status == 200 and reply.header("Content-Encoding") == "br"
    assert reply.body == (stack.site.static / f"{name}.br").read_bytes()
    assert "immutable" in (reply.header("Cache-Control") or "")


def test_pages_are_never_compressed_although_debians_nginx_conf_says_gzip_on(stack: Stack) -> None:
    """BREACH: a compressed page that reflects input beside a secret leaks the secret."""
    conf = (stack.site.base / "nginx" / "nginx.conf").read_text()
    assert re.search(r"^\s*gzip on;", conf, re.M), "the host's nginx.conf turns gzip on in http{}"
    # text/html: the one type Debian's `gzip on;` compresses (its gzip_types is left at the default).
    reply = stack.fetch("/page/", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert reply.status == 200 and (reply.header("Content-Type") or "").startswith("text/html") and len(reply.body) > 256
    assert reply.header("Content-Encoding") is None


def test_the_buffered_access_log_is_written_within_seconds(stack: Stack) -> None:
    marker = probe_marker()
    assert stack.fetch(f"/whoami/?{marker}").status == 200
    log = stack.site.nginx_log / f"{NAME}.access.log"
    wait_for(lambda: log.exists() and marker in log.read_text(), 15, "the request in nginx's access log")


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
