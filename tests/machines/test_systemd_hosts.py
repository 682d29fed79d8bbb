"""The systemd path on booted Debian 12 and 13: INSTALL.md followed as written, then the live checks.

One machine per app-server variant and release (gunicorn sync, gthread, gunicorn+ASGI, uvicorn
with several instances on one socket; on Debian 13 also uWSGI, Daphne and Hypercorn), booted once
for this module and installed by the runbook's own shell blocks (tests/machines/hosts.py). The checks the supervisor path has (tests/live) run
against each, through nginx, from a client on the machines' private network; then what only a
live systemd shows: the deploy step, a SIGKILL, a missing credential, a socket restart, scaling
down, and a reboot.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from live import client, test_files, test_routing
from live.layout import DOMAIN, MEDIA_FILES, NAME
from live.stack import wait_for
from machines.conftest import PrivateNetwork
from machines.hosts import (DATABASE_BESIDE_STATE, INSTANCE_KINDS, RELEASE_VARIANTS, VARIANTS, Host,
                            deploy_under_load, make_ca, render, spec_data)
from machines.images import ensure_image, host_image
from machines import machines
from machines.machines import Machine

pytestmark = pytest.mark.machines

NGINX_OF_RELEASE = {"bookworm": "1.22", "trixie": "1.26"}
RESTART_WITHIN = 20  # seconds from a SIGKILL to the site answering again (RestartSec=2)


@pytest.fixture(scope="module", params=list(NGINX_OF_RELEASE))
def release_hosts(request: pytest.FixtureRequest, testbed: PrivateNetwork,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    """Every variant on its own machine of one release, booted and installed in parallel."""
    release = request.param
    image = ensure_image(host_image(release))
    tmp = tmp_path_factory.mktemp(release)
    ca = make_ca(tmp / "ca")
    first = 10 * (list(NGINX_OF_RELEASE).index(release) + 1)
    hosts = {}
    try:
        for offset, variant in enumerate(RELEASE_VARIANTS[release]):
            name = machines.name(f"{release[:4]}-{variant}")
            address = testbed.network.join(name, first + offset)
            rendered = render(spec_data(variant, NGINX_OF_RELEASE[release]), tmp / variant)
            hosts[variant] = Host(Machine(name, image, name), variant, release, NGINX_OF_RELEASE[release],
                                  address, ca, rendered, testbed.control)
        for host in hosts.values():
            # From this thread: each nspawn gets SIGTERM (a clean poweroff) when the thread that
            # started it ends, which is meant to be the test process.
            host.machine.boot()
        with ThreadPoolExecutor(len(hosts)) as pool:
            for future in [pool.submit(host.install) for host in hosts.values()]:
                future.result()
        yield hosts
    finally:
        for host in hosts.values():
            host.machine.close()
            testbed.network.leave(host.machine.name)


@pytest.fixture(params=RELEASE_VARIANTS["trixie"])
def host(release_hosts: dict[str, Host], request: pytest.FixtureRequest) -> Host:
    # A variant a release does not run is deselected at collection (tests/machines/conftest.py).
    return release_hosts[request.param]


def kind(host: Host) -> str:
    return VARIANTS[host.variant]["kind"]


def web_units(host: Host) -> list[str]:
    if kind(host) in INSTANCE_KINDS:
        return [f"{NAME}-web@{i}.service" for i in range(1, VARIANTS[host.variant]["workers"] + 1)]
    return [f"{NAME}-web.service"]


def active(host: Host, *units: str) -> dict[str, str]:
    states = host.systemctl("is-active", *units).stdout.split()
    return dict(zip(units, states))


def failed_units(host: Host) -> list[str]:
    listed = host.systemctl("--failed", "--plain", "--no-legend").stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def answering(host: Host) -> dict | None:
    """What /whoami/ says, or None while the site does not answer 200."""
    reply = host.fetch("/whoami/")
    return reply.json() if reply.status == 200 else None


# -- the runbook's own checks, then the supervisor path's live checks

def test_runbook_checks_answer(host: Host) -> None:
    """Step 9 as written: the socket answers nginx's user (uWSGI's accepts it: it speaks the uwsgi
    protocol), nginx answers over HTTPS with the certificate's CA trusted (`curl --cacert`), and the
    journal has the app's lines."""
    (checks,) = [b for b in host.blocks if b.step == 9]
    done = host.operator(checks.script)
    codes = re.findall(r"^(\d{3})$", done.stdout, re.M)
    if kind(host) == "uwsgi":
        assert len(codes) == 1 and re.search(r"^connected$", done.stdout, re.M), done.stdout + done.stderr
    else:
        assert len(codes) == 2, done.stdout + done.stderr
    assert "000" not in codes, done.stdout + done.stderr
    # The request line and the 404 of the home page, in each server's own log format.
    assert re.search(r"GET / .*\b404\b|\"GET /\S*\" 404", done.stdout), done.stdout


