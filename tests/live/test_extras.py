"""What the site needs around the app, live: the health endpoint, protected files, the admin's
allow-list, static files for a CDN, and WhiteNoise behind nginx."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
from support import require_tool

from live import client
from live.layout import FONT, FONT_BYTES, PROTECTED_FILE, PROTECTED_TEXT, PROTECTED_URL
from live.stack import Host, Stack, launch, wait_for
from live.test_runbook import runbook_blocks

pytestmark = pytest.mark.live

HEALTH = "/healthz"
DENIED = client.CLIENT  # a loopback address outside nginx.admin.allow and the health endpoint's list


def health(stack: Stack, **kwargs) -> client.Response:
    return stack.fetch(HEALTH, **kwargs)


# --- the health endpoint

def test_health_answers_this_host_with_the_checks_it_ran(stack: Stack) -> None:
    reply = health(stack)
    assert reply.status == 200, reply.body
    assert reply.json() == {"status": "ok", "failed": {}}
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Set-Cookie") is None  # no session, no CSRF cookie


def test_health_is_refused_to_other_addresses(stack: Stack) -> None:
    assert health(stack, source=DENIED).status == 403


def test_health_reports_a_failing_database_and_recovers(stack: Stack) -> None:
    """The app user cannot open the SQLite file while its directory is closed: 503 naming it."""
    state = stack.site.state
    mode = state.stat().st_mode & 0o7777
    log = stack.site.nginx_log / "shop.access.log"
    before = log.stat().st_size if log.exists() else 0
    state.chmod(0)
    try:
        reply = health(stack)
        assert reply.status == 503
        assert reply.json() == {"status": "failing", "failed": {"database default": "OperationalError"}}
    finally:
        state.chmod(mode)
    assert wait_for(lambda: health(stack).status == 200, 10, "health 200 again")
    # No log lines for the checks in nginx's access log, nor django.request's "Service Unavailable:
    # /healthz" (the app server's own access log still lists each request).
    assert HEALTH not in (log.read_text()[before:] if log.exists() else "")
    assert f"Service Unavailable: {HEALTH}" not in stack.app_log()


def test_runbook_health_checks_pass_against_the_stack(stack: Stack) -> None:
    """The health lines of INSTALL.md's checks, run as they are: on the app's socket and through nginx."""
    require_tool("curl", "INSTALL.md's checks")
    require_tool("runuser", "INSTALL.md's socket check runs curl as nginx's user")
    steps = runbook_blocks((stack.site.rendered / "INSTALL.md").read_text())
    lines = [line for block in steps[9] for line in block.splitlines()
             if HEALTH in line and not line.startswith("#")]
    # On the app's socket and through nginx; uWSGI's socket speaks the uwsgi protocol, not HTTP.
    assert len(lines) == (1 if stack.site.kind == "uwsgi" else 2), lines
    for line in lines:
        done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{line}"], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        assert json.loads(done.stdout) == {"status": "ok", "failed": {}}, done.stdout


# --- protected files

def test_protected_files_cannot_be_fetched_directly(stack: Stack) -> None:
    reply = stack.fetch(f"{PROTECTED_URL}{PROTECTED_FILE}")
    assert reply.status == 404 and PROTECTED_TEXT not in reply.body


def test_protected_file_comes_from_nginx_when_the_app_allows_it(stack: Stack) -> None:
    allowed = stack.fetch(f"/download/{PROTECTED_FILE}?allow=yes")
    assert allowed.status == 200, allowed.body
    assert allowed.body == PROTECTED_TEXT
    assert allowed.header("X-Accel-Redirect") is None  # nginx consumed it
    assert allowed.header("Content-Disposition") == f'attachment; filename="{PROTECTED_FILE}"'
    assert allowed.header("X-Content-Type-Options") == "nosniff"
    refused = stack.fetch(f"/download/{PROTECTED_FILE}")
    assert refused.status == 403 and PROTECTED_TEXT not in refused.body


# --- the admin

@pytest.mark.parametrize("path", ["/admin/", "/admin/login/"])
def test_admin_is_refused_outside_its_networks(stack: Stack, path: str) -> None:
    assert stack.fetch(path, source=DENIED).status == 403


def test_admin_reaches_the_app_from_an_allowed_address(stack: Stack) -> None:
    index = stack.fetch("/admin/")
    assert index.status == 302 and "/admin/login/" in (index.header("Location") or "")
    login = stack.fetch("/admin/login/")
    assert login.status == 200 and b"csrfmiddlewaretoken" in login.body
    assert stack.fetch("/whoami/", source=DENIED).status == 200  # the rest of the site is everyone's


def test_login_paths_are_rate_limited_per_client_address(stack: Stack) -> None:
    """nginx.login_rate_limit (60r/m, burst 20 here): a client past the burst gets 429, others don't.

    /accounts/login/ is outside the admin, so a client outside its allow-list reaches the limit.
    """
    burst = 20
    statuses = [stack.fetch("/accounts/login/", source=DENIED).status for _ in range(burst + 10)]
    assert 429 in statuses and statuses[:burst] == [404] * burst, statuses  # 404: the test project has no page there
    assert stack.fetch("/admin/login/").status == 200  # another client address, its own budget


# --- static files for a CDN

def test_static_files_carry_cors_for_the_cdn(stack: Stack) -> None:
    font = stack.fetch(f"/static/{FONT}", headers={"Origin": "https://shop.test"})
    assert font.status == 200 and font.body == FONT_BYTES
    assert font.header("Access-Control-Allow-Origin") == "*"
    page = stack.fetch("/whoami/", headers={"Origin": "https://shop.test"})
    assert page.header("Access-Control-Allow-Origin") is None  # only static files are cross-origin


# --- WhiteNoise behind nginx

@pytest.fixture(scope="module")
def whitenoise_stack(live_host: Host) -> Iterator[Stack]:
    """static.server whitenoise: nginx proxies the static path to the app (gunicorn)."""
    running = launch(live_host, "gunicorn", pair=False, static_server="whitenoise")
    try:
        yield running
    finally:
        running.stop()


def test_whitenoise_serves_hashed_static_files_through_nginx(whitenoise_stack: Stack) -> None:
    manifest = json.loads((whitenoise_stack.site.static / "staticfiles.json").read_text())
    hashed = manifest["paths"]["css/site.css"]
    reply = whitenoise_stack.fetch(f"/static/{hashed}?via-app", headers={"Accept-Encoding": "gzip"})
    assert reply.status == 200
    assert reply.header("Content-Encoding") == "gzip"  # WhiteNoise's precompressed copy
    assert "immutable" in (reply.header("Cache-Control") or "")
    assert reply.header("Access-Control-Allow-Origin") == "*"  # WhiteNoise's, once
    assert len(reply.headers.get_all("Access-Control-Allow-Origin")) == 1
    assert wait_for(lambda: re.search(r"GET /static/\S+\?via-app", whitenoise_stack.app_log()), 10,
                    "the static request in the app's access log")
