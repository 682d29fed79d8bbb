"""A site on a booted machine, installed by following its rendered INSTALL.md as an operator would.

The operator runs every shell block of the runbook, in order, as root, from the rendered directory
(copied into the machine), and does by hand only what the runbook asks them to do by hand: put the
project's code in place (the test project, with a requirements.txt) and the certificate (issued by
a throwaway CA the test client trusts). Step 1 runs in the host's network namespace, where the
package archive is reachable (its packages are already in the image, so it installs nothing new);
every other block runs inside the machine, network namespace included. The machine has no route
to a package index: the image's /etc/pip.conf points pip at the wheels baked into it, as a
site-local mirror would.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from live import client
from live.layout import (ALIAS, BULK_CSS, DJPROJECT, DOMAIN, MEDIA_FILES, NAME, PROJECT, REPO, SECRET_OUTSIDE,
                         SECRET_OUTSIDE_TEXT, STATIC_ONLY, bulk_css)
from live.test_resilience import RequestStream, run_streams
from machines.machines import Machine, network_namespace
from machines.runbook import Block, read_blocks

WORKERS = 2
# The web app, one machine each: gunicorn sync and gthread, gunicorn with the uvicorn worker (ASGI),
# uvicorn with one instance per worker on a shared socket; uWSGI (master and workers, threads), and
# Daphne and Hypercorn (one instance per worker, as uvicorn).
VARIANTS = {
    "sync": {"kind": "gunicorn", "workers": WORKERS, "max_requests": 0},
    "gthread": {"kind": "gunicorn", "workers": WORKERS, "threads": 4, "max_requests": 0},
    "asgi": {"kind": "gunicorn", "interface": "asgi", "workers": WORKERS, "max_requests": 0},
    "uvicorn": {"kind": "uvicorn", "workers": 3},
    "uwsgi": {"kind": "uwsgi", "workers": WORKERS, "threads": 2, "max_requests": 0},
    "daphne": {"kind": "daphne", "workers": WORKERS},
    "hypercorn": {"kind": "hypercorn", "workers": WORKERS},
}
# The servers that came later run on Debian 13 only: one release proves their units and runbook,
# and the suite stays short. uWSGI builds from source there (the runbook's compiler and headers).
NEWER_KINDS = ("uwsgi", "daphne", "hypercorn")
# The web app under pm2 instead of systemd (tests/machines/test_pm2_host.py), Debian 13 only.
PM2_VARIANT = "pm2"
VARIANTS[PM2_VARIANT] = {"kind": "gunicorn", "workers": WORKERS, "threads": 4, "max_requests": 0}
# The variants each release runs under systemd (tests/machines/test_systemd_hosts.py).
RELEASE_VARIANTS = {"bookworm": [v for v in VARIANTS if v not in (*NEWER_KINDS, PM2_VARIANT)],
                    "trixie": [v for v in VARIANTS if v != PM2_VARIANT]}
# One process per worker, each a unit instance on the shared socket (<name>-web@N.service).
INSTANCE_KINDS = ("uvicorn", "daphne", "hypercorn")
# A database outside the state directory /var/lib/<name>, whose name starts the same way.
DATABASE_BESIDE_STATE = f"/var/lib/{NAME}-db/db.sqlite3"
SWEEP_EVERY = "*:*:0/5"  # OnCalendar=: the periodic job runs every 5 s, so a test sees it run
BACKGROUND = [
    {"name": "heartbeat", "command": "manage.py heartbeat", "numprocs": 2},
    {"name": "sweep", "command": "manage.py clearsessions", "schedule": SWEEP_EVERY},
]
CERT_DIR = f"/etc/ssl/{NAME}"
DEPLOY_DIR = "/root/deploy"


def spec_data(variant: str, nginx_version: str, workers: Optional[int] = None) -> dict:
    """The spec of one variant: production-shaped; nothing in it knows it runs in a test."""
    app_server = dict(VARIANTS[variant])
    if workers is not None:
        app_server["workers"] = workers
    database = {"engine": "sqlite", **({"name": DATABASE_BESIDE_STATE} if variant == "gthread" else {})}
    return {
        "version": 1, "name": NAME, "domain": DOMAIN, "aliases": [ALIAS],
        "django": {"project": PROJECT, "database": database},
        "app_server": {**app_server, "graceful_timeout": 10},
        "tls": {"mode": "files", "certificate": f"{CERT_DIR}/fullchain.pem",
                "certificate_key": f"{CERT_DIR}/privkey.pem"},
        "nginx": {"version": nginx_version},
        "process_manager": "pm2" if variant == PM2_VARIANT else "systemd",
        # pm2 has no scheduler: the periodic job is left out there.
        "background": [b for b in BACKGROUND if variant != PM2_VARIANT or "schedule" not in b],
    }


def render(spec: dict, out: Path) -> Path:
    """`djdeploy render` of *spec* into *out*, as a user would; returns *out*."""
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    subprocess.run([sys.executable, "-m", "scaffold", "render", str(out.parent / f"{out.name}.yaml"), "--out",
                    str(out), "--force"], check=True, capture_output=True, text=True, timeout=60, cwd=REPO)
    return out


@dataclass(frozen=True)
class CA:
    """A throwaway certificate authority and the site's certificate it issued."""

    cert: Path
    leaf: Path
    key: Path


