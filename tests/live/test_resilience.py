"""Failures and reloads: a lost app server, killed app processes, a reload under load; no request is lost."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from live import client
from live.layout import DOMAIN, NAME, RECYCLE_AFTER, WORKERS
from live.stack import Stack, process_tree, wait_for

pytestmark = pytest.mark.live

RESTART_WITHIN = 15  # seconds from SIGKILL to the site answering again (supervisor's startsecs is 5)
SUSTAINED_SECONDS = 10
RELOADED_BY_HUP = ("gunicorn", "uwsgi")  # the others' reload_signal is None


def served_by(stack: Stack) -> int:
    """The pid that served /whoami/ to a client forging its address, checking the app saw the real one."""
    reply = stack.fetch("/whoami/", source=client.CLIENT, headers={"X-Real-IP": client.FORGED})
    assert reply.status == 200, reply.body[:300]
    seen = reply.json()
    assert seen["remote_addr"] == client.CLIENT
    return seen["pid"]


def answering_pid(stack: Stack) -> int | None:
    """The pid that served /whoami/, or None while the site does not answer 200."""
    reply = stack.fetch("/whoami/")
    return reply.json()["pid"] if reply.status == 200 else None


def test_requests_reach_both_app_servers_and_survive_losing_one(pair_stack: Stack) -> None:
    pids = [served_by(pair_stack) for _ in range(20)]
    # Read after the requests: a server on a socket made for it (uWSGI) forks its workers after the
    # socket already listens, so they may not exist when the stack is up.
    second = pair_stack.second_server_pids()
    assert any(pid in second for pid in pids), "nginx never used the second app server"
    assert any(pid not in second for pid in pids), "nginx never used the first app server"
    pair_stack.kill_second_server()
    replies = [pair_stack.fetch("/whoami/") for _ in range(30)]
    assert [r.status for r in replies] == [200] * 30
    assert not {r.json()["pid"] for r in replies} & second


def test_supervisor_brings_the_site_back_after_sigkill(stack: Stack) -> None:
    if stack.site.manager != "supervisor":
        pytest.skip("supervisor's own: pm2 has test_pm2_restarts_a_killed_web_app_and_no_worker_outlives_it")
    masters = set(stack.web_processes().values())
    old = process_tree(masters)
    killed_at = time.monotonic()
    for pid in masters:
        os.killpg(pid, signal.SIGKILL)  # supervisor runs each program in its own process group
    wait_for(lambda: answering_pid(stack) not in old | {None}, RESTART_WITHIN, "the site answering from new processes")
    assert time.monotonic() - killed_at < RESTART_WITHIN
    wait_for(stack.all_running, 30, "every supervised process RUNNING again")
    assert not set(stack.web_processes().values()) & masters


def test_pm2_restarts_a_killed_web_app_and_no_worker_outlives_it(stack: Stack) -> None:
    """SIGKILL to the web app's main process only (its workers are not told): pm2 starts it again,
    and every old process exits instead of serving on as an orphan."""
    if stack.site.manager != "pm2":
        pytest.skip("pm2's own: supervisor has test_supervisor_brings_the_site_back_after_sigkill")
    from live.pm2stack import wait_until_gone

    (master,) = stack.web_processes().values()
    old = process_tree({master})
    assert len(old) > 1, "the web app has no worker processes to orphan"
    restarts = stack.restart_count(f"{NAME}-web")
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: answering_pid(stack) not in old | {None}, RESTART_WITHIN, "the site answering from new processes")
    wait_for(stack.all_running, 30, "every pm2 app online again")
    assert stack.restart_count(f"{NAME}-web") == restarts + 1
    # gunicorn's workers notice their parent changed at their next wake-up (timeout / 2 at most);
    # uvicorn's get SIGTERM from the kernel (PR_SET_PDEATHSIG, the launcher asks for it).
    wait_until_gone(old, 40, "every process of the killed web app gone")


class RequestStream:
    """Requests one after another on a kept-alive HTTPS connection, in a thread, recording every outcome."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.pids: list[int] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        conn = self.connect()
        while not self.stopping.is_set():
            try:
                reply = client.send(conn, "/whoami/")
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(repr(e))
                conn.close()
                conn = self.connect()
                continue
            if reply.status != 200:
                self.failures.append(f"{reply.status} {reply.body[:200]!r}")
            else:
                self.pids.append(reply.json()["pid"])
        conn.close()

    def connect(self) -> http.client.HTTPConnection:
        return client.open_connection("https", DOMAIN, self.stack.site.ports.https,
                                      context=client.tls_context(self.stack.site.cert))

    def served_only_by_new_processes(self, old: set[int], count: int) -> bool:
        recent = self.pids[-count:]
        return len(recent) == count and not set(recent) & old


