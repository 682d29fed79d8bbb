"""Debian root filesystems for the machines, built with debootstrap and cached between runs.

An image is a directory tree under ``CACHE`` named after its suite and a hash of everything that
goes into it (suite, package lists, wheel list, build steps' version), so a changed list builds a
new image and an unchanged one is reused. Builds happen in a scratch directory that is renamed
into place when complete, under a lock, so two runs never build the same image twice or see half
of one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scaffold.targets.pm2 import PM2_VERSION
from scaffold.targets.runbook import (APP_SERVER_PACKAGES, ASGI_WORKER_PACKAGES, PM2_PACKAGES, POOLED_POSTGRESQL,
                                      STATIC_PACKAGES, UWSGI_BUILD_PACKAGES)

CACHE = Path(os.environ.get("DJDEPLOY_TESTBED_CACHE", "/var/cache/djdeploy-testbed"))
MIRROR = "http://deb.debian.org/debian"
BUILD_STEPS = "4"  # bump when the build steps below change in a way the lists do not show

# What a booted host needs, and what the rendered runbook's step 1 installs (so it finds them
# installed: the machines have no route to the archive). --variant=minbase, no recommends.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "procps", "ca-certificates", "openssl")
# nginx's brotli_static module: what the runbook adds for static.brotli (tests/examples/full.yaml).
RUNBOOK_PACKAGES = ("python3", "python3-venv", "nginx", "libnginx-mod-http-brotli-static", "curl", "postfix")
# The package lists are kept, so the runbook's `apt-get update` fetches only what changed since.
# The rendered runbook's step 3 installs these with pip; they are kept in the image as wheels
# (pip's find-links), since the machines cannot reach a package index. Not pip itself: the
# runbook's `pip install --upgrade pip` then keeps the venv's own, as it does offline.
# Every host runs gunicorn (sync, gthread, ASGI worker) and uvicorn.
WHEELS = ("django>=5.2,<6", *APP_SERVER_PACKAGES["gunicorn"], *APP_SERVER_PACKAGES["uvicorn"], *ASGI_WORKER_PACKAGES,
          *STATIC_PACKAGES[True], "uvicorn-worker>=0.4")
# The hosts of a fleet (tests/machines/test_fleet.py), all from one image: Ansible reaches them over
# SSH, becomes root with sudo, and its apt module needs python3-apt; supervisor and nftables are
# what the playbook installs for supervisor hosts; PostgreSQL is the database server the app hosts
# share (the operator's, not djdeploy's), and the app hosts' client library (pooled) is among the
# wheels; python3-packaging is what the app role adds for Ansible's pip module.
# Debian 13's hosts also run uWSGI, Daphne and Hypercorn (tests/machines/hosts.py, NEWER_KINDS). uWSGI
# is a source distribution: pip builds it with setuptools (from the wheels, the machines being
# offline) and the compiler and headers the runbook's step 1 installs for it.
NEWER_KIND_PACKAGES = tuple(UWSGI_BUILD_PACKAGES)
# And pm2 (tests/machines/test_pm2_host.py): Debian's Node.js and npm (installed by apt after
# debootstrap, whose resolver does not follow npm's virtual dependencies), and pm2 with everything it
# needs in root's npm cache, npm set to install from there (offline), as a site-local registry would.
PM2_HOST_PACKAGES = tuple(PM2_PACKAGES)
NPM_PACKAGES = (f"pm2@{PM2_VERSION}",)
NEWER_KIND_WHEELS = (*APP_SERVER_PACKAGES["uwsgi"], *APP_SERVER_PACKAGES["daphne"], *APP_SERVER_PACKAGES["hypercorn"],
                     "setuptools", "wheel")
FLEET_PACKAGES = ("openssh-server", "sudo", "python3-apt", "python3-packaging", "supervisor", "nftables",
                  "postgresql")
FLEET_WHEELS = (*WHEELS, *POOLED_POSTGRESQL)
WHEELHOUSE = "/var/cache/djdeploy-wheels"
HOST_CA = Path("/usr/local/share/ca-certificates")


@dataclass(frozen=True)
class Image:
    """One root filesystem: a Debian *suite* with *packages*; *bootable* images also get wheels."""

    suite: str
    packages: tuple[str, ...]
    bootable: bool
    wheels: tuple[str, ...] = field(default=())
    apt: tuple[str, ...] = field(default=())  # installed by apt-get once debootstrap is done
    npm: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        text = "\n".join((BUILD_STEPS, self.suite, *sorted(self.packages), "--", *self.wheels,
                          *(("--", *sorted(self.apt), "--", *self.npm) if self.apt or self.npm else ())))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def root(self) -> Path:
        return CACHE / f"{self.suite}-{self.key}"


def host_image(suite: str) -> Image:
    """A bootable app host: systemd, nginx, Python and the runbook's packages and wheels (on Debian 13,
    those of uWSGI, Daphne and Hypercorn too, and pm2)."""
    if suite == "trixie":
        return Image(suite, BOOT_PACKAGES + RUNBOOK_PACKAGES + NEWER_KIND_PACKAGES, bootable=True,
                     wheels=WHEELS + NEWER_KIND_WHEELS, apt=PM2_HOST_PACKAGES, npm=NPM_PACKAGES)
    return Image(suite, BOOT_PACKAGES + RUNBOOK_PACKAGES, bootable=True, wheels=WHEELS)


def fleet_image() -> Image:
    """A fleet's host, whatever its part: load balancer, app host or database server (Debian 13)."""
    return Image("trixie", BOOT_PACKAGES + RUNBOOK_PACKAGES + FLEET_PACKAGES, bootable=True, wheels=FLEET_WHEELS)


