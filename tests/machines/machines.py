"""Booted Debian machines on this host: systemd-nspawn containers on a private network.

Each machine boots systemd as its PID 1 from a copy-on-write overlay of a cached image, in a cgroup
of its own (the host's PID 1 is not systemd: nothing else would keep two machines' units apart) and a
network namespace of its own. Machines and the test's client namespace are joined by veth pairs to a
bridge that lives in a namespace of its own, so no address the tests use is ever on the host's
network. Everything started is registered for cleanup: ``close()`` in the fixtures' finally blocks,
and an atexit hook for what they could not reach (SIGTERM is turned into an exit that runs it; if
the test process is SIGKILLed, each nspawn gets SIGTERM from the kernel and powers its machine off).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

CGROUP2 = Path("/sys/fs/cgroup/unified")
CGROUP1_SYSTEMD = Path("/sys/fs/cgroup/systemd")
CGROUP_PARENT = "djdeploy-testbed"
STATE = Path(os.environ.get("DJDEPLOY_TESTBED_STATE", "/var/tmp/djdeploy-testbed"))
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
PR_SET_PDEATHSIG = 1  # prctl(2)
CLONE_NEWNET = 0x40000000  # sched.h
TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "unshare", "ip")
# Every name a run gives the host (network namespaces, machines' directories and cgroups) starts
# with its own prefix, so two runs on one host never meet; the pid in it tells a dead run's leftovers.
RUN = f"tb{os.getpid()}"

# This process's network namespace when it started (the host's), held open for commands that need
# the package archive, whichever namespace the calling thread is in then.
_HOST_NET = os.open("/proc/self/ns/net", os.O_RDONLY)
_open: list = []  # networks and machines not closed yet, newest last


def close_everything() -> None:
    """Close whatever is still open, newest first; never raises."""
    while _open:
        _open[-1].close()


atexit.register(close_everything)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM an ordinary exit, so finally blocks and the atexit hook clean up."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit)


def name(suffix: str) -> str:
    """A name of this run's: the run's prefix and *suffix*."""
    return f"{RUN}-{suffix}"


def remove_stale() -> None:
    """What runs that were SIGKILLed left: their namespaces, cgroups and machines' directories."""
    def dead(found: str) -> bool:
        match = re.match(r"tb(\d+)-", found)
        return bool(match) and not Path(f"/proc/{match[1]}").exists()

    netns = Path("/run/netns")
    for found in sorted(p.name for p in netns.iterdir()) if netns.is_dir() else ():
        if dead(found):
            subprocess.run(["ip", "netns", "del", found], capture_output=True, timeout=30)
    for parent in (CGROUP2 / CGROUP_PARENT, CGROUP1_SYSTEMD / CGROUP_PARENT):
        for cgroup in parent.iterdir() if parent.is_dir() else ():
            if cgroup.is_dir() and dead(cgroup.name):
                remove_cgroup(cgroup)
    for home in STATE.iterdir() if STATE.is_dir() else ():
        if dead(home.name):
            subprocess.run(["umount", "-l", str(home / "merged")], capture_output=True, timeout=30)
            shutil.rmtree(home, ignore_errors=True)


class MachineError(Exception):
    """A machine did not boot, or a command inside it failed."""