def make_ca(directory: Path) -> CA:
    """An EC CA, and a certificate for the site's names signed by it (the CA is not in the chain)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, leaf = (directory / n for n in ("ca.key", "ca.pem", "privkey.pem", "site.csr",
                                                          "fullchain.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *argv: subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=30)  # noqa: E731
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=djdeploy test bed CA", "-keyout", str(ca_key),
        "-out", str(ca))
    run("req", *ec, "-subj", f"/CN={DOMAIN}", "-keyout", str(key), "-out", str(csr))
    (directory / "ext").write_text(f"subjectAltName=DNS:{DOMAIN},DNS:{ALIAS}\nbasicConstraints=CA:FALSE\n"
                                   "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
        "-extfile", str(directory / "ext"), "-out", str(leaf))
    return CA(ca, leaf, key)


@dataclass(frozen=True)
class Ports:
    """nginx's listeners: the spec's defaults."""

    http: int = 80
    https: int = 443


@dataclass(frozen=True)
class SiteView:
    """What the live checks read of a site (as tests/live/layout.py's Site): ports, trust, its files."""

    kind: str
    root: Path  # the machine's root file system, seen from the host
    cert: Path  # the CA the client trusts
    ports: Ports

    @property
    def static(self) -> Path:
        return self.root / f"srv/{NAME}/static"

    @property
    def media(self) -> Path:
        return self.root / f"srv/{NAME}/media"

    @property
    def app(self) -> Path:
        return self.root / f"srv/{NAME}/app"


@dataclass
class Host:
    """One machine running one variant of the site; quacks like tests/live/stack.py's Stack for the checks."""

    machine: Machine
    variant: str
    release: str
    nginx_version: str
    address: str
    ca: CA
    rendered: Path
    control: str  # the client's network namespace
    log: list[str] = field(default_factory=list)

    @contextmanager
    def connected(self) -> Iterator[None]:
        """Connections made in the block (threads started in it too) go from the client's namespace here."""
        with network_namespace(self.control), client.server(self.address):
            yield

    @property
    def site(self) -> SiteView:
        return SiteView(VARIANTS[self.variant]["kind"], self.machine.root, self.ca.cert, Ports())

    @property
    def blocks(self) -> list[Block]:
        return read_blocks((self.rendered / "INSTALL.md").read_text())

    # -- the operator

    def install(self) -> None:
        """Every install block of INSTALL.md, in order, with the two things it asks for by hand."""
        self.copy_rendered()
        for block in self.blocks:
            if block.kind != "install":
                continue
            if block.step == 2 and "chown -R root:" in block.script:
                self.place_project()
            if block.step == 7 and "certificate in place" in block.script:
                self.place_certificate()
            self.operator(block.script, network=block.step != 1)
        self.place_test_files()

    def copy_rendered(self) -> None:
        """The `djdeploy render` output, where the operator runs the runbook from."""
        target = self.machine.root / DEPLOY_DIR.lstrip("/")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.rendered, target)

    def operator(self, script: str, *, network: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run one block as the runbook says: root, bash, from the rendered directory; fail on any error."""
        started = time.monotonic()
        try:
            done = self.machine.run(f"set -euo pipefail\ncd {DEPLOY_DIR}\n{script}", network=network, timeout=timeout)
        except subprocess.CalledProcessError as e:
            e.stderr = f"{e.stderr}\n--- the machine's journal ---\n{self.journal()}"
            raise
        self.log.append(f"$ {script}\n{done.stdout}{done.stderr}")
        if os.environ.get("DJDEPLOY_TESTBED_TRACE"):
            print(f"[{self.machine.name}] {time.monotonic() - started:5.1f} s  {script.splitlines()[0][:70]}")
        return done

    def journal(self, lines: int = 60) -> str:
        """The end of the machine's journal and its failed units: what a failure message needs."""
        return self.machine.run(f"systemctl --no-pager --failed; journalctl --no-pager -n {lines}",
                                check=False, timeout=30).stdout

    def place_project(self) -> None:
        """The project's code, as `git clone` would leave it: the test project under django.root."""
        app = self.site.app
        shutil.copytree(DJPROJECT, app, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"),
                        dirs_exist_ok=True)

    def place_certificate(self) -> None:
        """The chain and key where the runbook says (the key root's, 0600)."""
        directory = self.machine.root / CERT_DIR.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.ca.leaf, directory / "fullchain.pem")
        shutil.copy(self.ca.key, directory / "privkey.pem")
        (directory / "privkey.pem").chmod(0o600)

    def place_test_files(self) -> None:
        """Uploads as an attacker would leave them, a file only nginx can serve, one beside the roots."""
        files = {**{f"media/{n}": c for n, c in MEDIA_FILES.items()},
                 f"static/{STATIC_ONLY}": b"served by nginx from STATIC_ROOT\n",
                 f"static/{BULK_CSS}": bulk_css().encode(), SECRET_OUTSIDE: SECRET_OUTSIDE_TEXT}
        for path, content in files.items():
            self.machine.write(f"/srv/{NAME}/{path}", content, 0o640)
        names = " ".join(shlex.quote(f"/srv/{NAME}/{p}") for p in files if "/" in p)
        self.machine.run(f"chown {NAME} {names}")

    def deploy_new_code(self, release: str) -> None:
        """A deploy: new code in place, step 6 again, then the runbook's "load new code" block."""
        path = self.site.app / PROJECT / "release.py"
        path.write_text(path.read_text().replace('RELEASE = "1"', f'RELEASE = "{release}"'))
        for block in self.blocks:
            if block.step == 6 and block.kind == "install":
                self.operator(block.script)
        (deploy,) = [b for b in self.blocks if b.kind == "deploy"]
        self.operator(deploy.script)

    # -- what the checks ask

    def fetch(self, path: str, *, name: str = DOMAIN, scheme: str = "https", **kwargs) -> client.Response:
        """One request to this machine's nginx, trusting the throwaway CA."""
        kwargs.setdefault("context", client.tls_context(self.ca.cert))
        with self.connected():
            return client.fetch(scheme, name, 443 if scheme == "https" else 80, path, **kwargs)

    def app_log(self) -> str:
        """What the web app wrote: to the journal, or under pm2 to its log file."""
        if self.variant == PM2_VARIANT:
            return self.machine.run(f"cat /var/log/{NAME}/{NAME}-web.log", timeout=30).stdout
        return self.machine.run(f"journalctl --no-pager -o cat -u '{NAME}-web*'", timeout=30).stdout

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.machine.run(shlex.join(["systemctl", "--no-pager", *args]), check=check, timeout=90)

    def unit_pids(self, pattern: str) -> set[int]:
        """The pids (as the machine numbers them) in the cgroups of units matching *pattern*."""
        script = (f"for u in $(systemctl list-units --plain --no-legend --state=active '{pattern}' "
                  "| awk '{print $1}'); do cat \"/sys/fs/cgroup$(systemctl show -P ControlGroup $u)/cgroup.procs\"; "
                  "done")
        return {int(p) for p in self.machine.run(script).stdout.split()}

    def web_pids(self) -> set[int]:
        return self.unit_pids(f"{NAME}-web*.service")


def deploy_under_load(host: Host, web_pids: Callable[[], set[int]]) -> list[str]:
    """The runbook's deploy block (release "2") while two streams of requests run on kept-alive
    connections; returns once both are answered only by processes *web_pids* did not list before
    the deploy. Returns the requests that failed meanwhile."""
    streams = [RequestStream(host) for _ in range(2)]
    old: list[set[int]] = []  # the web processes just before the deploy, once it has started

    def deployed() -> bool:
        if not old:
            if not all(len(s.pids) >= 20 for s in streams):
                return False
            old.append(web_pids())
            host.deploy_new_code("2")
        return all(s.served_only_by_new_processes(old[0], 20) for s in streams)

    with host.connected():
        run_streams(streams, deployed, 60, "every request answered by new processes")
    return [f for s in streams for f in s.failures]
