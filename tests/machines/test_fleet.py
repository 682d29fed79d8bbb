"""Several hosts, delivered by the rendered Ansible playbook, on booted Debian 13 machines.

A fleet is a load balancer (nginx), two app hosts and a database server (PostgreSQL, which the
test sets up as the operator's own: djdeploy does not install databases), booted from one image on
the machines' private network, with the media root on a directory every host mounts (as NFS would
be). The playbook runs from the test client's namespace, the control host, over SSH as root with a
throwaway key, and converges the bare hosts; the test gives it only what the README says an
operator gives: the project as a tarball, the secrets, the certificate on the load balancer. The
machines have no route to the archive: every package is already in the image, and its package
lists (fetched when the image was built) are marked as fresh as a real host's after its daily
`apt-get update`, so the playbook's apt tasks (`cache_valid_time`) do not fetch them again.

Two fleets: uvicorn and gunicorn (gthread). The spec says `process_manager: both`, and each fleet
runs one app host under systemd and the other under supervisor (the `djdeploy_process_manager`
host variable), so both paths, the socket unit's `IPAddressAllow=` and the nftables table, serve
the same site behind one load balancer.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from live import client
from live.layout import ALIAS, DJPROJECT, DOMAIN, NAME, PROJECT
from live.stack import wait_for
from live.test_resilience import RequestStream, run_streams
from machines import machines
from machines.conftest import PrivateNetwork
from machines.hosts import CA, CERT_DIR, make_ca, render
from machines.images import ensure_image, fleet_image
from machines.machines import Machine, network_namespace
from support import require_tool

pytestmark = pytest.mark.machines

APP_PORT = 8000
# Each fleet: its web app and which process manager each of its two app hosts runs.
FLEETS = {
    "uvicorn": ({"kind": "uvicorn", "workers": 2}, ("systemd", "supervisor")),
    "gunicorn": ({"kind": "gunicorn", "workers": 2, "threads": 4, "max_requests": 0}, ("supervisor", "systemd")),
}
DB_PASSWORD = "fleet-test-" + "x" * 8  # the database server's own, made here; the app reads it from a file
SECRET_KEY = "fleet-secret-key-" + "k" * 40


@dataclass
class Fleet:
    """The machines of one fleet, the rendered tree and what the control host holds."""

    name: str
    lb: Machine
    apps: list[Machine]
    db: Machine
    addresses: dict[str, str]  # machine name -> address
    managers: tuple[str, ...]
    rendered: Path
    ca: CA
    control: str
    control_address: str
    tmp: Path
    runs: list[str] = field(default_factory=list)
    media: Path = Path()  # the shared media root, on this host
    converged_in: float = 0.0  # seconds the first run took

    @property
    def lb_address(self) -> str:
        return self.addresses[self.lb.name]

    def app_address(self, index: int) -> str:
        return self.addresses[self.apps[index].name]

    # -- the control host

    def playbook(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        """`ansible-playbook site.yml` from the rendered ansible/ folder, as the README says, in the
        control host's namespace."""
        argv = ["ip", "netns", "exec", self.control, require_tool("ansible-playbook"), "site.yml",
                "-i", "inventory.yml", "-i", str(self.tmp / "managers.yml"), "-e", f"@{self.tmp / 'operator.yml'}",
                *args]
        done = subprocess.run(argv, cwd=self.rendered / "ansible", env=self.ansible_env(), capture_output=True,
                              text=True, timeout=timeout)
        self.runs.append(done.stdout)
        if check and done.returncode != 0:
            raise AssertionError(f"ansible-playbook {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
        return done

    def ansible_env(self) -> dict[str, str]:
        home = self.tmp / "home"
        return {"PATH": f"{Path(require_tool('ansible-playbook')).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8", "HOME": str(home), "ANSIBLE_HOME": str(home / ".ansible"),
                "ANSIBLE_LOCAL_TEMP": str(home / ".ansible-tmp"), "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_PRIVATE_KEY_FILE": str(self.tmp / "key"), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}

    # -- a client on the private network, talking to the load balancer

    def connection(self, timeout: float = 10.0) -> http.client.HTTPSConnection:
        return client.PinnedHTTPSConnection(DOMAIN, 443, address=self.lb_address, timeout=timeout,
                                            context=client.tls_context(self.ca.cert))

    def fetch(self, path: str, *, method: str = "GET", body: bytes | None = None,
              headers: dict[str, str] | None = None) -> client.Response:
        """One request on a fresh connection from the control host, through the load balancer."""
        with network_namespace(self.control):
            conn = self.connection()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                reply = conn.getresponse()
                return client.Response(reply.status, reply.headers, reply.read())
            finally:
                conn.close()


class BrowserStream(RequestStream):
    """tests/live's request stream, resending as browsers do: a request that met a kept-alive
    connection closed before any byte of an answer is sent again once, on a new connection
    (RFC 9112, 9.3.1). An nginx reload closes its old workers' idle connections, and the rolling
    deploy reloads nginx four times; such resends are counted, and any other error is a failure."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__(fleet)
        self.resent = 0
        self.hosts: list[str] = []

    def connect(self) -> http.client.HTTPConnection:
        return self.stack.connection()

    def run(self) -> None:
        with network_namespace(self.stack.control):
            conn, used = self.connect(), False
            while not self.stopping.is_set():
                try:
                    reply = client.send(conn, "/whoami/")
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                    conn.close()
                    conn = self.connect()
                    if used:
                        self.resent += 1
                        used = False
                        continue
                    self.failures.append(repr(e))
                    continue
                except (OSError, http.client.HTTPException) as e:
                    self.failures.append(repr(e))
                    conn.close()
                    conn, used = self.connect(), False
                    continue
                used = True
                if reply.status != 200:
                    self.failures.append(f"{reply.status} {reply.body[:200]!r}")
                else:
                    self.pids.append(reply.json()["pid"])
                    self.hosts.append(reply.json()["hostname"])
            conn.close()


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP of an ansible-playbook run: host -> {ok, changed, unreachable, failed, ...}."""
    found = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            found[match[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match[2])}
    return found


def changed_tasks(output: str) -> list[str]:
    """The tasks that reported a change ("changed: [host]"), with the task's name."""
    task, found = "", []
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            found.append(f"{task}: {line}")
    return found


def fleet_spec(app_server: dict, lb: str, apps: list[str], db: str) -> dict:
    """Production-shaped: nothing in it knows it runs in a test."""
    return {
        "version": 1, "name": NAME, "domain": DOMAIN, "aliases": [ALIAS],
        "django": {"project": PROJECT, "database": {"engine": "postgresql", "name": NAME, "user": NAME, "host": db}},
        "app_server": {**app_server, "graceful_timeout": 10, "trusted_proxies": [lb]},
        "upstream": {"servers": [{"address": f"{a}:{APP_PORT}"} for a in apps]},
        "tls": {"mode": "files", "certificate": f"{CERT_DIR}/fullchain.pem",
                "certificate_key": f"{CERT_DIR}/privkey.pem"},
        "nginx": {"version": "1.26"},
        "media": {"shared": True},
        "process_manager": "both",
        "background": [{"name": "heartbeat", "command": "manage.py heartbeat"}],
        "hosts": {"nginx": [lb], "ssh_user": "root"},
    }


def project_archive(path: Path, release: str) -> Path:
    """The project as `git archive` would pack it (every file dated at the release's commit), with
    testsite/release.py saying *release*."""
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(DJPROJECT.rglob("*")):
            if "__pycache__" in file.parts or file.name == "db.sqlite3" or not file.is_file():
                continue
            data = file.read_bytes()
            if file.name == "release.py":
                data = data.replace(b'RELEASE = "1"', f'RELEASE = "{release}"'.encode())
            info = tarfile.TarInfo(str(file.relative_to(DJPROJECT)))
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000 + 86_400 * int(release)
            tar.addfile(info, io.BytesIO(data))
    return path


def authorize(machine: Machine, public_key: str) -> None:
    machine.write("/root/.ssh/authorized_keys", public_key, 0o600)
    (machine.root / "root/.ssh").chmod(0o700)


def mask(machine: Machine, unit: str) -> None:
    link = machine.root / "etc/systemd/system" / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/dev/null")


def set_up_database(db: Machine, network: str) -> None:
    """PostgreSQL as an operator sets it up for the app hosts: a role, a database, the private network admitted."""
    db.run(f"""set -e
conf=$(ls -d /etc/postgresql/*/main)
echo "listen_addresses = '*'" > $conf/conf.d/listen.conf
echo "host {NAME} {NAME} {network}.0/24 scram-sha-256" >> $conf/pg_hba.conf
systemctl restart postgresql
for i in $(seq 50); do runuser -u postgres -- pg_isready -q && break; sleep 0.2; done
runuser -u postgres -- psql -q -c "CREATE ROLE {NAME} LOGIN PASSWORD '{DB_PASSWORD}'" -c "CREATE DATABASE {NAME} OWNER {NAME}"
""", timeout=120)


@dataclass
class Bare:
    """A fleet's machines, booted, before anything is installed."""

    name: str
    machine: dict[str, Machine]
    address: dict[str, str]
    media: Path
    tmp: Path


def boot_bare(which: str, index: int, testbed: PrivateNetwork, image: Path, tmp: Path, public_key: str) -> Bare:
    """Four machines on the private network: lb, app1, app2, db (PostgreSQL masked on all but db)."""
    roles = ["lb", "app1", "app2", "db"]
    names = {role: machines.name(f"{which[:4]}-{role}") for role in roles}
    media = machines.STATE / machines.name(f"{which[:4]}-media")
    media.mkdir(parents=True, exist_ok=True)
    address = {r: testbed.network.join(names[r], 30 + 10 * index + i) for i, r in enumerate(roles)}
    # The shared media root, and what a host's root may do that nspawn withholds by default:
    # netlink to nftables (the supervisor hosts' firewall table), bpf() for systemd's IP
    # address filters (the socket unit's IPAddressAllow=).
    options = (f"--bind={media}:/srv/{NAME}/media", "--capability=CAP_NET_ADMIN", "--system-call-filter=bpf")
    machine = {r: Machine(names[r], image, names[r], options=options if r != "db" else ()) for r in roles}
    for role, m in machine.items():
        m.mount()
        authorize(m, public_key)
        if role != "db":
            mask(m, "postgresql.service")
    for m in machine.values():
        m.boot()
    return Bare(which, machine, address, media, tmp)


def converge(bare: Bare, control: str, control_address: str, subnet: str) -> Fleet:
    """What the operator does before the first run, then the first run of the playbook."""
    machine, address, tmp = bare.machine, bare.address, bare.tmp
    app_server, managers = FLEETS[bare.name]
    set_up_database(machine["db"], subnet)
    ca = make_ca(tmp / "ca")
    lb_cert = machine["lb"].root / CERT_DIR.lstrip("/")
    lb_cert.mkdir(parents=True)
    shutil.copy(ca.leaf, lb_cert / "fullchain.pem")
    shutil.copy(ca.key, lb_cert / "privkey.pem")
    (lb_cert / "privkey.pem").chmod(0o600)
    for role in ("lb", "app1", "app2"):  # the stamp of apt's last update, which the apt module reads
        machine[role].run("install -d /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp")
    spec = fleet_spec(app_server, address["lb"], [address["app1"], address["app2"]], address["db"])
    rendered = render(spec, tmp / "deploy")
    (tmp / "managers.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        address["app1"]: {"djdeploy_process_manager": managers[0]},
        address["app2"]: {"djdeploy_process_manager": managers[1]}}}}))
    write_operator_vars(tmp, "1")
    addresses = {m.name: address[r] for r, m in machine.items()}
    fleet = Fleet(bare.name, machine["lb"], [machine["app1"], machine["app2"]], machine["db"], addresses, managers,
                  rendered, ca, control, control_address, tmp, media=bare.media)
    started = time.monotonic()
    fleet.playbook()
    fleet.converged_in = time.monotonic() - started
    return fleet


