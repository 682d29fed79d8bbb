"""What the live stack needs from the host: the app's unix user, its virtualenv, a certificate, free ports."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from scaffold.targets.runbook import APP_SERVER_PACKAGES, ASGI_WORKER_PACKAGES, STATIC_PACKAGES

APP_USER = "djdeploy-live"
# pyenv's Pythons live under /root (mode 0700), out of the app user's reach; the app runs on the system Python,
# as it would in production. Debian 12's python3 is 3.11, which Django 5.2 supports.
SYSTEM_PYTHON = "/usr/bin/python3"
# The app servers as the runbook installs them (uvicorn with its WebSocket library), Django, and the
# settings' static storage with Brotli (WhiteNoise's, whose middleware the benchmark also runs).
APP_PACKAGES = ("django>=5.2,<6", *(package for kind in sorted(APP_SERVER_PACKAGES)
                                     for package in APP_SERVER_PACKAGES[kind]),
                *ASGI_WORKER_PACKAGES, *STATIC_PACKAGES[True])
VENV_HOME = Path(os.environ.get("DJDEPLOY_LIVE_VENV_HOME", "/var/tmp/djdeploy-live"))


class HostNotReady(Exception):
    """The host lacks something the live stack needs (a tool, root, the venv module)."""


def ensure_app_user(name: str = APP_USER) -> pwd.struct_passwd:
    """The unprivileged account the app runs as, created as a system user when missing (needs root)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise HostNotReady(f"user {name!r} does not exist and only root can create it")
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True, timeout=30)
    return pwd.getpwnam(name)


def ensure_venv() -> Path:
    """The app's virtualenv, built once by the system Python and reused while its package list is unchanged."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise HostNotReady(f"{SYSTEM_PYTHON} is missing (Debian: python3, python3-venv)")
    key = hashlib.sha256("\n".join((os.path.realpath(SYSTEM_PYTHON), *APP_PACKAGES)).encode()).hexdigest()[:12]
    venv = VENV_HOME / f"venv-{key}"
    VENV_HOME.mkdir(parents=True, exist_ok=True)
    VENV_HOME.chmod(0o755)
    with open(VENV_HOME / ".lock", "w") as lock:
        # The benchmark and a test run may start together; one builds, the other waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            build_venv(venv)
    return venv


def build_venv(venv: Path) -> None:
    """Create *venv* with the system Python and install the app's packages into it."""
    shutil.rmtree(venv, ignore_errors=True)
    made = subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise HostNotReady(f"{SYSTEM_PYTHON} -m venv failed (Debian: install python3-venv): {made.stderr.strip()}")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *APP_PACKAGES],
                   check=True, timeout=300)
    (venv / ".complete").write_text("\n".join(APP_PACKAGES) + "\n")


def make_certificate(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for *names* (the first is the CN); returns (certificate, key)."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    san = ",".join(f"DNS:{name}" for name in names)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    key.chmod(0o600)
    return cert, key


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, on *address*."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """*count* distinct free ports: every socket stays bound until all are chosen, so the
    kernel cannot hand the same port out twice."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((address, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def has_ipv6_loopback() -> bool:
    """Whether ::1 can be bound here (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def describe_machine() -> str:
    """nproc, CPU model and kernel, for printing beside figures."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs ({model}), Linux {os.uname().release}"