def ip(*args: str) -> None:
    """Run `ip` with *args*; raise with its message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise MachineError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Network:
    """A bridge in its own namespace, with a 10.x.y.0/24 subnet; namespaces join it by veth pairs."""

    def __init__(self, tag: str, subnet: str = "10.213.7") -> None:
        self.tag = tag
        self.subnet = subnet
        self.bridge_ns = f"{tag}-br"
        self.namespaces: list[str] = []
        self.hosts: dict[str, str] = {}  # name -> address
        _open.append(self)
        ip("netns", "add", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")

    def join(self, name: str, index: int) -> str:
        """A new namespace *name* on the bridge, with address .*index*; returns the address."""
        address = f"{self.subnet}.{index}"
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", self.bridge_ns, "link", "add", f"v{index}", "type", "veth", "peer", "name", "eth0", "netns", name)
        ip("-n", self.bridge_ns, "link", "set", f"v{index}", "master", "br0", "up")
        ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "link", "set", "lo", "up")
        self.hosts[name] = address
        return address

    def leave(self, name: str) -> None:
        """Delete namespace *name* (its veth pair goes with it)."""
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def close(self) -> None:
        """Delete every namespace (their veth ends go with them); never raises."""
        for name in [*self.namespaces, self.bridge_ns]:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.namespaces.clear()
        if self in _open:
            _open.remove(self)


_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def network_namespace(name: str) -> Iterator[None]:
    """Run the block (this thread, and threads it starts) in network namespace *name*.

    Sockets keep the namespace they were made in; the thread returns to its own afterwards.
    """
    with open("/proc/thread-self/ns/net") as own, open(f"/run/netns/{name}") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        try:
            yield
        finally:
            _libc.setns(own.fileno(), CLONE_NEWNET)


class Machine:
    """One booted systemd, on an overlay of *image*, in network namespace *netns*."""

    def __init__(self, name: str, image: Path, netns: str, options: tuple[str, ...] = ()) -> None:
        self.name = name
        self.image = image
        self.netns = netns
        self.options = options  # more systemd-nspawn options: --bind=, --capability=
        self.home = STATE / name
        self.nspawn: Optional[subprocess.Popen] = None
        self.cgroups = [CGROUP2 / CGROUP_PARENT / name, CGROUP1_SYSTEMD / CGROUP_PARENT / name]
        self.mounted = False
        _open.append(self)

    @property
    def root(self) -> Path:
        return self.home / "merged"

    # -- start

    def boot(self, timeout: float = 60) -> None:
        """Mount the overlay (first time), start nspawn from the machine's own cgroup, wait for systemd."""
        if not self.mounted:
            self.mount()
        for cgroup in self.cgroups:
            remove_cgroup(cgroup)
            cgroup.mkdir(parents=True)
        log = open(self.home / "console.log", "ab")
        argv = ["systemd-nspawn", "-q", "-D", str(self.root), "-M", self.name, "-b", "--register=no",
                "--keep-unit", f"--network-namespace-path=/run/netns/{self.netns}", "--console=passive",
                *self.options]
        procs = [str(c / "cgroup.procs") for c in self.cgroups]

        def enter_cgroups() -> None:
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

        with log:
            self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           env={**CLEAN_ENV, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
                                           preexec_fn=enter_cgroups, start_new_session=True)
        self.wait_running(timeout)

    def mount(self) -> None:
        """The machine's root: the image under a per-machine upper directory, with its own identity."""
        shutil.rmtree(self.home, ignore_errors=True)
        for part in ("upper", "work", "merged"):
            (self.home / part).mkdir(parents=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.image},upperdir={self.home}/upper,workdir={self.home}/work",
                        str(self.root)], check=True, capture_output=True, timeout=30)
        self.mounted = True
        (self.root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        (self.root / "etc/hostname").write_text(self.name + "\n")
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")

    @property
    def leader(self) -> int:
        """The machine's PID 1, as the host sees it: nspawn's child."""
        assert self.nspawn is not None
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text().split()
        if not children:
            raise MachineError(f"{self.name}: nspawn has no child (yet)")
        return int(children[0])

    def wait_running(self, timeout: float) -> None:
        """Until `systemctl is-system-running` says running or degraded; raise with the console log."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.nspawn is not None and self.nspawn.poll() is not None:
                break
            try:
                state = self.run("systemctl is-system-running", check=False, timeout=10).stdout.strip()
            except (MachineError, OSError, subprocess.TimeoutExpired):
                state = ""
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        console = (self.home / "console.log").read_text(errors="replace")[-3000:]
        raise MachineError(f"{self.name} did not boot within {timeout:g} s (state {state!r}):\n{console}")

    # -- inside

    def run(self, script: str, *, check: bool = True, network: bool = True, timeout: float = 120,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run a bash *script* as root inside, in every namespace of the machine (*network* False: the
        host's network namespace, to reach the package archive)."""
        spaces = ["-a"] if network else ["-m", "-u", "-i", "-p", "-C", "-r", "-w",
                                         f"--net=/proc/{os.getpid()}/fd/{_HOST_NET}"]
        argv = ["nsenter", "-t", str(self.leader), *spaces, "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in
                CLEAN_ENV.items()), "HOME=/root", "/bin/bash", "-c", script]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, [f"[{self.name}]", script], done.stdout,
                                                done.stderr)
        return done

    def write(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Write a file into the machine's root file system (as root)."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        target.chmod(mode)

    # -- stop

    def reboot(self, timeout: float = 60) -> None:
        """`systemctl reboot` inside; nspawn exits (133) and the same root boots again."""
        self.run("systemctl reboot", check=False, timeout=30)
        self.wait_exit(timeout)
        self.boot(timeout)

    def wait_exit(self, timeout: float) -> Optional[int]:
        assert self.nspawn is not None
        try:
            return self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def poweroff(self, timeout: float = 30) -> None:
        """Power off gracefully; after *timeout*, kill nspawn and every process left in the cgroups."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        try:
            self.run("systemctl poweroff", check=False, timeout=10)
        except Exception:  # noqa: BLE001 - a machine that cannot be entered is killed below
            pass
        if self.wait_exit(timeout) is None:
            self.nspawn.kill()
            self.wait_exit(10)
        for cgroup in self.cgroups:
            kill_cgroup(cgroup)

    def close(self) -> None:
        """Power off, unmount, remove the cgroups and the machine's files; never raises."""
        try:
            self.poweroff()
        except Exception:  # noqa: BLE001
            pass
        for cgroup in self.cgroups:
            remove_cgroup(cgroup)
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True, timeout=30)
            self.mounted = False
        if not os.environ.get("DJDEPLOY_TESTBED_KEEP"):
            shutil.rmtree(self.home, ignore_errors=True)
        if self in _open:
            _open.remove(self)