CHECKS = {
    "https-200": lambda h: test_routing.test_site_answers_200_over_https_on_its_name(h),
    "http-redirect": lambda h: test_routing.test_http_redirects_to_https_keeping_path_and_query(h),
    "alias-redirect": lambda h: test_routing.test_alias_redirects_to_the_primary_name_over_https(h),
    "alias-http": lambda h: test_routing.test_alias_over_http_ends_on_the_primary_name(h),
    **{f"444-{i}": (lambda h, raw=raw: test_routing.test_unknown_host_on_http_gets_the_connection_closed_without_a_response(h, raw))
       for i, raw in enumerate([b"GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
                                b"GET / HTTP/1.0\r\n\r\n"])},
    **{f"handshake-{sni}": (lambda h, sni=sni: test_routing.test_unknown_name_on_https_gets_its_handshake_rejected(h, sni))
       for sni in ("evil.test", None)},
    "421": lambda h: test_routing.test_known_name_with_a_foreign_host_header_never_reaches_django(h),
    "static": lambda h: test_files.test_static_files_come_from_nginx_not_django(h),
    "hashed-static": lambda h: test_files.test_hashed_static_files_are_cached_long(h),
    "gzip": lambda h: test_files.test_static_files_are_gzipped_for_clients_that_ask(h),
    **{f"media-{name}": (lambda h, name=name: test_files.test_uploaded_code_is_served_as_inert_bytes(h, name))
       for name in sorted(MEDIA_FILES)},
    "traversal": lambda h: [test_files.test_path_traversal_out_of_the_served_directories_is_refused(h, path)
                            for path in ("/static/../outside-secret.txt", "/media../outside-secret.txt",
                                         "/media/%2e%2e%2foutside-secret.txt")],
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_live_checks_of_the_supervisor_path(host: Host, check: str) -> None:
    with host.connected():
        CHECKS[check](host)


@pytest.mark.parametrize("headers", [
    {}, {"X-Forwarded-Proto": "http"}, {"X-Forwarded-For": client.FORGED}, {"X-Real-IP": client.FORGED},
    {"X-Forwarded-Host": "evil.test"}, {"Forwarded": f"for={client.FORGED};proto=http;host=evil.test"},
], ids=["none", "proto", "for", "real-ip", "host", "forwarded"])
def test_django_sees_the_client_whatever_it_forges(host: Host, testbed: PrivateNetwork, headers: dict) -> None:
    seen = host.fetch("/whoami/", headers=headers).json()
    assert (seen["secure"], seen["scheme"], seen["host"], seen["x_forwarded_for"], seen["remote_addr"]) == (
        True, "https", DOMAIN, testbed.control_address, testbed.control_address)


# -- what the app writes under the sandbox

def test_uploads_are_written_by_the_app_and_served_by_nginx(host: Host) -> None:
    content = f"uploaded to {host.variant}\n".encode()
    with host.connected():
        conn = client.open_connection("https", DOMAIN, 443, context=client.tls_context(host.ca.cert))
        try:
            conn.request("POST", f"/upload/?name=note-{host.variant}.txt", body=content,
                         headers={"Content-Type": "text/plain"})
            answer = conn.getresponse()
            reply = client.Response(answer.status, answer.headers, answer.read())
        finally:
            conn.close()
    assert reply.status == 200, reply.body[:500]
    url = reply.json()["url"]
    served = host.fetch(url)
    assert served.status == 200 and served.body == content
    # Written by the app, readable by nginx's group (the directory's setgid), out of others' reach.
    info = host.machine.run(f"stat -c '%U %G %a' /srv/{NAME}/media /srv/{NAME}/media/{Path(url).name}").stdout
    (directory, upload) = [line.split() for line in info.splitlines()]
    assert directory == [NAME, "www-data", "2750"] and upload[:2] == [NAME, "www-data"]


def test_the_app_writes_its_sqlite_database_which_others_cannot_read(host: Host) -> None:
    reply = host.fetch("/remember/")
    assert reply.status == 200, reply.body[:500]
    database = DATABASE_BESIDE_STATE if host.variant == "gthread" else f"/var/lib/{NAME}/db.sqlite3"
    modes = host.machine.run(f"stat -c '%n %U %a' /var/lib/{NAME} {database}").stdout.splitlines()
    # The units started after step 2 made the state directory 0750: StateDirectoryMode keeps it so.
    assert modes == [f"/var/lib/{NAME} {NAME} 750", f"{database} {NAME} 640"]


def test_background_programs_and_the_timer_run(host: Host) -> None:
    units = [f"{NAME}-heartbeat@1.service", f"{NAME}-heartbeat@2.service", f"{NAME}-sweep.timer"]
    assert active(host, *units) == dict.fromkeys(units, "active")
    wait_for(lambda: host.systemctl("show", "-P", "ExecMainExitTimestampMonotonic", f"{NAME}-sweep.service")
             .stdout.strip() not in ("", "0"), 15, "the periodic job run once")
    assert host.systemctl("show", "-P", "Result", f"{NAME}-sweep.service").stdout.strip() == "success"
    log = host.machine.run(f"journalctl --no-pager -o cat -u '{NAME}-heartbeat@*'").stdout
    assert "heartbeat release=1" in log


# -- the deploy step, failures, restarts

def heartbeat_pids(host: Host) -> set[int]:
    return host.unit_pids(f"{NAME}-heartbeat@*.service")


def test_the_deploy_step_loads_new_code_everywhere(host: Host) -> None:
    """The runbook's deploy block, under steady requests: web and background processes are replaced
    by ones running the new code. (Whether a request failed meanwhile is the next test.)"""
    old_background = heartbeat_pids(host)
    DEPLOY_FAILURES[(host.release, host.variant)] = deploy_under_load(host, host.web_pids)
    assert answering(host)["release"] == "2"
    new_background = heartbeat_pids(host)
    assert new_background and not new_background & old_background
    wait_for(lambda: all(f"release=2 pid={pid}" in host.machine.run(
        f"journalctl --no-pager -o cat -u '{NAME}-heartbeat@*'").stdout for pid in new_background),
        10, "every background process running the new code")


DEPLOY_FAILURES: dict[tuple[str, str], list[str]] = {}  # requests that failed during the deploy above

def test_the_deploy_step_under_load_loses_no_request(host: Host) -> None:
    """For every variant, gunicorn's uvicorn worker included: on HUP it closes connections it had
    accepted but not read, and nginx sends those GETs again to the server listed as its own backup."""
    if (host.release, host.variant) not in DEPLOY_FAILURES:
        pytest.skip("the deploy test did not run")
    assert DEPLOY_FAILURES[(host.release, host.variant)] == [], web_journal(host)


def web_journal(host: Host) -> str:
    return host.machine.run(f"journalctl --no-pager -n 80 -u '{NAME}-web*'").stdout


def main_pid(host: Host, unit: str) -> int:
    return int(host.systemctl("show", "-P", "MainPID", unit).stdout.strip() or 0)


def test_a_sigkilled_web_process_is_restarted(host: Host) -> None:
    """SIGKILL the web unit's main process (gunicorn's master; one uvicorn instance): systemd starts
    it again, and the site answers from it."""
    unit = web_units(host)[0]
    killed = main_pid(host, unit)
    old = host.unit_pids(unit)
    host.machine.run(f"kill -KILL {killed}")
    wait_for(lambda: active(host, unit)[unit] == "active" and main_pid(host, unit) not in (0, killed),
             RESTART_WITHIN, f"{unit} running again")
    assert not host.unit_pids(unit) & old
    if kind(host) in INSTANCE_KINDS:
        # nginx keeps its connections to the other instances; fresh ones on the socket reach them all.
        new = main_pid(host, unit)
        wait_for(lambda: new in socket_pids(host), RESTART_WITHIN, "the restarted instance answering")
    else:
        wait_for(lambda: (seen := answering(host)) and seen["pid"] not in old, RESTART_WITHIN,
                 "the site answering from new processes")


def socket_pids(host: Host, requests: int = 30) -> set[int]:
    """The pids that answered *requests* fresh connections to the app's socket, made inside the machine."""
    curl = (f"curl -sS -H 'Host: {DOMAIN}' -H 'X-Forwarded-Proto: https' --unix-socket /run/{NAME}/app.sock "
            "http://localhost/whoami/")
    said = host.machine.run(f"for i in $(seq {requests}); do {curl}; echo; done").stdout
    return {json.loads(line)["pid"] for line in said.splitlines() if line.startswith("{")}


def test_a_missing_credential_ends_in_failed_where_monitoring_sees_it(host: Host) -> None:
    unit = web_units(host)[0]
    secret = f"/etc/{NAME}/secrets/DJANGO_SECRET_KEY"
    host.machine.run(f"mv {secret} {secret}.away")
    try:
        host.systemctl("restart", unit)
        wait_for(lambda: host.systemctl("is-failed", unit).stdout.strip() == "failed", 30, f"{unit} failed")
        time.sleep(3)  # past RestartSec: a unit that restarts would have left `failed` by now
        assert host.systemctl("is-failed", unit).stdout.strip() == "failed"
        assert unit in failed_units(host)
    finally:
        host.machine.run(f"mv {secret}.away {secret}")
        host.systemctl("reset-failed", unit)
        host.systemctl("start", unit)
    wait_for(lambda: answering(host), 20, "the site answering again")


def test_a_socket_restart_brings_every_web_instance_back(host: Host) -> None:
    host.systemctl("restart", f"{NAME}-web.socket", check=True)
    units = web_units(host)
    wait_for(lambda: set(active(host, *units).values()) == {"active"}, 20, "every web instance active")
    wait_for(lambda: answering(host), 20, "the site answering")


def test_scaling_down_stops_the_extra_instances(host: Host, tmp_path: Path) -> None:
    if host.variant != "uvicorn":
        pytest.skip("scaling is tried on uvicorn's three instances; the other kinds' instances are the same units"
                    if kind(host) in INSTANCE_KINDS else "one web unit: nothing to scale")
    fewer = VARIANTS["uvicorn"]["workers"] - 1
    spec = spec_data("uvicorn", host.nginx_version, workers=fewer)
    host.rendered = render(spec, tmp_path / "fewer")
    host.copy_rendered()
    (install, *_) = [b for b in host.blocks if b.step == 8 and b.kind == "install"]
    host.operator(install.script)
    (change,) = [b for b in host.blocks if b.kind == "change"]
    host.operator(change.script)
    listed = host.systemctl("list-units", "--plain", "--no-legend", f"{NAME}-web@*.service").stdout
    assert sorted(line.split()[0] for line in listed.splitlines()) == [
        f"{NAME}-web@{i}.service" for i in range(1, fewer + 1)]
    wait_for(lambda: answering(host), 20, "the site answering")


def running_units(host: Host) -> set[str]:
    """The site's units that run all the time (services, socket, target, timer), and nginx, if active."""
    listed = host.systemctl("list-units", "--state=active", "--plain", "--no-legend", f"{NAME}-*",
                            "nginx.service", "postfix.service").stdout
    return {line.split()[0] for line in listed.splitlines()} - {f"{NAME}-sweep.service"}  # a oneshot job


def test_a_reboot_brings_every_unit_and_timer_back(host: Host) -> None:
    before, release = running_units(host), answering(host)["release"]
    assert {f"{NAME}-web.socket", f"{NAME}-sweep.timer", f"{NAME}-heartbeat@2.service", "nginx.service",
            *web_units(host)[:2]} <= before
    host.machine.reboot()
    wait_for(lambda: running_units(host) == before, 30, f"{sorted(before)} active after the reboot")
    assert failed_units(host) == []
    assert wait_for(lambda: answering(host), 20, "the site answering after the reboot")["release"] == release
    assert host.fetch("/remember/").status == 200