def run_streams(streams: list[RequestStream], until: Callable[[], bool], timeout: float, what: str) -> None:
    """Start *streams*, wait for *until*, stop them whatever happened."""
    for stream in streams:
        stream.thread.start()
    try:
        wait_for(until, timeout, what)
    finally:
        for stream in streams:
            stream.stopping.set()
        for stream in streams:
            stream.thread.join(15)


def supervisor_report(stack: Stack, since: int) -> str:
    """supervisorctl status and supervisord's process events since *since*, for a failure message."""
    return stack.supervisorctl("status").stdout + "\n".join(stack.supervisor_events(since))


def reload_app(stack: Stack) -> None:
    """The graceful reload the rendered deployment supports: gunicorn's and uWSGI's HUP, else a rolling restart.

    uvicorn, Daphne and Hypercorn have no reload signal (scaffold/targets/uvicorn.py): each supervised
    process is restarted in turn while supervisor keeps the listening socket open, so connections wait
    in its backlog.
    """
    if stack.site.manager == "pm2":
        done = stack.reload_web()
        assert done.returncode == 0, done.stdout + done.stderr
        return
    since = stack.supervisor_log_size()
    processes = stack.web_processes()
    if stack.site.kind in RELOADED_BY_HUP:
        (name,) = processes
        commands = [("signal", "HUP", name)]
    else:
        commands = [("restart", name) for name in sorted(processes)]
    for command in commands:
        done = stack.supervisorctl(*command)
        assert done.returncode == 0 and "ERROR" not in done.stdout, (
            f"supervisorctl {' '.join(command)}: {done.stdout}{done.stderr}\n{supervisor_report(stack, since)}")


def test_graceful_reload_under_steady_requests_loses_none(stack: Stack) -> None:
    streams = [RequestStream(stack) for _ in range(2)]
    state: dict[str, set[int]] = {}

    def reloaded() -> bool:
        if "old" not in state:
            if not all(len(s.pids) >= 20 for s in streams):
                return False
            state["old"] = process_tree(set(stack.web_processes().values()))
            reload_app(stack)
        return all(s.served_only_by_new_processes(state["old"], 20) for s in streams)

    run_streams(streams, reloaded, 45, "every request answered by reloaded processes")
    assert [s.failures for s in streams] == [[], []]
    assert all(len(s.pids) > 40 for s in streams)


def test_recycling_under_load_loses_no_request_and_supervisor_never_gives_up(recycling_stack: Stack) -> None:
    """Busy processes recycle themselves (max_requests); supervisor must count that as a normal exit.

    A process that exits sooner than supervisor's startsecs counts as a failed start: after
    startretries of them in a row supervisor leaves the program FATAL, and the site down.
    """
    stack = recycling_stack
    since = stack.supervisor_log_size()
    streams = [RequestStream(stack) for _ in range(4)]
    finish = time.monotonic() + SUSTAINED_SECONDS
    run_streams(streams, lambda: time.monotonic() > finish, SUSTAINED_SECONDS + 5, "the load to end")
    early = [line for line in stack.supervisor_events(since) if "not expected" in line or "gave up" in line]
    assert not early, supervisor_report(stack, since)
    assert [s.failures for s in streams] == [[]] * 4
    assert sum(len(s.pids) for s in streams) > 4 * RECYCLE_AFTER, "too few requests to recycle every process"
    # Recycled workers are new processes: more of them answered than the app server runs at once.
    assert len({pid for s in streams for pid in s.pids}) > WORKERS
