"""The running stack: supervisord and nginx started from wrappers around the rendered files, and stopped.

The wrappers stand where the host's own files would: ``supervisord.conf`` as Debian's supervisor
package ships it (a unix control socket, no TCP one) with an ``[include]`` of the rendered program
files, and ``nginx.conf`` as Debian's nginx package ships it, with only its paths moved into the
temporary tree and ``include`` pointed at the rendered files.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import socket
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypeVar

from live import client
from live.host import APP_USER, free_ports, has_ipv6_loopback, make_certificate
from live.layout import (ALIAS, DOMAIN, Ports, Site, install_site, read_web_program, render_site,
                         rendered_files)

T = TypeVar("T")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PR_SET_PDEATHSIG = 1  # prctl(2)


def wait_for(check: Callable[[], Optional[T]], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call *check* until it returns something truthy; raise TimeoutError naming *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, client.http.client.HTTPException) as e:
            result, last_error = None, e
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:g}s" + (f" (last error: {last_error!r})" if last_error else ""))


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the test process dies, so nothing outlives a killed run."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervisord_conf(site: Site) -> str:
    """The host's supervisord.conf: control over a root-only unix socket, programs from the rendered files."""
    home = site.base / "supervisor"
    return f"""\
[unix_http_server]
file={home}/supervisor.sock
chmod=0700

[supervisord]
nodaemon=true
user=root
logfile={home}/supervisord.log
pidfile={home}/supervisord.pid
childlogdir={home}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{home}/supervisor.sock

[include]
files = {site.etc}/supervisor/conf.d/*.conf
"""


DEBIAN_NGINX_CONF = Path("/etc/nginx/nginx.conf")


