"""pm2 on a booted Debian 13: INSTALL.md followed as written, then the live checks and what only a
booted host shows.

One machine (gunicorn gthread and two background processes under pm2), installed by the runbook's
own shell blocks as in tests/machines/test_systemd_hosts.py: Node.js from Debian, pm2 from the npm
cache in the image (the machine is offline; npm installs from it as from a site-local registry),
its daemon started by systemd (`pm2 startup`). Then the checks of the supervisor path, the deploy
step under steady requests, a SIGKILLed web app, and a reboot that brings every program back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from live import client
from live.layout import DOMAIN, NAME
from live.stack import wait_for
from machines.conftest import PrivateNetwork
from machines.hosts import PM2_VARIANT, Host, deploy_under_load, make_ca, render, spec_data
from machines.images import ensure_image, host_image
from machines import machines
from machines.machines import Machine
from machines.test_systemd_hosts import CHECKS

pytestmark = pytest.mark.machines

RELEASE, NGINX = "trixie", "1.26"
# Its own address on the private network: the systemd hosts take .10-.26 and the fleets .30-.43.
# Reusing one a torn-down machine had leaves the client a stale neighbour entry (its old MAC),
# and the first connections time out.
ADDRESS_OFFSET = 60
RESTART_WITHIN = 20
PROGRAMS = [f"{NAME}-web", f"{NAME}-heartbeat-0", f"{NAME}-heartbeat-1"]


@pytest.fixture(scope="module")
def host(testbed: PrivateNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    image = ensure_image(host_image(RELEASE))
    tmp = tmp_path_factory.mktemp("pm2")
    name = machines.name(f"{RELEASE[:4]}-{PM2_VARIANT}")
    address = testbed.network.join(name, ADDRESS_OFFSET)
    rendered = render(spec_data(PM2_VARIANT, NGINX), tmp / PM2_VARIANT)
    running = Host(Machine(name, image, name), PM2_VARIANT, RELEASE, NGINX, address, make_ca(tmp / "ca"), rendered,
                   testbed.control)
    try:
        running.machine.boot()
        running.install()
        yield running
    finally:
        running.machine.close()
        testbed.network.leave(name)


def pm2_apps(host: Host) -> dict[str, dict]:
    """`pm2 jlist` as the runbook's pm2u runs it (the app user, the daemon's environment): name -> app."""
    define = next(line for b in host.blocks if b.step == 8 for line in b.script.splitlines()
                  if line.startswith("pm2u()"))
    listed = host.machine.run(f"{define}\npm2u jlist", timeout=60).stdout
    return {app["name"]: app for app in json.loads(listed[listed.index("["):])}


def online(host: Host) -> dict[str, str]:
    return {name: app["pm2_env"]["status"] for name, app in pm2_apps(host).items()}


def pids(host: Host, *names: str) -> set[int]:
    apps = pm2_apps(host)
    return {apps[n]["pid"] for n in names if apps[n]["pid"]}


def web_tree(host: Host) -> set[int]:
    """The web app's main process (pm2's pid for it) and its workers."""
    (master,) = pids(host, PROGRAMS[0])
    children = host.machine.run(f"ps -o pid= --ppid {master}").stdout.split()
    return {master, *(int(c) for c in children)}


def answering(host: Host) -> dict | None:
    reply = host.fetch("/whoami/")
    return reply.json() if reply.status == 200 else None


def test_runbook_checks_answer(host: Host) -> None:
    """Step 9 as written: the socket answers nginx's user, nginx answers over HTTPS, the health endpoint
    says ok, and the log directory has a file per program."""
    (checks,) = [b for b in host.blocks if b.step == 9]
    done = host.operator(checks.script)
    codes = re.findall(r"^(\d{3})$", done.stdout, re.M)
    assert len(codes) == 2 and "000" not in codes, done.stdout + done.stderr
    assert done.stdout.count('"status": "ok"') == 2, done.stdout
    for program in PROGRAMS:
        assert f"{program}.log" in done.stdout


def test_pm2_runs_every_program_as_the_app_user(host: Host) -> None:
    assert online(host) == dict.fromkeys(PROGRAMS, "online")
    users = host.machine.run(f"ps -o user= -p {','.join(str(p) for p in pids(host, *PROGRAMS))}").stdout.split()
    assert set(users) == {NAME}
    daemon = host.machine.run(f"systemctl is-active pm2-{NAME}.service").stdout.strip()
    assert daemon == "active"


@pytest.mark.parametrize("check", list(CHECKS))
def test_live_checks_of_the_supervisor_path(host: Host, check: str) -> None:
    with host.connected():
        CHECKS[check](host)


@pytest.mark.parametrize("headers", [
    {}, {"X-Forwarded-Proto": "http"}, {"X-Forwarded-For": client.FORGED},
    {"Forwarded": f"for={client.FORGED};proto=http;host=evil.test"},
], ids=["none", "proto", "for", "forwarded"])
def test_django_sees_the_client_whatever_it_forges(host: Host, testbed: PrivateNetwork, headers: dict) -> None:
    seen = host.fetch("/whoami/", headers=headers).json()
    assert (seen["secure"], seen["scheme"], seen["host"], seen["remote_addr"]) == (
        True, "https", DOMAIN, testbed.control_address)


def test_the_background_programs_log_through_pm2(host: Host) -> None:
    wait_for(lambda: "heartbeat release=1" in host.machine.run(f"cat /var/log/{NAME}/{NAME}-heartbeat-0.log").stdout,
             30, "the heartbeat in its pm2 log file")
    # The daemon's UMask (the rendered drop-in): its files are not for every user on the host.
    modes = host.machine.run(f"stat -c '%n %a %U' /var/log/{NAME}/*.log").stdout.split("\n")
    listed = dict(line.split(" ", 1) for line in modes if line)
    assert f"/var/log/{NAME}/{NAME}-web.log" in listed
    assert set(listed.values()) == {f"640 {NAME}"}, listed


DEPLOY_FAILURES: list[str] = []


def test_the_deploy_step_loads_new_code_everywhere(host: Host) -> None:
    """The runbook's deploy block under steady requests: the web app's workers and the background
    programs are replaced by ones running the new code."""
    old_background = pids(host, *PROGRAMS[1:])
    DEPLOY_FAILURES.extend(deploy_under_load(host, lambda: web_tree(host)))
    assert answering(host)["release"] == "2"
    new_background = pids(host, *PROGRAMS[1:])
    assert new_background and not new_background & old_background
    wait_for(lambda: all(f"release=2 pid={pid}" in host.machine.run(
        f"cat /var/log/{NAME}/{NAME}-heartbeat-*.log").stdout for pid in new_background),
        20, "every background process running the new code")


def test_the_deploy_step_under_load_loses_no_request(host: Host) -> None:
    assert DEPLOY_FAILURES == []


def test_a_sigkilled_web_app_is_restarted_by_pm2(host: Host) -> None:
    old = web_tree(host)
    master = pm2_apps(host)[PROGRAMS[0]]["pid"]
    restarts = pm2_apps(host)[PROGRAMS[0]]["pm2_env"]["restart_time"]
    host.machine.run(f"kill -KILL {master}")
    wait_for(lambda: (seen := answering(host)) and seen["pid"] not in old, RESTART_WITHIN,
             "the site answering from new processes")
    wait_for(lambda: online(host) == dict.fromkeys(PROGRAMS, "online"), RESTART_WITHIN, "every program online")
    assert pm2_apps(host)[PROGRAMS[0]]["pm2_env"]["restart_time"] == restarts + 1


def test_a_reboot_brings_every_program_back(host: Host) -> None:
    release = answering(host)["release"]
    host.machine.reboot()
    wait_for(lambda: host.machine.run(f"systemctl is-active pm2-{NAME}.service nginx.service", check=False)
             .stdout.split() == ["active", "active"], 30, "pm2's daemon and nginx active after the reboot")
    wait_for(lambda: online(host) == dict.fromkeys(PROGRAMS, "online"), 30, "every program online after the reboot")
    assert wait_for(lambda: answering(host), 20, "the site answering after the reboot")["release"] == release
    assert host.machine.run("systemctl --no-pager --failed --plain --no-legend").stdout.strip() == ""
