"""One site for the live stack: its spec, rendered by djdeploy and installed under a temporary directory.

Everything the spec controls (project root, venv, static and media roots, run and log directories,
certificate, ports) points into the temporary tree, so the rendered files are used as they are. The
one host path the spec does not control is ``/etc/<name>/``, where the app-server file (gunicorn.conf.py
or the uvicorn launcher) is installed (scaffold/targets/appserver.py ``config_dir``): the files are
copied to ``<tmp>/etc/<name>/`` and only that prefix is rewritten, in the supervisor program files.
With two upstream app servers on one machine, the supervised one is also bound to 127.0.0.1
(``rewrite_for_first_host``), as each would be on its own host. nginx's listeners are bound to
loopback by the stack (``stack.listen_on_loopback``). Nothing else in a rendered file is changed.
"""

from __future__ import annotations

import configparser
import grp
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from live.host import APP_USER, ensure_app_user

NAME = "shop"
DOMAIN = "shop.test"
ALIAS = "www.shop.test"
PROJECT = "testsite"
NGINX_USER = "www-data"  # Debian's nginx workers, and the spec's default app_server.socket_group
WORKERS = 2
RECYCLE_AFTER = 100  # app_server.max_requests of the recycling stack: any machine gets there within seconds
# Debian's brotli_static module, loaded by the host's nginx.conf: the site serves .br copies when it is there.
BROTLI_MODULE = Path("/etc/nginx/modules-enabled/50-mod-http-brotli-static.conf")
HAS_BROTLI = BROTLI_MODULE.exists()
DJPROJECT = Path(__file__).resolve().parents[1] / "djproject"
REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = secrets.token_urlsafe(48)  # throwaway, per run
CDN_HOST = "cdn.shop.test"
PROTECTED_URL = "/protected/"
ADMIN_NETWORK = "127.0.0.1/32"  # the admin for clients on 127.0.0.1 only (another loopback address is denied)


@dataclass(frozen=True)
class Ports:
    """nginx's two listeners and, for TCP upstreams, the app servers' shared port."""

    http: int
    https: int
    app: int


@dataclass(frozen=True)
class Site:
    """Where one site lives under *base*, and how it was specified."""

    base: Path
    kind: str  # app_server.kind
    ports: Ports
    pair: bool  # two TCP upstream app servers (127.0.0.1 and 127.0.0.2) instead of one unix socket
    venv: Path
    cert: Path
    key: Path
    ipv6: bool
    app_server: dict = field(default_factory=dict)  # extra app_server settings for this site's spec
    manager: str = "supervisor"  # process_manager: supervisor | pm2
    static_server: str = "nginx"  # static.server of this site's spec

    @property
    def app(self) -> Path:
        return self.base / "srv" / "app"

    @property
    def static(self) -> Path:
        return self.base / "srv" / "static"

    @property
    def media(self) -> Path:
        return self.base / "srv" / "media"

    @property
    def protected(self) -> Path:
        return self.base / "srv" / "protected"

    @property
    def state(self) -> Path:
        """The SQLite database's directory: the app user's."""
        return self.base / "var" / "lib" / NAME

    @property
    def database(self) -> Path:
        return self.state / "db.sqlite3"

    @property
    def run(self) -> Path:
        return self.base / "run" / NAME

    @property
    def log(self) -> Path:
        return self.base / "log" / NAME

    @property
    def nginx_log(self) -> Path:
        return self.base / "log" / "nginx"

    @property
    def rendered(self) -> Path:
        return self.base / "rendered"

    @property
    def etc(self) -> Path:
        """The stand-in for the host's /etc."""
        return self.base / "etc"

    @property
    def secret_file(self) -> Path:
        """Where the rendered program's DJANGO_SECRET_KEY_FILE points (scaffold/targets/_programs.py)."""
        return self.etc / NAME / "secrets" / "DJANGO_SECRET_KEY"

    @property
    def spec_path(self) -> Path:
        return self.base / "spec.yaml"