def nginx_conf(site: Site) -> str:
    """The host's own /etc/nginx/nginx.conf (Debian's, with its `gzip on;` and modules), its paths moved
    into the temporary tree and its site includes pointed at the rendered files; a copy of Debian 12's
    when the host has none."""
    prefix = site.base / "nginx"
    text = DEBIAN_NGINX_CONF.read_text() if DEBIAN_NGINX_CONF.exists() else DEBIAN_12_NGINX_CONF
    temp = "".join(f"\n    {kind}_temp_path {prefix}/temp/{kind};"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    replacements = [
        (r"^pid\s+\S+;", f"pid {prefix}/nginx.pid;\ndaemon off;"),
        (r"^error_log\s+\S+;", f"error_log {site.nginx_log}/error.log;"),
        (r"^(\s*)access_log\s+\S+;", rf"\g<1>access_log {site.nginx_log}/access.log;"),
        (r"^(\s*)include\s+/etc/nginx/conf\.d/\*\.conf;", rf"\g<1>include {prefix}/conf.d/*.conf;"),
        (r"^\s*include\s+/etc/nginx/sites-enabled/\*;\n", ""),
        (r"^http\s*\{", "http {" + temp),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.M)
        if count != 1:
            raise RuntimeError(f"{DEBIAN_NGINX_CONF}: no line matching {pattern!r} to move into the test tree")
    return text


# Debian 12's /etc/nginx/nginx.conf, comments left out.
DEBIAN_12_NGINX_CONF = """\
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
    worker_connections 768;
}

http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log /var/log/nginx/access.log;
    gzip on;
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
"""


def link_modules(prefix: Path) -> None:
    """Debian's modules-enabled files load `modules/NAME.so` relative to nginx's prefix: give *prefix* that folder."""
    modules = Path("/usr/share/nginx/modules")
    if modules.exists() and not (prefix / "modules").exists():
        (prefix / "modules").symlink_to(modules.resolve())


def install_wrappers(site: Site) -> None:
    """Write both wrappers, and copy the rendered nginx files beside nginx's."""
    (site.base / "supervisor").mkdir(mode=0o700, exist_ok=True)
    (site.base / "supervisor" / "supervisord.conf").write_text(supervisord_conf(site))
    prefix = site.base / "nginx"
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    (prefix / "temp").mkdir(exist_ok=True)
    link_modules(prefix)
    (prefix / "nginx.conf").write_text(nginx_conf(site))
    for path in rendered_files(site, "nginx"):
        (prefix / "conf.d" / path.name).write_text(listen_on_loopback(path.read_text()))


def listen_on_loopback(text: str) -> str:
    """Bind the rendered listeners to loopback: `listen PORT` on 127.0.0.1, `listen [::]:PORT` on [::1].

    The spec has no listen address (nginx listens on every interface); a test must not open ports
    beyond the machine. The rewrite is the same in every file, so which server is the default one
    for an address:port, the thing under test, does not change.
    """
    text = re.sub(r"^(\s*listen\s+)(\d+)(?=[\s;])", r"\g<1>127.0.0.1:\2", text, flags=re.M)
    return re.sub(r"^(\s*listen\s+)\[::\]:(\d+)(?=[\s;])", r"\g<1>[::1]:\2", text, flags=re.M)


class Stack:
    """supervisord running the app, nginx in front of it; start() then stop(), which never raises."""

    def __init__(self, site: Site, nginx: str) -> None:
        self.site = site
        self.nginx = nginx
        self.supervisord: Optional[subprocess.Popen] = None
        self.nginx_master: Optional[subprocess.Popen] = None
        self.extra: list[subprocess.Popen] = []
        self.seen_pids: set[int] = set()

    # -- starting

    def start(self, timeout: float = 40) -> None:
        """Start supervisord, then nginx once the app is up; return when the site answers over HTTPS."""
        self.check_nginx_config()
        self.start_manager()
        wait_for(self.all_running, timeout, "every supervised program running")
        if self.site.pair:
            self.start_second_app_server()  # before nginx, which would otherwise mark it failed for a while
        self.start_nginx()
        wait_for(lambda: self.fetch("/whoami/").status == 200, timeout, "the site answering 200 over HTTPS")

    def check_nginx_config(self) -> None:
        """`nginx -t` on the wrapper: fail with nginx's own message rather than a timeout."""
        done = subprocess.run(self._nginx_argv("-t"), capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{done.stderr}")

    def start_manager(self) -> None:
        """Start the process manager that runs the app."""
        self.start_supervisord()

    def start_supervisord(self) -> None:
        """supervisord in the foreground, as root (it starts the programs as django.user)."""
        home = self.site.base / "supervisor"
        with open(self.supervisord_log, "ab") as out:
            self.supervisord = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-c", str(home / "supervisord.conf")],
                env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        wait_for(lambda: self._supervisord_alive() and (home / "supervisor.sock").exists(), 15,
                 "supervisord's control socket")

    @property
    def supervisord_log(self) -> Path:
        return self.site.base / "supervisor" / "supervisord.out"

    def _supervisord_alive(self) -> bool:
        """True while supervisord runs; if it exited (a config it refused), raise with what it said."""
        if self.supervisord is not None and self.supervisord.poll() is not None:
            said = self.supervisord_log.read_text()[-2000:]
            raise RuntimeError(f"supervisord exited ({self.supervisord.returncode}): {said}")
        return True

    def start_nginx(self) -> None:
        """nginx's master in the foreground (daemon off), as root; its workers run as www-data."""
        log = self.site.nginx_log / "nginx.out"
        with open(log, "ab") as out:
            self.nginx_master = subprocess.Popen(self._nginx_argv(), stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                                 preexec_fn=die_with_parent)
        ports = (self.site.ports.http, self.site.ports.https)
        wait_for(lambda: all(is_listening(port) for port in ports), 15, "nginx listening")

    def _nginx_argv(self, *extra: str) -> list[str]:
        prefix = self.site.base / "nginx"
        return [self.nginx, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e",
                str(self.site.nginx_log / "error.log"), *extra]

    def stop_manager(self) -> None:
        """Stop the process manager and what it runs (stop() then kills whatever is left)."""
        if self.supervisord and self.supervisord.poll() is None:
            try:
                self.supervisorctl("shutdown", timeout=40)
            except Exception:  # noqa: BLE001
                pass
        _stop_process(self.supervisord, signal.SIGTERM, 40)

    # -- supervisor

    def supervisorctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run supervisorctl against this stack's supervisord."""
        conf = self.site.base / "supervisor" / "supervisord.conf"
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *args],
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict[str, tuple[str, Optional[int]]]:
        """Each supervised process: its state and pid (None unless running)."""
        found: dict[str, tuple[str, Optional[int]]] = {}
        for line in self.supervisorctl("status").stdout.splitlines():
            match = re.match(r"^(\S+)\s+([A-Z]+)\s*(?:pid (\d+))?", line)
            if match:
                pid = int(match[3]) if match[3] else None
                found[match[1]] = (match[2], pid)
                if pid:
                    self.seen_pids.add(pid)
        return found

    def all_running(self) -> bool:
        """Whether every supervised process is RUNNING (and there is at least one)."""
        states = self.status()
        return bool(states) and all(state == "RUNNING" for state, _ in states.values())

    def web_processes(self) -> dict[str, int]:
        """The web program's processes (name as supervisorctl knows it → pid)."""
        return {name: pid for name, (_, pid) in self.status().items() if "web" in name and pid}

    # -- requests

    def fetch(self, path: str, *, name: str = DOMAIN, scheme: str = "https", **kwargs) -> client.Response:
        """One request to this stack's nginx, trusting the throwaway certificate."""
        port = self.site.ports.https if scheme == "https" else self.site.ports.http
        kwargs.setdefault("context", client.tls_context(self.site.cert))
        return client.fetch(scheme, name, port, path, **kwargs)

    def start_second_app_server(self) -> None:
        """The second "host": the rendered web program run directly (not supervised, so a kill is final)."""
        self.extra += run_web_program(self.site, ("127.0.0.2", self.site.ports.app), "second-host")

    def second_server_pids(self) -> set[int]:
        """The processes of the second app server (launchers, masters and their workers)."""
        return process_tree({proc.pid for proc in self.extra})

    def kill_second_server(self) -> None:
        """SIGKILL the second app server, every process of it."""
        for proc in self.extra:
            _kill_group(proc.pid)
        for proc in self.extra:
            proc.wait(10)

    def app_log(self) -> str:
        """Everything the web program wrote so far (stdout and stderr logs the rendered files configure)."""
        texts = []
        for path in sorted(self.site.log.glob("*")) + sorted((self.site.base / "supervisor").glob("*.log")):
            if path.is_file():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def supervisor_log_size(self) -> int:
        """Where supervisord's own log ends now: pass it to supervisor_events later."""
        return (self.site.base / "supervisor" / "supervisord.log").stat().st_size

    def supervisor_events(self, start: int = 0) -> list[str]:
        """What supervisord logged about its processes (spawned, exited, gave up) from byte *start* on."""
        with open(self.site.base / "supervisor" / "supervisord.log", "rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace").splitlines()

    # -- stopping

    def stop(self) -> None:
        """Stop nginx and supervisord and every process they started; never raises."""
        try:
            self.status()
        except Exception:  # noqa: BLE001 - stopping must go on whatever state the stack is in
            pass
        _stop_process(self.nginx_master, signal.SIGTERM, 10)  # SIGTERM: nginx's fast shutdown
        try:
            self.stop_manager()
        except Exception:  # noqa: BLE001
            pass
        for proc in self.extra:
            _stop_process(proc, signal.SIGKILL, 5)
        app_uid = pwd.getpwnam(APP_USER).pw_uid
        for pid in self.seen_pids:
            if _owner(pid) == app_uid:  # still the app's process, not a reused pid
                _kill_group(pid)


def run_web_program(site: Site, address: tuple[str, int], label: str,
                    env: Optional[dict[str, str]] = None,
                    tls: Optional[tuple[Path, Path]] = None) -> list[subprocess.Popen]:
    """Run the rendered web program outside supervisor, as its user, listening on *address*; *env* overrides.

    With *tls* (certificate, key; readable by the app's user), the app server itself serves HTTPS.
    """
    program = read_web_program(site)
    user = pwd.getpwnam(program.user)
    environment = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", **program.environment, **(env or {})}
    listener, argv, count = None, program.argv, 1
    if program.kind == "fcgi-program":
        # What supervisor does for [fcgi-program]: one listening socket, given to each process as fd 0.
        listener = socket.create_server(address, backlog=128)
        count = program.numprocs
    else:
        # gunicorn: command-line settings override the config file's (raw_env included).
        argv = [*argv, "--bind", f"{address[0]}:{address[1]}",
                *(f"--env={key}={value}" for key, value in sorted((env or {}).items()))]
    if tls and program.kind == "fcgi-program":
        # The rendered uvicorn launcher ("python launcher.py"), uvicorn's own certificate options added.
        python, launcher = argv
        code = ("import runpy, sys; launcher = runpy.run_path(sys.argv[1], run_name='launcher'); "
                "launcher['SETTINGS'].update(ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[3]); launcher['main']()")
        argv = [python, "-c", code, launcher, str(tls[0]), str(tls[1])]
    elif tls:
        argv = [*argv, "--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    started = []
    with open(site.log / f"{label}.log", "ab") as out:
        for _ in range(count):
            started.append(subprocess.Popen(
                argv, cwd=program.directory, env=environment, user=user.pw_uid, group=user.pw_gid,
                extra_groups=[], stdin=listener.fileno() if listener else subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent))
    if listener:
        listener.close()
    try:
        wait_for(lambda: is_listening(address[1], address[0]), 20, f"{label} listening on {address[0]}:{address[1]}")
    except BaseException:
        for proc in started:
            _stop_process(proc, signal.SIGKILL, 5)
        raise
    return started


def is_listening(port: int, address: str = client.LOOPBACK) -> bool:
    """Whether something accepts TCP connections on *address*:*port*."""
    try:
        socket.create_connection((address, port), 1).close()
    except OSError:
        return False
    return True


def _owner(pid: int) -> Optional[int]:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _stop_process(proc: Optional[subprocess.Popen], sig: int, grace: float) -> None:
    """Signal *proc*, wait up to *grace* seconds, then SIGKILL its whole process group."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(grace)
        except (OSError, subprocess.TimeoutExpired):
            pass
    _kill_group(proc.pid)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group this harness started (supervisor puts each program in its own group)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class Host:
    """What every stack on this machine shares: tools, the app's venv, a certificate, a temporary tree."""

    base: Path
    nginx: str
    tmpfiles: str
    venv: Path
    cert: Path
    key: Path
    ipv6: bool


def prepare_host(base: Path, *, nginx: str, tmpfiles: str, venv: Path) -> Host:
    """Make the throwaway certificate under *base* and note whether IPv6 loopback exists."""
    tls = base / "tls"
    tls.mkdir(mode=0o700)
    cert, key = make_certificate(tls, [DOMAIN, ALIAS])
    return Host(base, nginx, tmpfiles, venv, cert, key, has_ipv6_loopback())


def launch(host: Host, kind: str, *, pair: bool, app_server: Optional[dict] = None,
           manager: str = "supervisor", pm2: Optional[str] = None,
           static_server: str = "nginx") -> Stack:
    """Render, install and start one site; on any failure, stop what was started and re-raise.

    *manager* is the spec's process_manager (supervisor or pm2; *pm2* is then the pm2 command).
    """
    http, https, app = free_ports(3)
    ports = Ports(http=http, https=https, app=app)
    base = host.base / f"{kind}-{manager}-{'pair' if pair else 'socket'}-{ports.https}"
    base.mkdir()
    base.chmod(0o755)
    site = Site(base, kind, ports, pair, host.venv, host.cert, host.key, host.ipv6, app_server or {}, manager,
                static_server)
    render_site(site)
    install_site(site, host.tmpfiles)
    install_wrappers(site)
    if manager == "pm2":
        from live.pm2stack import Pm2Stack

        stack: Stack = Pm2Stack(site, host.nginx, pm2 or "pm2")
    else:
        stack = Stack(site, host.nginx)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    return stack


def probe_marker() -> str:
    """A string unique to one request, to look for in the app's log."""
    return f"probe-{uuid.uuid4().hex}"


def assert_app_never_saw(stack: Stack, marker: str) -> None:
    """Fail if the app's log shows *marker*, after proving the log does show a request that reached the app."""
    control = probe_marker()
    assert stack.fetch(f"/whoami/?{control}").status == 200
    wait_for(lambda: control in stack.app_log(), 10, "a control request in the app's access log")
    time.sleep(0.2)  # a worker logs after it has answered; let one still writing finish
    assert marker not in stack.app_log(), f"the app served a request that nginx should have answered ({marker})"


def process_tree(pids: set[int]) -> set[int]:
    """*pids* and every process descending from them, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found = set(pids) & set(parents)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more