def each(fleets: dict[str, Fleet], check) -> dict[str, object]:
    """Run *check* on every fleet at once (each in a thread); raise the first failure, naming its fleet."""
    with ThreadPoolExecutor(len(fleets)) as pool:
        futures = {name: pool.submit(check, fleet) for name, fleet in fleets.items()}
    results = {}
    for name, future in futures.items():
        try:
            results[name] = future.result()
        except AssertionError as e:
            raise AssertionError(f"fleet {name}: {e}") from e
    return results


@pytest.fixture(scope="module")
def fleets(testbed: PrivateNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fleet]]:
    """Every fleet's machines booted bare, then converged by one run of the playbook, the fleets side by side."""
    image = ensure_image(fleet_image())
    tmp = tmp_path_factory.mktemp("fleets")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "djdeploy-fleet-test", "-f",
                    str(tmp / "key")], check=True, capture_output=True, timeout=30)
    public_key = (tmp / "key.pub").read_text()
    bares: list[Bare] = []
    try:
        for index, which in enumerate(FLEETS):
            # From this thread: each nspawn gets SIGTERM (a clean poweroff) when the thread that
            # started it ends, which is meant to be the test process.
            home = tmp / which
            home.mkdir()
            shutil.copy(tmp / "key", home / "key")
            bares.append(boot_bare(which, index, testbed, image, home, public_key))
        with ThreadPoolExecutor(len(bares)) as pool:
            futures = [pool.submit(converge, b, testbed.control, testbed.control_address, testbed.network.subnet)
                       for b in bares]
        yield {f.name: f for f in (future.result() for future in futures)}
    finally:
        every = [m for b in bares for m in b.machine.values()]
        with ThreadPoolExecutor(max(len(every), 1)) as pool:
            list(pool.map(lambda m: m.poweroff(), every))
        for m in every:
            m.close()
            testbed.network.leave(m.name)
        for b in bares:
            shutil.rmtree(b.media, ignore_errors=True)


