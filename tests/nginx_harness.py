"""Render the nginx target into a scratch directory and check it with nginx -t and gixy-next."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import crossplane

from scaffold.render import make_environment, render_job
from scaffold.spec import Spec
from scaffold.targets import nginx

MIME_TYPES = Path("/etc/nginx/mime.types")
# Debian's dynamic modules (brotli_static with static.brotli), loaded as its nginx.conf does.
MODULES = Path("/etc/nginx/modules-enabled")
WRAPPER = """\
{modules}worker_processes auto;
worker_rlimit_nofile 4096;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{
    worker_connections 1024;
}}
http {{
{mime}    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/temp/body;
    proxy_temp_path {tmp}/temp/proxy;
    fastcgi_temp_path {tmp}/temp/fastcgi;
    uwsgi_temp_path {tmp}/temp/uwsgi;
    scgi_temp_path {tmp}/temp/scgi;
{includes}}}
"""


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed ECDSA P-256 certificate and key."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", "/CN=djdeploy.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def localize(spec: Spec, tmp: Path, cert: Path, key: Path) -> Spec:
    """A copy of a resolved spec whose certificate and logs live under *tmp* (nginx -t opens them)."""
    local = spec.model_copy(deep=True)
    if local.tls.mode != "off":
        local.tls.certificate, local.tls.certificate_key = str(cert), str(key)
    local.paths.nginx_log_dir = str(tmp / "logs")
    return local


def render_nginx(spec: Spec, out: Path) -> list[Path]:
    """Write the nginx target's files under *out*; return their paths, in job order."""
    env = make_environment()
    written = []
    for job in nginx.jobs(spec):
        path = out / job.dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_job(env, job, name=spec.name, version="test").content)
        written.append(path)
    return written


def write_wrapper(tmp: Path, includes: list[Path], host_modules: bool = True) -> Path:
    """An nginx.conf that includes *includes* in its http block, every runtime path under *tmp*.

    *host_modules*: load this host's Debian dynamic modules, as its nginx.conf does (not for
    another release's nginx binary, which cannot load modules built for this one).
    """
    (tmp / "temp").mkdir(exist_ok=True)
    (tmp / "logs").mkdir(exist_ok=True)
    mime = f"    include {MIME_TYPES};\n" if MIME_TYPES.exists() else ""
    lines = "".join(f"    include {p};\n" for p in includes)
    conf = tmp / "nginx.conf"
    host_modules = host_modules and MODULES.is_dir()
    modules = f"include {MODULES}/*.conf;\n" if host_modules else ""
    if host_modules and not (tmp / "modules").exists():
        # Debian's files load modules/NAME.so relative to the prefix, which is *tmp*.
        (tmp / "modules").symlink_to(Path("/usr/share/nginx/modules").resolve())
    conf.write_text(WRAPPER.format(tmp=tmp, mime=mime, includes=lines, modules=modules))
    return conf


def run_nginx_test(nginx_bin: str, conf: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on *conf*, with the prefix in its directory."""
    return subprocess.run([nginx_bin, "-t", "-q", "-c", str(conf), "-p", str(conf.parent)],
                          capture_output=True, text=True, timeout=60)


def gixy_findings(gixy_bin: str, conf: Path) -> list[dict]:
    """gixy-next's findings for *conf* (every severity), from its JSON report."""
    done = subprocess.run([gixy_bin, "-f", "json", str(conf)], capture_output=True, text=True,
                          timeout=120)
    if done.returncode not in (0, 1):
        raise AssertionError(f"gixy failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout or "[]")


def parse(path: Path) -> list[dict]:
    """The directives of one rendered file, parsed by crossplane (includes not followed)."""
    payload = crossplane.parse(str(path), single=True, comments=False, check_ctx=False)
    errors = payload["errors"] + [e for f in payload["config"] for e in f["errors"]]
    assert not errors, errors
    return payload["config"][0]["parsed"]


# Newer nginx builds for `nginx -t`: Debian 13 (trixie: nginx 1.26, OpenSSL 3.5) and unstable (sid),
# taken from Debian root file systems when the machine has them (DJDEPLOY_DEBIAN_ROOTS, a glob of
# <release>-*/root directories). Each build is copied with the libraries it links against into a cache
# of its own, and run through its own dynamic loader: the host's nginx.conf, modules and paths are
# not involved. None of this exists on most machines; the tests using it skip then.
DEBIAN_ROOTS = os.environ.get("DJDEPLOY_DEBIAN_ROOTS", "/var/cache/djdeploy-testbed/*/root")
NGINX_CACHE = Path("/var/tmp/djdeploy-nginx")
NEWER_RELEASES = ("trixie", "sid")


def newer_nginx_builds() -> dict[str, list[str]]:
    """{"nginx/1.26.3 OpenSSL 3.5.x": argv prefix} for each Debian release found; {} when none."""
    found = {}
    for release in NEWER_RELEASES:
        argv = _cached_build(release)
        if argv is None:
            continue
        done = subprocess.run([*argv, "-V"], capture_output=True, text=True, timeout=30)
        version = done.stderr.splitlines()[0].split(":", 1)[1].strip() if done.returncode == 0 else None
        if version:
            found[f"{release} {version}"] = argv
    return found


def _cached_build(release: str) -> list[str] | None:
    cache = NGINX_CACHE / release
    loader = cache / "ld-linux-x86-64.so.2"
    if not (cache / "nginx").exists():
        roots = sorted(Path(p) for p in glob.glob(DEBIAN_ROOTS) if Path(p).parent.name.startswith(f"{release}-"))
        for root in roots:
            if _copy_build(root, cache):
                break
        else:
            return None
    return [str(loader), "--library-path", str(cache), str(cache / "nginx")]


def _copy_build(root: Path, cache: Path) -> bool:
    """Copy root's nginx and the shared libraries it needs into *cache*; False if the root is incomplete."""
    if os.geteuid() != 0 or not (root / "usr/sbin/nginx").exists():
        return False
    done = subprocess.run(["chroot", str(root), "ldd", "/usr/sbin/nginx"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return False
    libraries = [part for line in done.stdout.splitlines() for part in line.split() if part.startswith("/")]
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{cache.name}-", dir=cache.parent))
    try:
        shutil.copy2(root / "usr/sbin/nginx", staging / "nginx")
        for library in libraries:
            shutil.copy2(root / library.lstrip("/"), staging / Path(library).name)
        staging.rename(cache)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True
