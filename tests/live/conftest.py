"""Fixtures of the live tests: the host (root, tools, app user, venv, certificate) and running stacks.

Each stack is started once per app server kind and stopped at the end whatever happened; tests that
break a stack on purpose (killing app processes) leave it serving again, or use a stack of their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import UNDER_CI, require_tool

from live.host import HostNotReady, ensure_app_user, ensure_venv
from live.layout import RECYCLE_AFTER
from live.stack import Host, Stack, launch, prepare_host

KINDS = ("gunicorn", "uvicorn", "uwsgi", "daphne", "hypercorn")
MANAGERS = ("supervisor", "pm2")
# What pm2 runs (a spec rule refuses the rest: pm2 cannot hand a server its socket).
PM2_KINDS = ("gunicorn", "uvicorn")
TEST_TIME_LIMIT = 90  # seconds; every wait inside a test has its own, shorter bound


def skip_or_fail(message: str) -> None:
    """Skip on a developer's machine; under CI=true, where .ci/run provides everything, fail."""
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: the live tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def live_host() -> Iterator[Host]:
    """Root, nginx, openssl, systemd-tmpfiles, the app user and its venv; a temporary tree for every stack."""
    if os.geteuid() != 0:
        skip_or_fail("the live stack needs root: supervisord and nginx drop privileges to the app and www-data users")
    tools = {name: require_tool(name, "for the live stack") for name in ("nginx", "openssl", "systemd-tmpfiles")}
    try:
        ensure_app_user()
        venv = ensure_venv()
    except HostNotReady as e:
        skip_or_fail(str(e))
    # Not pytest's tmp_path: that is 0700 under /tmp/pytest-of-root, out of the app user's and nginx's reach.
    base = Path(tempfile.mkdtemp(prefix="djdeploy-live-"))
    base.chmod(0o755)
    try:
        yield prepare_host(base, nginx=tools["nginx"], tmpfiles=tools["systemd-tmpfiles"], venv=venv)
    finally:
        if not os.environ.get("DJDEPLOY_LIVE_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=KINDS)
def app_kind(request: pytest.FixtureRequest) -> str:
    """The app server under test: every live test runs once with each kind."""
    return request.param


@pytest.fixture(scope="session", params=MANAGERS)
def manager(request: pytest.FixtureRequest) -> str:
    """The process manager under test: every test of `stack` runs under supervisor and under pm2."""
    return request.param


@pytest.fixture(scope="session")
def stack(live_host: Host, app_kind: str, manager: str) -> Iterator[Stack]:
    """The site on one unix socket (the spec's default), behind nginx, under supervisord or pm2.

    Its processes never recycle themselves (max_requests 0), so a pid that changes was changed by the
    test (reload, kill); recycling is tested on recycling_stack.
    """
    if manager == "pm2" and app_kind not in PM2_KINDS:
        pytest.skip(f"pm2 does not run {app_kind} (the spec refuses it)")
    pm2 = require_tool("pm2", "for the live stack under pm2 (npm install -g pm2)") if manager == "pm2" else None
    running = launch(live_host, app_kind, pair=False, app_server={"max_requests": 0}, manager=manager, pm2=pm2)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def pair_stack(live_host: Host, app_kind: str) -> Iterator[Stack]:
    """The site with two TCP upstream app servers, on 127.0.0.1 and 127.0.0.2 (one port, as on two hosts)."""
    running = launch(live_host, app_kind, pair=True)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=["gunicorn", "uwsgi"])
def recycling_stack(live_host: Host, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """gunicorn or uWSGI with app_server.max_requests 100: busy workers recycle every few seconds.

    Those two only: uvicorn, Daphne and Hypercorn processes are not recycled (a spec rule refuses
    max_requests there).
    """
    running = launch(live_host, request.param, pair=False, app_server={"max_requests": RECYCLE_AFTER})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def time_limit() -> Iterator[None]:
    """Bound every live test in time: a hang fails the test, and the fixtures still stop the stack."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"live test ran longer than {TEST_TIME_LIMIT}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIME_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