def write_operator_vars(tmp: Path, release: str) -> None:
    """What the README's operator gives the playbook: the project's tarball and the secrets (a vault file's content)."""
    archive = project_archive(tmp / f"app-{release}.tar.gz", release)
    (tmp / "operator.yml").write_text(yaml.safe_dump({
        "djdeploy_code_archive": str(archive),
        "djdeploy_secret_values": {"DJANGO_SECRET_KEY": SECRET_KEY, "DATABASE_PASSWORD": DB_PASSWORD}}))


def unanswered(fleet: Fleet) -> str:
    """For a failure message: the load balancer's access-log lines of the requests nginx answered
    itself (which app hosts it tried, and what each did), and the end of its error log."""
    time.sleep(6)  # the access log's buffer is flushed every 5 s
    logs = fleet.lb.root / "var/log/nginx"
    access = (logs / f"{NAME}.access.log").read_text(errors="replace").splitlines()
    errors = (logs / f"{NAME}.error.log").read_text(errors="replace").splitlines()
    answered_by_nginx = [line for line in access if re.search(r'" 50[234] ', line)]
    return "\n".join(["nginx's own answers:", *answered_by_nginx[-10:], "its error log:", *errors[-20:]])


def whoami(fleet: Fleet, requests: int = 20) -> list[dict]:
    """/whoami/ over *requests* fresh connections through the load balancer."""
    return [fleet.fetch("/whoami/").json() for _ in range(requests)]