def nginx_image(suite: str) -> Image:
    """A chroot that can run `nginx -t` (the host image where there is one: it has the same nginx)."""
    if suite in ("bookworm", "trixie"):
        return host_image(suite)
    return Image(suite, ("nginx", "libnginx-mod-http-brotli-static", "openssl"), bootable=False)


class ImageBuildError(Exception):
    """debootstrap or a build step failed; the message says which, with its output."""


def ensure_image(image: Image) -> Path:
    """The image's root, built first if it is not cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (image.root / ".complete").exists():
            build(image)
    return image.root / "root"


def build(image: Image) -> None:
    """debootstrap into a scratch directory, finish it, and move it into place."""
    scratch = CACHE / f".build-{image.suite}-{image.key}"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(image.root, ignore_errors=True)
    root = scratch / "root"
    root.mkdir(parents=True)
    run(["debootstrap", "--variant=minbase", f"--include={','.join(image.packages)}", image.suite,
         str(root), MIRROR], "debootstrap", timeout=900)
    if image.bootable:
        finish_host(image, root)
    (scratch / ".complete").write_text("\n".join(image.packages) + "\n")
    scratch.rename(image.root)


def finish_host(image: Image, root: Path) -> None:
    """Trust the host's CA (its HTTPS egress goes through a proxy), keep things small, add wheels."""
    for cert in HOST_CA.glob("*.crt"):
        shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/machine-id").write_text("")  # each boot makes its own
    (root / "etc/apt/apt.conf.d/90djdeploy-testbed").write_text(
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
    journald = root / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "volatile.conf").write_text("[Journal]\nStorage=volatile\n")
    wheels = " ".join(f"'{w}'" for w in image.wheels)
    in_chroot(root, f"""
update-ca-certificates >/dev/null
python3 -m venv /tmp/wheel-venv
/tmp/wheel-venv/bin/pip download --quiet --disable-pip-version-check -d {WHEELHOUSE} {wheels}
rm -rf /tmp/wheel-venv /root/.cache
chmod -R a+rX {WHEELHOUSE}
printf '[global]\\nno-index = true\\nfind-links = {WHEELHOUSE}\\n' > /etc/pip.conf
apt-get update -qq
apt-get clean
""", "finishing the image")
    if image.apt:
        in_chroot(root, f"apt-get install -y -qq --no-install-recommends {' '.join(image.apt)} >/dev/null\n"
                        "apt-get clean\n", "installing packages with apt")
    if image.npm:
        packages = " ".join(f"'{p}'" for p in image.npm)
        in_chroot(root, f"""
NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm install --global --prefix /tmp/npm-fill --no-fund --no-audit --loglevel=error {packages}
rm -rf /tmp/npm-fill
npm config set --location=global offline true
""", "filling npm's cache")


def in_chroot(root: Path, script: str, what: str, timeout: float = 600) -> str:
    """Run *script* in *root* with its own mount and PID namespaces (nothing it starts outlives it),
    service starts blocked by a policy-rc.d, and the host's network (to reach the package index)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    outer = f"""set -e
mount --rbind /dev {root}/dev
mount -t proc proc {root}/proc
exec chroot {root} /bin/sh -ec "$1"
"""
    try:
        return run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", outer,
                    "sh", script], what, timeout=timeout, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                              "LANG": "C.UTF-8",
                                                              "DEBIAN_FRONTEND": "noninteractive"})
    finally:
        policy.unlink(missing_ok=True)


def run(argv: list[str], what: str, timeout: float, env: dict | None = None) -> str:
    """Run a build command; raise ImageBuildError with the end of its output if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise ImageBuildError(f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


if __name__ == "__main__":  # python -m machines.images: build every image the tests use
    import sys

    for suite in sys.argv[1:] or ("bookworm", "trixie", "sid", "fleet"):
        print(ensure_image(fleet_image() if suite == "fleet" else nginx_image(suite)))