def cgroup_pids(cgroup: Path) -> set[int]:
    """Every process in *cgroup* and below."""
    found: set[int] = set()
    for procs in cgroup.rglob("cgroup.procs") if cgroup.exists() else ():
        try:
            found |= {int(pid) for pid in procs.read_text().split()}
        except OSError:
            pass
    return found


def kill_cgroup(cgroup: Path) -> None:
    """SIGKILL whatever still runs in *cgroup* (a machine whose nspawn was killed keeps its systemd)."""
    for _ in range(50):
        pids = cgroup_pids(cgroup)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def remove_cgroup(cgroup: Path) -> None:
    """Remove *cgroup* and what nspawn left inside it (payload/, supervisor/), deepest first."""
    if not cgroup.exists():
        return
    kill_cgroup(cgroup)
    for directory in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                            reverse=True):
        try:
            directory.rmdir()
        except OSError:
            pass
    try:
        cgroup.rmdir()
    except OSError:
        pass


class Chroot:
    """A copy-on-write overlay of an image to run commands in with chroot (no boot): `nginx -t`."""

    def __init__(self, name: str, image: Path) -> None:
        self.name = name
        self.home = STATE / name
        _open.append(self)
        shutil.rmtree(self.home, ignore_errors=True)
        for part in ("upper", "work", "merged"):
            (self.home / part).mkdir(parents=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={image},upperdir={self.home}/upper,workdir={self.home}/work",
                        str(self.root)], check=True, capture_output=True, timeout=30)

    @property
    def root(self) -> Path:
        return self.home / "merged"

    def run(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a shell *script* in the chroot, in private mount and PID namespaces, without its network."""
        return subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "chroot", str(self.root),
                               "/bin/sh", "-c", script], capture_output=True, text=True, timeout=timeout,
                              env=CLEAN_ENV)

    def close(self) -> None:
        """Unmount and remove the overlay; never raises."""
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True, timeout=30)
        shutil.rmtree(self.home, ignore_errors=True)
        if self in _open:
            _open.remove(self)