# -- converged from bare machines

def test_both_app_hosts_answer_through_the_load_balancer(fleets: dict[str, Fleet]) -> None:
    for fleet in fleets.values():
        seen = whoami(fleet)
        assert {s["hostname"] for s in seen} == {m.name for m in fleet.apps}, fleet.name
        assert {(s["secure"], s["host"], s["remote_addr"]) for s in seen} == {(True, DOMAIN, fleet.control_address)}


def test_each_app_host_runs_its_process_manager(fleets: dict[str, Fleet]) -> None:
    for fleet in fleets.values():
        for app, manager in zip(fleet.apps, fleet.managers):
            if manager == "systemd":
                assert app.run(f"systemctl is-active {NAME}-web.socket {NAME}-heartbeat.service").stdout.split() == [
                    "active", "active"]
                # (supervisor is in the image every machine boots from, with nothing of the site's)
                assert not (app.root / f"etc/supervisor/conf.d/{NAME}.conf").exists()
            else:
                status = app.run("supervisorctl status").stdout
                assert re.search(rf"^({NAME}-web:\S+|{NAME}:{NAME}-web)\s+RUNNING", status, re.M), status
                assert re.search(rf"^{NAME}:{NAME}-heartbeat\s+RUNNING", status, re.M), status
                assert app.run(f"systemctl is-enabled {NAME}-web.socket", check=False).stdout.strip() != "enabled"