def spec_data(site: Site) -> dict:
    """The spec the live tests render: production-shaped, with every path and port in the test's reach."""
    spec = {
        "version": 1, "name": NAME, "domain": DOMAIN, "aliases": [ALIAS],
        "django": {"project": PROJECT, "root": str(site.app), "venv": str(site.venv),
                   "user": APP_USER, "group": APP_USER,
                   "database": {"engine": "sqlite", "name": str(site.database)}},
        "app_server": {"kind": site.kind, "workers": WORKERS, "graceful_timeout": 10, **site.app_server},
        "tls": {"mode": "files", "certificate": str(site.cert), "certificate_key": str(site.key)},
        # Static files on a CDN whose origin is this nginx (browsers would fetch them from CDN_HOST).
        "static": {"root": str(site.static), "url": f"https://{CDN_HOST}/static/", "server": site.static_server,
                   "brotli": HAS_BROTLI},
        "media": {"root": str(site.media), "protected": {"url": PROTECTED_URL, "root": str(site.protected)}},
        "nginx": {"http_port": site.ports.http, "https_port": site.ports.https, "ipv6": site.ipv6,
                  "admin": {"allow": [ADMIN_NETWORK]}, "login_rate_limit": {"rate": "60r/m", "burst": 20}},
        "process_manager": site.manager,
        "paths": {"run_dir": str(site.run), "log_dir": str(site.log), "nginx_log_dir": str(site.nginx_log)},
    }
    if site.pair:
        spec["upstream"] = {"servers": [{"address": f"127.0.0.1:{site.ports.app}"},
                                        {"address": f"127.0.0.2:{site.ports.app}"}]}
    return spec


def render_site(site: Site) -> None:
    """Write the spec and run `djdeploy render` on it, as a user would."""
    site.spec_path.write_text(yaml.safe_dump(spec_data(site), sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "scaffold", "render", str(site.spec_path), "--out",
                           str(site.rendered)], capture_output=True, text=True, timeout=60, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"djdeploy render failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def rendered_files(site: Site, folder: str) -> list[Path]:
    """The rendered files of one output folder (nginx, supervisor, ...), sorted."""
    return sorted(p for p in (site.rendered / folder).glob("*") if p.is_file())


def install_site(site: Site, tmpfiles: str) -> None:
    """Install the project and the rendered files as the rendered INSTALL.md does, with its owners and modes."""
    user = ensure_app_user()
    make_directories(site, user.pw_uid, user.pw_gid)
    install_project(site, user.pw_gid)
    for folder in ("gunicorn", "uvicorn", "uwsgi", "daphne", "hypercorn"):
        for path in rendered_files(site, folder):
            install_file(path, site.etc / NAME / path.name, user.pw_gid)
    if site.manager == "pm2":
        install_ecosystem(site, user.pw_gid)
    else:
        install_supervisor_files(site)
    create_run_dir(site, tmpfiles)
    write_secret(site, user.pw_gid)
    collect_static(site, user.pw_uid, user.pw_gid)
    write_test_files(site, user.pw_uid)


def make_directories(site: Site, uid: int, gid: int) -> None:
    """The directories of INSTALL.md step 2: who owns each and who may read it."""
    nginx_gid = grp.getgrnam(NGINX_USER).gr_gid
    for path in (site.app.parent, site.run.parent, site.log.parent, site.etc):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)  # stand-ins for /srv, /run, /var/log, /etc
    for path, owner, group, mode in (
        (site.app, 0, gid, 0o750),
        (site.etc / NAME, 0, gid, 0o750),
        (site.secret_file.parent, 0, gid, 0o750),
        (site.static, uid, nginx_gid, 0o2750),
        (site.media, uid, nginx_gid, 0o2750),
        (site.protected, uid, nginx_gid, 0o2750),
        (site.state.parent, 0, 0, 0o755),
        (site.state, uid, gid, 0o750),
        (site.log, uid, gid, 0o750),
        (site.nginx_log, 0, 0, 0o755),
    ):
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, owner, group)
        path.chmod(mode)


