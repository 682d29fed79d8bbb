"""Under pm2: who the programs run as, what environment they get, where they log, how a stop ends requests."""

from __future__ import annotations

import pwd
import subprocess
import threading
from pathlib import Path

import pytest

from live.host import APP_USER
from live.layout import NAME, ecosystem_path
from live.pm2stack import CALLER_MARKER
from live.stack import Stack, probe_marker, wait_for

pytestmark = pytest.mark.live


@pytest.fixture
def pm2_stack(app_kind: str, manager: str, request: pytest.FixtureRequest) -> Stack:
    """The shared stack when it runs under pm2 (a supervisor one is not even started for these tests)."""
    if manager != "pm2":
        pytest.skip("a pm2 stack's own checks")
    return request.getfixturevalue("stack")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_programs_run_as_the_app_user_with_secret_files_and_no_caller_environment(pm2_stack: Stack) -> None:
    (pid,) = pm2_stack.web_processes().values()
    assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam(APP_USER).pw_uid
    env = environ(pid)
    assert env["DJANGO_SECRET_KEY_FILE"] == str(pm2_stack.site.secret_file)
    assert "DJANGO_SECRET_KEY" not in env
    # `pm2 start` ran with this variable set; filter_env keeps the caller's environment out.
    assert CALLER_MARKER not in env
    assert pm2_stack.site.secret_file.read_text() not in "".join(env.values())


def test_the_ecosystem_file_refuses_to_load_for_another_user(pm2_stack: Stack) -> None:
    """As root, pm2 would run every program as root: the file stops that before pm2 sees an app."""
    done = subprocess.run(["node", "-e", "require(process.argv[1])", str(ecosystem_path(pm2_stack.site))],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "these programs run as" in done.stderr and "not root" in done.stderr


def test_the_web_app_logs_into_log_dir(pm2_stack: Stack) -> None:
    marker = "pm2-log-probe"
    assert pm2_stack.fetch(f"/whoami/?{marker}").status == 200
    log = pm2_stack.site.log / f"{NAME}-web.log"
    wait_for(lambda: log.exists() and marker in log.read_text(errors="replace"), 10, "the request in the web log")


def test_a_restart_lets_the_request_in_flight_finish(pm2_stack: Stack) -> None:
    """pm2 stops with its daemon's PM2_KILL_SIGNAL, SIGTERM here: gunicorn and uvicorn finish open requests.

    With pm2's default SIGINT gunicorn would drop the request at once.
    """
    outcome: dict[str, object] = {}

    mark = probe_marker()

    def slow() -> None:
        try:
            outcome["reply"] = pm2_stack.fetch(f"/slow/?seconds=3&mark={mark}", timeout=20)
        except Exception as e:  # noqa: BLE001 - reported below
            outcome["error"] = e

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for(lambda: f"slow request started: {mark}" in pm2_stack.app_log(), 10, "the slow request in the app")
    done = pm2_stack.pm2("restart", f"{NAME}-web")
    thread.join(30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in outcome, outcome
    reply = outcome["reply"]
    assert reply.status == 200, reply.body[:300]
    wait_for(lambda: pm2_stack.all_running() and pm2_stack.fetch("/whoami/").status == 200, 30,
             "the site answering again")