def test_static_files_are_on_the_load_balancer(fleets: dict[str, Fleet]) -> None:
    """collectstatic ran on the app hosts; the load balancer serves every hashed name the pages use."""
    for fleet in fleets.values():
        manifest = json.loads((fleet.lb.root / f"srv/{NAME}/static/staticfiles.json").read_text())
        hashed = manifest["paths"]["css/site.css"]
        served = fleet.fetch(f"/static/{hashed}", headers={"Accept-Encoding": "gzip"})
        assert served.status == 200 and served.header("Content-Encoding") == "gzip"
        assert "immutable" in (served.header("Cache-Control") or "")
        for app in fleet.apps:   # the app hosts name the same files
            app_manifest = json.loads((app.root / f"srv/{NAME}/static/staticfiles.json").read_text())
            assert app_manifest["paths"]["css/site.css"] == hashed


def test_uploads_from_every_app_host_are_served_by_the_load_balancer(fleets: dict[str, Fleet]) -> None:
    for fleet in fleets.values():
        stored: dict[str, str] = {}
        for i in range(12):
            content = f"upload {i}\n"
            reply = fleet.fetch(f"/upload/?name=fleet-{i}.txt", method="POST", body=content.encode(),
                                headers={"Content-Type": "text/plain"})
            assert reply.status == 200, reply.body[:300]
            stored[reply.json()["url"]] = content
        for url, content in stored.items():
            served = fleet.fetch(url)
            assert served.status == 200 and served.body.decode() == content
        assert len(list(fleet.media.glob("fleet-*.txt"))) == 12   # one shared root
        # Both app hosts took some: the load balancer's access log names the upstream of each
        # (flushed within 5 s).
        log = fleet.lb.root / f"var/log/nginx/{NAME}.access.log"

        def uploads() -> list[str]:
            text = log.read_text() if log.exists() else ""
            return re.findall(r'"POST /upload/\?name=fleet-\d+\.txt [^"]*" 200 .*? upstream_addr="([^"]+)"', text)

        took = wait_for(lambda: (found := uploads()) and len(found) == 12 and found, 15, "12 uploads in the access log")
        assert set(took) == {f"{fleet.app_address(i)}:{APP_PORT}" for i in range(len(fleet.apps))}


def test_the_database_is_shared(fleets: dict[str, Fleet]) -> None:
    """Sessions written through either host land in the one database (migrate ran once, on the singleton)."""
    for fleet in fleets.values():
        keys = {fleet.fetch("/remember/").json()["session"] for _ in range(6)}
        rows = fleet.db.run(f"runuser -u postgres -- psql -At -d {NAME} -c 'select session_key from django_session'")
        assert keys <= set(rows.stdout.split())