def install_project(site: Site, gid: int) -> None:
    """The test project and the rendered settings module: root's files, readable by the app's group only."""
    shutil.copytree(DJPROJECT, site.app, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"),
                    dirs_exist_ok=True)
    for settings in rendered_files(site, "django"):
        shutil.copy(settings, site.app / PROJECT / settings.name)
    for path in [site.app, *site.app.rglob("*")]:
        os.chown(path, 0, gid)
        path.chmod(0o750 if path.is_dir() else 0o640)


def install_file(source: Path, dest: Path, gid: int) -> None:
    """One rendered app-server file into the stand-in /etc/<name>/, root:<group> 0640."""
    shutil.copy(source, dest)
    os.chown(dest, 0, gid)
    dest.chmod(0o640)


def rewrite_host_paths(text: str, site: Site) -> str:
    """Point the one fixed host directory the spec does not control (/etc/<name>/) into the temporary tree."""
    return text.replace(f"/etc/{NAME}/", f"{site.etc}/{NAME}/")


def rewrite_for_first_host(text: str, site: Site) -> str:
    """Two "hosts" share this machine: the supervised app server listens on 127.0.0.1 only, not 0.0.0.0.

    On real hosts each listens on app_server.bind (0.0.0.0:PORT); here the second needs 127.0.0.2:PORT free.
    """
    port = site.ports.app
    text = text.replace(f"socket=tcp://0.0.0.0:{port}", f"socket=tcp://127.0.0.1:{port}")  # uvicorn
    return re.sub(r"^(command=.*/gunicorn -c \S+)$", rf"\1 --bind 127.0.0.1:{port}", text, flags=re.M)


def install_supervisor_files(site: Site) -> None:
    """The rendered program files into the stand-in /etc/supervisor/conf.d/, host paths rewritten."""
    programs = site.etc / "supervisor" / "conf.d"
    programs.mkdir(parents=True, exist_ok=True)
    for path in rendered_files(site, "supervisor"):
        if path.suffix == ".conf":
            text = rewrite_host_paths(path.read_text(), site)
            (programs / path.name).write_text(rewrite_for_first_host(text, site) if site.pair else text)


def ecosystem_path(site: Site) -> Path:
    """The installed ecosystem file, in the stand-in /etc/<name>/ (scaffold/targets/pm2.py ecosystem_path)."""
    return site.etc / NAME / "ecosystem.config.js"


def install_ecosystem(site: Site, gid: int) -> None:
    """The rendered ecosystem file into the stand-in /etc/<name>/, root:<group> 0640, host paths rewritten."""
    source = site.rendered / "pm2" / "ecosystem.config.js"
    ecosystem_path(site).write_text(rewrite_host_paths(source.read_text(), site))
    os.chown(ecosystem_path(site), 0, gid)
    ecosystem_path(site).chmod(0o640)


def read_ecosystem(site: Site) -> list[dict]:
    """The apps of the installed ecosystem file, as node loads it for the app user (the file refuses others)."""
    user = ensure_app_user()
    script = "process.stdout.write(JSON.stringify(require(process.argv[1]).apps))"
    done = subprocess.run(["node", "-e", script, str(ecosystem_path(site))], capture_output=True, text=True,
                          timeout=30, user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"node could not load {ecosystem_path(site)}: {done.stderr}")
    return json.loads(done.stdout)


def create_run_dir(site: Site, tmpfiles: str) -> None:
    """Create paths.run_dir from the rendered tmpfiles.d line, as systemd-tmpfiles does at boot."""
    lines = [p for p in rendered_files(site, site.manager) if "tmpfiles" in p.name]
    if not lines:
        raise RuntimeError(f"no {site.manager}/*tmpfiles* rendered: nothing creates paths.run_dir")
    for path in lines:
        subprocess.run([tmpfiles, "--create", str(path)], check=True, capture_output=True, timeout=30)