def test_an_app_port_admits_only_the_load_balancer(fleets: dict[str, Fleet]) -> None:
    """From the control host (not a trusted proxy) the app port answers nothing; from the load balancer it does."""
    for fleet in fleets.values():
        for index in range(len(fleet.apps)):
            address, manager = fleet.app_address(index), fleet.managers[index]
            with network_namespace(fleet.control):
                with pytest.raises(OSError):
                    with socket.create_connection((address, APP_PORT), timeout=2) as s:
                        s.sendall(f"GET /healthz HTTP/1.0\r\nHost: {DOMAIN}\r\n\r\n".encode())
                        answer = s.recv(100)
                        if not answer:
                            raise ConnectionResetError("closed without an answer")
                        pytest.fail(f"{address}:{APP_PORT} ({manager}) answered the control host: {answer!r}")
            answer = fleet.lb.run(f"curl -sS -o /dev/null -w '%{{http_code}}' -H 'Host: {DOMAIN}' "
                                  f"-H 'X-Forwarded-Proto: https' http://{address}:{APP_PORT}/healthz").stdout
            assert answer == "200", f"{fleet.name}: {address} ({manager}) from the load balancer: {answer}"


# -- a converged fleet

def test_a_second_run_changes_nothing(fleets: dict[str, Fleet]) -> None:
    def second(fleet: Fleet) -> None:
        again = fleet.playbook()
        assert changed_tasks(again.stdout) == [], "\n".join(changed_tasks(again.stdout))
        assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap(again.stdout).values()), again.stdout[-3000:]

    each(fleets, second)


def test_check_mode_reports_no_change(fleets: dict[str, Fleet]) -> None:
    def checked(fleet: Fleet) -> None:
        done = fleet.playbook("--check", "--diff")
        assert changed_tasks(done.stdout) == [], "\n".join(changed_tasks(done.stdout))
        assert all(r["changed"] == 0 for r in recap(done.stdout).values())

    each(fleets, checked)


# -- deploys and failures under load

def test_a_rolling_deploy_under_load_loses_no_request(fleets: dict[str, Fleet]) -> None:
    """The playbook with a new release of the project, while two clients send requests through the
    load balancer: every request answered, every host on the new release, one host at a time."""
    def deploy(fleet: Fleet) -> str:
        streams = [BrowserStream(fleet) for _ in range(2)]
        write_operator_vars(fleet.tmp, "2")
        result: dict[str, subprocess.CompletedProcess] = {}
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(lambda: result.setdefault("run", fleet.playbook(check=False)))
            run_streams(streams, lambda: running.done() and all(len(s.pids) > 50 for s in streams), 900,
                        "the rolling deploy")
        assert result["run"].returncode == 0, result["run"].stdout[-6000:]
        assert [f for s in streams for f in s.failures] == [], unanswered(fleet)
        assert {s["release"] for s in whoami(fleet)} == {"2"}
        # One host at a time: each left nginx's rotation and came back.
        drained = [line for line in changed_tasks(result["run"].stdout) if "Take the host out of nginx's rotation" in line]
        assert len(drained) == len(fleet.apps), drained
        return f"{sum(len(s.pids) for s in streams)} requests, {sum(s.resent for s in streams)} resent"

    print(each(fleets, deploy))


def test_an_app_host_powered_off_under_load_loses_no_request(fleets: dict[str, Fleet]) -> None:
    """The second app host powers off (its programs stop, then nothing listens: connections are
    refused) while two clients send requests; nginx sends each refused one to the first host."""
    def power_off(fleet: Fleet) -> None:
        streams = [BrowserStream(fleet) for _ in range(2)]
        victim = fleet.apps[1]
        state: dict[str, int] = {}

        def done() -> bool:
            if "off" not in state and all(len(s.pids) >= 20 for s in streams):
                victim.poweroff()
                state["off"] = sum(len(s.pids) for s in streams)
            return "off" in state and sum(len(s.pids) for s in streams) >= state["off"] + 200

        run_streams(streams, done, 120, "requests after the host went away")
        assert [f for s in streams for f in s.failures] == [], unanswered(fleet)
        assert {s["hostname"] for s in whoami(fleet, 6)} == {fleet.apps[0].name}

    each(fleets, power_off)