def write_secret(site: Site, gid: int) -> None:
    """DJANGO_SECRET_KEY in a file root:<group> 0640 (INSTALL.md step 5)."""
    site.secret_file.write_text(SECRET_KEY)
    os.chown(site.secret_file, 0, gid)
    site.secret_file.chmod(0o640)


@dataclass(frozen=True)
class Program:
    """The web program as the installed supervisor file describes it."""

    kind: str  # program | fcgi-program
    argv: list[str]
    directory: str
    user: str
    environment: dict[str, str]
    numprocs: int


def read_web_program(site: Site) -> Program:
    """The web program of the rendered supervisor files (host paths rewritten), read as supervisor reads it."""
    from supervisor.datatypes import dict_of_key_value_pairs

    parser = configparser.RawConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    for path in rendered_files(site, "supervisor"):
        if path.suffix == ".conf":
            parser.read_string(rewrite_host_paths(path.read_text(), site), str(path))
    section = next(s for s in parser.sections() if s.endswith(f":{NAME}-web"))
    values = {key: value.replace("%%", "%") for key, value in parser.items(section)}
    return Program(section.split(":")[0], shlex.split(values["command"]), values["directory"], values["user"],
                   dict_of_key_value_pairs(values.get("environment", "")), int(values.get("numprocs", "1")))


def app_environment(site: Site) -> dict[str, str]:
    """What a manage.py command gets: the web program's environment (INSTALL.md's `manage`)."""
    if site.manager == "pm2":
        environment = next(a for a in read_ecosystem(site) if a["name"] == f"{NAME}-web")["env"]
    else:
        environment = read_web_program(site).environment
    return {"PATH": f"{site.venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **environment}


def collect_static(site: Site, uid: int, gid: int) -> None:
    """`manage.py collectstatic` as the app user with the production settings, as a deploy does."""
    subprocess.run([str(site.venv / "bin" / "python"), "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=site.app, env=app_environment(site), user=uid, group=gid, extra_groups=[],
                   check=True, capture_output=True, timeout=60)


# Files the tests look for: one only nginx can have served, and uploads that must never run or render.
STATIC_ONLY = "only-in-static-root.txt"
BULK_CSS = "bulk.css"
MEDIA_FILES = {
    "upload.php": b"<?php echo 'executed'; ?>\n",
    "upload.html": b"<!doctype html><script>document.title = 'executed'</script>\n",
}
FONT = "fonts/brand.woff2"  # a web font, which browsers fetch in CORS mode from another origin
FONT_BYTES = b"wOF2\x00\x01\x00\x00 not a real font"
PROTECTED_FILE = "invoice-17.pdf"
PROTECTED_TEXT = b"%PDF-1.4 only for the customer the app allows\n"
SECRET_OUTSIDE = "outside-secret.txt"
SECRET_OUTSIDE_TEXT = b"this file is outside every served directory\n"


def write_test_files(site: Site, uid: int) -> None:
    """Uploads as an attacker would leave them, static files Django never had, a file beside the roots.

    Owned as the app would leave them: the app user, the directories' group (setgid www-data), 0640.
    """
    files = {**{site.media / name: content for name, content in MEDIA_FILES.items()},
             site.protected / PROTECTED_FILE: PROTECTED_TEXT,
             site.static / FONT: FONT_BYTES,
             site.static / STATIC_ONLY: b"served by nginx from STATIC_ROOT\n",
             site.static / BULK_CSS: bulk_css().encode()}
    (site.static / FONT).parent.mkdir(exist_ok=True)
    for path, content in files.items():
        path.write_bytes(content)
        os.chown(path, uid, -1)
        path.chmod(0o640)
    (site.static.parent / SECRET_OUTSIDE).write_bytes(SECRET_OUTSIDE_TEXT)


def bulk_css() -> str:
    """A stylesheet big enough to be worth compressing (about 16 KiB)."""
    return "".join(f".item-{i} {{ margin: {i % 7}px; color: #{i * 2654435761 % 0xFFFFFF:06x}; }}\n"
                   for i in range(320))
