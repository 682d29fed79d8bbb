"""App servers: gunicorn's own loader and --check-config read every rendered config, real
gunicorn and uvicorn serve tests/djproject with it, and the cross-file rules reject bad specs."""

from __future__ import annotations

import copy
import grp
import http.client
import inspect
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gunicorn.config
import pytest
import uvicorn
import yaml
from gunicorn.app.base import Application

from scaffold.cli import app
from scaffold.errors import SpecError
from scaffold.render import render_all
from scaffold.spec import Spec, validate_data
from scaffold.targets import appserver
from scaffold.targets import gunicorn as gunicorn_target
from scaffold.targets import daphne as daphne_target
from scaffold.targets import hypercorn as hypercorn_target
from scaffold.targets import uvicorn as uvicorn_target
from scaffold.targets import uwsgi as uwsgi_target
from support import TESTS, example_paths, require_tool

DJPROJECT = TESTS / "djproject"
SERVER_FOLDERS = ("gunicorn", "uwsgi", "uvicorn", "daphne", "hypercorn")
BIN = Path(sys.prefix) / "bin"
FORWARDED = {"Host": "localhost", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
# Names a config under a process manager must never set (gunicorn docs, deploy.md).
FORBIDDEN = {"daemon", "pidfile", "user", "group", "reload", "preload_app"}
# app_server variants: every worker class, both listener kinds, fixed and computed workers.
GUNICORN_VARIANTS = {
    "sync-unix": {"workers": 1},
    "sync-tcp": {"workers": 1, "bind": "127.0.0.1:{port}"},
    "gthread-tcp-auto": {"threads": 4, "workers": "auto", "bind": "127.0.0.1:{port}"},
    "asgi-unix": {"workers": 1, "interface": "asgi"},
    "asgi-tcp": {"workers": 1, "interface": "asgi", "bind": "127.0.0.1:{port}"},
}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def project_data(run_dir: Path, **app_server: Any) -> dict:
    """A spec serving tests/djproject from this checkout with this interpreter's gunicorn/uvicorn."""
    port = _free_port()
    app_server = {k: v.format(port=port) if isinstance(v, str) else v for k, v in app_server.items()}
    return {
        "version": 1, "name": "site", "domain": "site.example.org",
        "django": {"project": "testsite", "settings_module": "testsite.settings",
                   "base_settings": "testsite.base", "root": str(DJPROJECT), "venv": sys.prefix},
        "app_server": app_server,
        "paths": {"run_dir": str(run_dir)},
    }


def render_one(data: dict, out: Path) -> tuple[Spec, Path]:
    """Validate *data*, render it, write its one app-server file under *out*; return the spec and file."""
    spec = validate_data(data)
    files = [f for f in render_all(spec) if f.dest.parts[0] in SERVER_FOLDERS]
    assert len(files) == 1
    path = out / files[0].dest.name
    path.write_text(files[0].content)
    return spec, path


def load_with_gunicorn(path: Path) -> tuple[dict[str, Any], gunicorn.config.Config]:
    """Load *path* with gunicorn's own config-file loader; return the file's names and the Config."""
    loader = Application.__new__(Application)  # skips __init__, which would parse sys.argv
    loader.cfg = gunicorn.config.Config()
    names = {k: v for k, v in loader.get_config_from_filename(str(path)).items()
             if not k.startswith("__") and not inspect.ismodule(v)}
    loader.load_config_from_file(str(path))
    return names, loader.cfg


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """The run directory as the process manager makes it (0750), under a parent anyone may traverse."""
    base = Path(tempfile.mkdtemp(prefix="djdeploy-", dir="/tmp"))
    os.chmod(base, 0o711)
    path = base / "run"
    path.mkdir()
    os.chmod(path, appserver.RUN_DIR_MODE)
    yield path
    shutil.rmtree(base)


# --- gunicorn: its own loader, --check-config, and real requests -------------------------------

def _gunicorn_specs() -> list[tuple[str, dict | Path]]:
    examples = [p for p in example_paths() if _yaml(p).get("app_server", {}).get("kind", "gunicorn") == "gunicorn"]
    return [(p.stem, p) for p in examples] + list(GUNICORN_VARIANTS.items())


@pytest.mark.parametrize("case", _gunicorn_specs(), ids=lambda c: c[0])
def test_every_rendered_name_is_a_gunicorn_setting(case: tuple, tmp_path: Path) -> None:
    name, source = case
    data = (_yaml(source) if isinstance(source, Path) else project_data(tmp_path, **source))
    data["django"]["root"] = str(DJPROJECT)  # gunicorn's chdir validator needs a directory that exists here
    spec, path = render_one(data, tmp_path)
    names, cfg = load_with_gunicorn(path)
    unknown = set(names) - set(cfg.settings)
    assert not unknown, f"gunicorn {gunicorn.__version__} would silently ignore {unknown}"
    assert not FORBIDDEN & set(names)
    for key, value in names.items():
        if key in cfg.settings:
            gunicorn.config.Config().set(key, value)  # gunicorn's validator for each value
    _assert_gunicorn_policy(spec, cfg)


def _assert_gunicorn_policy(spec: Spec, cfg: gunicorn.config.Config) -> None:
    assert cfg.daemon is False and cfg.pidfile is None
    auto = len(os.sched_getaffinity(0)) * 2 + 1  # "auto": 2 x CPUs + 1, computed when the file loads
    assert cfg.workers == (auto if spec.app_server.workers == "auto" else spec.app_server.workers)
    assert cfg.secure_scheme_headers == {"X-FORWARDED-PROTO": "https"}
    assert cfg.accesslog == "-" and cfg.errorlog == "-"
    assert cfg.worker_tmp_dir in (spec.paths.run_dir, "/dev/shm")
    assert Path(cfg.control_socket).parent == Path(spec.paths.run_dir or "")
    if isinstance(cfg.address[0], tuple):  # a TCP listener: (host, port); a unix one is a path
        assert "*" not in cfg.forwarded_allow_ips
    assert cfg.graceful_timeout == gunicorn_target.graceful_timeout(spec) < gunicorn_target.stop_timeout(spec)


@pytest.mark.parametrize("variant", ["sync-tcp", "gthread-tcp-auto", "asgi-unix"])
def test_gunicorn_check_config_loads_the_django_project(variant: str, run_dir: Path, tmp_path: Path) -> None:
    _, path = render_one(project_data(run_dir, **GUNICORN_VARIANTS[variant]), tmp_path)
    done = subprocess.run([str(BIN / "gunicorn"), "-c", str(path), "--check-config"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_gunicorn_check_config_fails_for_a_missing_app(run_dir: Path, tmp_path: Path) -> None:
    """The check above can fail: the same config pointed at a package that does not exist."""
    data = project_data(run_dir, workers=1)
    data["django"]["project"] = "nosuchsite"
    _, path = render_one(data, tmp_path)
    done = subprocess.run([str(BIN / "gunicorn"), "-c", str(path), "--check-config"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "nosuchsite" in done.stderr


@pytest.mark.parametrize("variant", ["sync-unix", "asgi-unix"])
def test_gunicorn_unix_socket_trusts_nginx_and_only_x_forwarded_proto(
        variant: str, run_dir: Path, tmp_path: Path) -> None:
    spec, path = render_one(project_data(run_dir, **GUNICORN_VARIANTS[variant]), tmp_path)
    sock_path = appserver.socket_path(spec)
    with _running([*gunicorn_target.command(spec)[:2], str(path)], spec) as proc:
        echo = _wait_for(lambda: _unix_get(sock_path, "/whoami/", FORWARDED), proc)
        assert echo["scheme"] == "https"
        forged = _unix_get(sock_path, "/whoami/", {"Host": "localhost", "X-Forwarded-Ssl": "on",
                                                    "X-Forwarded-Protocol": "ssl"})
        assert forged["scheme"] == "http"  # gunicorn's default would have believed both
        if variant == "asgi-unix":  # the uvicorn worker applies X-Forwarded-For too
            assert echo["remote_addr"] == "203.0.113.9"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as nginx's user and as a stranger")
def test_gunicorn_socket_is_reachable_by_nginx_group_and_nobody_else(run_dir: Path, tmp_path: Path) -> None:
    nginx = _user_in_group("www-data")
    os.chown(run_dir, -1, grp.getgrnam("www-data").gr_gid)
    spec, path = render_one(project_data(run_dir, **GUNICORN_VARIANTS["sync-unix"]), tmp_path)
    sock_path = appserver.socket_path(spec) or ""
    with _running([*gunicorn_target.command(spec)[:2], str(path)], spec) as proc:
        _wait_for(lambda: _unix_get(sock_path, "/whoami/"), proc)
        assert _connect_as(nginx, sock_path) == "connected"
        assert _connect_as("nobody", sock_path) == "PermissionError"


def _user_in_group(group: str) -> str:
    try:
        return pwd.getpwuid(grp.getgrnam(group).gr_gid).pw_name  # www-data's user, uid == gid on Debian
    except KeyError:
        pytest.skip(f"no {group} user to stand in for nginx")


def _connect_as(user: str, sock_path: str) -> str:
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1]); print('connected')\n"
             "except OSError as e:\n    print(type(e).__name__)\n")
    python = "/usr/bin/python3"  # one other users may run (ours may live in /root)
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} is missing")
    gid = pwd.getpwnam(user).pw_gid
    done = subprocess.run([python, "-c", probe, sock_path], user=user, group=gid, extra_groups=[],
                          capture_output=True,
                          text=True, timeout=30, cwd="/")
    return done.stdout.strip() or done.stderr


@pytest.mark.parametrize("trusted, scheme", [(["127.0.0.1"], "https"), (["192.0.2.1"], "http")])
def test_gunicorn_tcp_trusts_forwarded_headers_from_trusted_proxies_only(
        trusted: list, scheme: str, run_dir: Path, tmp_path: Path) -> None:
    data = project_data(run_dir, **GUNICORN_VARIANTS["asgi-tcp"], trusted_proxies=trusted)
    spec, path = render_one(data, tmp_path)
    host, port = spec.app_server.bind.rsplit(":", 1)
    with _running([*gunicorn_target.command(spec)[:2], str(path)], spec) as proc:
        echo = _wait_for(lambda: _tcp_get(host, int(port), "/whoami/", FORWARDED), proc)
        assert echo["scheme"] == scheme
        assert echo["remote_addr"] == ("203.0.113.9" if scheme == "https" else "127.0.0.1")


@pytest.mark.parametrize("variant", ["sync-tcp", "gthread-tcp-auto", "asgi-tcp"])
def test_gunicorn_timeout_bounds_a_request_only_where_its_comment_says(variant: str, run_dir: Path,
                                                                      tmp_path: Path) -> None:
    """A request three times longer than timeout: the sync worker is killed, the others answer."""
    spec, path = render_one(project_data(run_dir, **GUNICORN_VARIANTS[variant], timeout=1), tmp_path)
    host, port = spec.app_server.bind.rsplit(":", 1)
    bounded = gunicorn_target.bounds_requests(spec)
    assert ("this bounds every request" in path.read_text()) is bounded
    with _running([*gunicorn_target.command(spec)[:2], str(path)], spec) as proc:
        _wait_for(lambda: _tcp_get(host, int(port), "/whoami/"), proc)
        try:
            outcome: object = _tcp_get(host, int(port), "/slow/?seconds=3")["slept"]
        except (http.client.RemoteDisconnected, ConnectionResetError, AssertionError):
            outcome = "worker killed"
    assert outcome == ("worker killed" if bounded else 3.0)


# --- uvicorn: the launcher on a socket the "process manager" (this test) owns -------------------

def test_uvicorn_settings_are_uvicorn_config_arguments(tmp_path: Path) -> None:
    spec = validate_data(project_data(tmp_path, kind="uvicorn", workers=2))
    parameters = inspect.signature(uvicorn.Config).parameters
    assert set(uvicorn_target.settings(spec)) <= set(parameters)
    uvicorn.Config(uvicorn_target.app(spec), **uvicorn_target.settings(spec))
    with pytest.raises(TypeError):  # why a launcher: a misspelt name cannot pass unnoticed
        uvicorn.Config("x:y", timeout_keepalive=5)


@pytest.mark.parametrize("bind", ["unix", "0.0.0.0:8000", "[::]:8000"])
def test_uvicorn_under_pm2_binds_its_own_listener_with_uvicorns_supervisor(bind: str, tmp_path: Path) -> None:
    """pm2 hands no socket over: one launcher, uvicorn's own workers on the listener uvicorn binds."""
    data = project_data(tmp_path, kind="uvicorn", workers=3, **({} if bind == "unix" else {"bind": bind}))
    spec = validate_data({**data, "process_manager": "pm2"})
    listener = uvicorn_target.own_listener(spec)
    assert (uvicorn_target.process_count(spec), uvicorn_target.reload_signal(spec)) == (1, "HUP")
    assert not uvicorn_target.uses_inherited_socket(spec) and listener["workers"] == 3
    config = uvicorn.Config(uvicorn_target.app(spec), **listener, **uvicorn_target.settings(spec))
    assert config.workers == 3
    assert (config.uds, config.host) == ((f"{tmp_path}/app.sock", "127.0.0.1") if bind == "unix"
                                         else (None, bind.rsplit(":", 1)[0].strip("[]")))


@pytest.mark.parametrize("fd", [uvicorn_target.SUPERVISOR_FD, uvicorn_target.SYSTEMD_FD])
def test_uvicorn_launcher_serves_on_an_inherited_unix_socket(fd: int, run_dir: Path, tmp_path: Path) -> None:
    spec, path = render_one(project_data(run_dir, kind="uvicorn", workers=2), tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(appserver.socket_path(spec))
    os.chmod(appserver.socket_path(spec), appserver.SOCKET_MODE)
    echo = _serve_with_launcher(spec, path, listener, fd, lambda: _unix_get(
        appserver.socket_path(spec), "/whoami/", FORWARDED))
    assert (echo["scheme"], echo["remote_addr"]) == ("https", "203.0.113.9")


@pytest.mark.parametrize("trusted, scheme", [(["127.0.0.1"], "https"), (["192.0.2.0/24"], "http")])
def test_uvicorn_launcher_on_tcp_trusts_forwarded_headers_from_trusted_proxies_only(
        trusted: list, scheme: str, run_dir: Path, tmp_path: Path) -> None:
    data = project_data(run_dir, kind="uvicorn", workers=1, bind="127.0.0.1:{port}", trusted_proxies=trusted)
    spec, path = render_one(data, tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    echo = _serve_with_launcher(spec, path, listener, uvicorn_target.SUPERVISOR_FD,
                                lambda: _tcp_get("127.0.0.1", port, "/whoami/", FORWARDED))
    assert echo["scheme"] == scheme
    assert echo["remote_addr"] == ("203.0.113.9" if scheme == "https" else "127.0.0.1")


def test_uvicorn_launcher_refuses_to_start_without_a_socket(run_dir: Path, tmp_path: Path) -> None:
    spec, path = render_one(project_data(run_dir, kind="uvicorn", workers=1), tmp_path)
    done = subprocess.run([sys.executable, str(path)], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, env={**os.environ, **uvicorn_target.environment(spec)})
    assert done.returncode != 0 and "no listening socket on fd 0" in done.stderr


def _serve_with_launcher(spec: Spec, path: Path, listener: socket.socket, fd: int, request) -> dict:
    """Run the launcher as a process manager would, make one request, stop it with its stop signal."""
    listener.listen()
    server = appserver.module_for(spec)
    env = {**os.environ, **server.environment(spec)}
    if fd == uvicorn_target.SYSTEMD_FD:  # systemd sets LISTEN_PID to the service's own pid
        argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh", sys.executable, str(path)]
        popen = {"pass_fds": (3,), "preexec_fn": lambda: os.dup2(listener.fileno(), 3)}
    else:
        argv, popen = [sys.executable, str(path)], {"stdin": listener.fileno()}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)
    try:
        return _wait_for(request, proc)
    finally:
        _stop(proc, server.stop_signal(spec), server.graceful_timeout(spec))
        listener.close()


# --- the pieces process managers use -----------------------------------------------------------

def test_process_manager_contract(tmp_path: Path) -> None:
    gspec = validate_data(project_data(tmp_path, workers="auto"))
    uspec = validate_data(project_data(tmp_path, kind="uvicorn", workers=3))
    assert gunicorn_target.command(gspec) == [f"{sys.prefix}/bin/gunicorn", "-c", "/etc/site/gunicorn.conf.py"]
    assert uvicorn_target.command(uspec) == [f"{sys.prefix}/bin/python", "/etc/site/uvicorn_launcher.py"]
    assert appserver.module_for(uspec) is uvicorn_target and appserver.module_for(gspec) is gunicorn_target
    assert (uvicorn_target.process_count(uspec), uvicorn_target.uses_inherited_socket(uspec)) == (3, True)
    assert (gunicorn_target.reload_signal(gspec), uvicorn_target.reload_signal(uspec)) == ("HUP", None)
    for spec in (gspec, uspec):
        env = appserver.module_for(spec).environment(spec)
        assert env["DJANGO_SETTINGS_MODULE"] == "testsite.settings"
        assert not any(word in key for key in env for word in ("SECRET", "PASSWORD", "TOKEN"))


def test_octal_is_written_as_a_mode() -> None:
    assert repr(gunicorn_target.Octal(0o007)) == "0o007" and gunicorn_target.Octal(0o007) == 7


def test_forwarded_allow_ips_is_never_a_wildcard_on_tcp() -> None:
    for path in example_paths():
        spec = validate_data(_yaml(path))
        module = appserver.module_for(spec)
        if module not in (gunicorn_target, uvicorn_target):
            continue  # uWSGI trusts what nginx sends; the launchers' networks are spec.trusted_proxies
        allowed = (gunicorn_target.forwarded_allow_ips(spec) if module is gunicorn_target
                   else ",".join(uvicorn_target.forwarded_allow_ips(spec)))
        assert ("*" in allowed) == (appserver.socket_path(spec) is not None and spec.app_server.interface == "asgi")


# --- rules across files: spec → exit 2 → the field path → nothing written -----------------------

BAD = [
    ({"graceful_timeout": 40, "stop_timeout": 40}, "app_server.stop_timeout", "graceful_timeout (40s)"),
    ({"kind": "uvicorn"}, "app_server.workers", "needs a number"),
    ({"bind": "unix:/tmp/app.sock"}, "app_server.bind", "paths.run_dir"),
]


@pytest.mark.parametrize("changes, field, words", BAD, ids=[row[1] + ":" + row[2] for row in BAD])
def test_cross_file_rules_reject_the_spec(changes: dict, field: str, words: str, runner, tmp_path: Path) -> None:
    data = project_data(Path("/run/site"), **changes)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["render", str(spec_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{field}: " in result.output and words in result.output
    assert not (tmp_path / "out").exists()


def test_upstream_address_must_be_where_the_app_listens() -> None:
    data = copy.deepcopy(_yaml(TESTS / "examples" / "full.yaml"))
    data["upstream"]["servers"][1]["address"] = "10.0.0.12:9000"
    with pytest.raises(SpecError, match=r"upstream\.servers\[1\]\.address: the app server listens on 0\.0\.0\.0:8000"):
        validate_data(data)


# --- helpers: processes, sockets, HTTP over unix sockets ---------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def _get(conn: http.client.HTTPConnection, url: str, headers: dict | None) -> dict:
    try:
        conn.request("GET", url, headers=headers or {"Host": "localhost"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read())
    finally:
        conn.close()


def _unix_get(path: str | None, url: str, headers: dict | None = None) -> dict:
    return _get(_UnixConnection(path or ""), url, headers)


def _tcp_get(host: str, port: int, url: str, headers: dict | None = None) -> dict:
    return _get(http.client.HTTPConnection(host, port, timeout=10), url, headers)


def _wait_for(request, proc: subprocess.Popen, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return request()
        except (ConnectionError, FileNotFoundError, socket.timeout, http.client.HTTPException):
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"the app server did not answer (exit {proc.poll()}):\n{output}")
            time.sleep(0.2)


class _running:
    """gunicorn -c CONFIG, started as the process manager would and stopped with its stop signal."""

    def __init__(self, argv: list[str], spec: Spec) -> None:
        env = {**os.environ, **gunicorn_target.environment(spec)}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.spec = spec

    def __enter__(self) -> subprocess.Popen:
        return self.proc

    def __exit__(self, *exc: object) -> None:
        _stop(self.proc, gunicorn_target.stop_signal(self.spec), gunicorn_target.graceful_timeout(self.spec))


def _stop(proc: subprocess.Popen, signame: str, graceful: int) -> None:
    """Send the stop signal; the process must exit on its own, as it must before the manager's SIGKILL."""
    proc.send_signal(getattr(signal, f"SIG{signame}"))
    try:
        assert proc.wait(timeout=graceful) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- uWSGI: the ini loaded by uWSGI itself, on a socket the "process manager" (this test) owns ------

def _uwsgi_request(path: str, variables: dict[str, str]) -> tuple[int, bytes]:
    """One request in the uwsgi protocol (modifier 0: a WSGI request), as nginx's uwsgi_pass sends it."""
    body = b"".join(len(k.encode()).to_bytes(2, "little") + k.encode() + len(v.encode()).to_bytes(2, "little")
                    + v.encode() for k, v in variables.items())
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(path)
        sock.sendall(b"\x00" + len(body).to_bytes(2, "little") + b"\x00" + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, content = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


def _uwsgi_get(path: str | None, url: str, **overrides: str) -> dict:
    """GET *url* as nginx's rendered uwsgi_params would send it for a client at 203.0.113.9 over HTTPS."""
    route, _, query = url.partition("?")
    variables = {"REQUEST_METHOD": "GET", "REQUEST_URI": url, "PATH_INFO": route, "QUERY_STRING": query,
                 "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost", "SERVER_PORT": "443",
                 "REMOTE_ADDR": "203.0.113.9", "REMOTE_PORT": "50000", "HTTPS": "on", "UWSGI_SCHEME": "https",
                 "HTTP_HOST": "localhost", **overrides}
    status, content = _uwsgi_request(path or "", variables)
    assert status == 200, content[:500]
    return json.loads(content)


class _uwsgi_on_socket:
    """uwsgi --ini FILE with a listening unix socket as fd 0, as supervisor's [fcgi-program] starts it."""

    def __init__(self, spec: Spec, path: Path) -> None:
        self.spec, self.sock_path = spec, appserver.socket_path(spec) or ""
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(self.sock_path)
        listener.listen()
        env = {**os.environ, **uwsgi_target.environment(spec)}
        self.proc = subprocess.Popen([str(BIN / "uwsgi"), "--ini", str(path)], stdin=listener.fileno(), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        listener.close()

    def __enter__(self) -> subprocess.Popen:
        return self.proc

    def __exit__(self, *exc: object) -> None:
        _stop(self.proc, uwsgi_target.stop_signal(self.spec), uwsgi_target.graceful_timeout(self.spec))


@pytest.mark.parametrize("app_server", [{"workers": 2, "kind": "uwsgi"},
                                        {"workers": "auto", "threads": 4, "kind": "uwsgi"}], ids=["2", "auto-threads"])
def test_uwsgi_serves_the_django_project_from_its_rendered_ini(app_server: dict, run_dir: Path,
                                                               tmp_path: Path) -> None:
    """uWSGI parses the ini under strict (an unknown option stops it), adopts fd 0, serves Django."""
    require_tool("uwsgi", "uWSGI loads the rendered ini")
    spec, path = render_one(project_data(run_dir, **app_server), tmp_path)
    with _uwsgi_on_socket(spec, path) as proc:
        seen = _wait_for(lambda: _uwsgi_get(appserver.socket_path(spec), "/whoami/"), proc)
        assert (seen["scheme"], seen["remote_addr"]) == ("https", "203.0.113.9")
        plain = _uwsgi_get(appserver.socket_path(spec), "/whoami/", HTTPS="", UWSGI_SCHEME="http")
        assert plain["scheme"] == "http"


def test_uwsgi_strict_mode_refuses_an_unknown_option(run_dir: Path, tmp_path: Path) -> None:
    """The proof above can fail: one misspelt option and uWSGI does not start."""
    require_tool("uwsgi", "uWSGI loads the rendered ini")
    spec, path = render_one(project_data(run_dir, kind="uwsgi", workers=1), tmp_path)
    path.write_text(path.read_text().replace("processes = 1", "proceses = 1"))
    done = subprocess.run([str(BIN / "uwsgi"), "--ini", str(path)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert "unknown config directive: proceses" in done.stdout + done.stderr


def test_uwsgi_without_a_socket_refuses_to_start(run_dir: Path, tmp_path: Path) -> None:
    require_tool("uwsgi", "uWSGI loads the rendered ini")
    spec, path = render_one(project_data(run_dir, kind="uwsgi", workers=1), tmp_path)
    done = subprocess.run([str(BIN / "uwsgi"), "--ini", str(path)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "stdin is not a socket" in done.stdout + done.stderr


@pytest.mark.parametrize("signame", ["TERM", "HUP"])
def test_uwsgi_finishes_a_request_on_stop_and_on_reload(signame: str, run_dir: Path, tmp_path: Path) -> None:
    """TERM (stop) and HUP (reload) while a request runs: it still gets its answer; TERM then exits 0."""
    require_tool("uwsgi", "uWSGI loads the rendered ini")
    spec, path = render_one(project_data(run_dir, kind="uwsgi", workers=1), tmp_path)
    sock_path = appserver.socket_path(spec)
    with _uwsgi_on_socket(spec, path) as proc:
        _wait_for(lambda: _uwsgi_get(sock_path, "/whoami/"), proc)
        result: dict = {}
        slow = threading.Thread(target=lambda: result.update(_uwsgi_get(sock_path, "/slow/?seconds=2")))
        slow.start()
        time.sleep(0.5)  # the request is in the worker
        proc.send_signal(getattr(signal, f"SIG{signame}"))
        slow.join(30)
        assert result.get("slept") == 2.0
        if signame == "HUP":  # the reloaded stack serves on the same socket
            assert _wait_for(lambda: _uwsgi_get(sock_path, "/whoami/"), proc)["scheme"] == "https"
        else:
            assert proc.wait(30) == 0


# --- Daphne and Hypercorn: launchers on an inherited socket, like uvicorn's ---------------------------

LAUNCHED = {"daphne": daphne_target, "hypercorn": hypercorn_target}


def test_launcher_settings_are_the_servers_own_names(tmp_path: Path) -> None:
    """Every Daphne setting is a keyword of daphne.server.Server, every Hypercorn one a Config attribute."""
    import daphne.server
    import hypercorn.config

    dspec = validate_data(project_data(tmp_path, kind="daphne", workers=2))
    assert set(daphne_target.settings(dspec)) <= set(inspect.signature(daphne.server.Server).parameters)
    hspec = validate_data(project_data(tmp_path, kind="hypercorn", workers=2))
    config = hypercorn.config.Config.from_mapping(hypercorn_target.settings(hspec))
    for key, value in hypercorn_target.settings(hspec).items():
        assert hasattr(hypercorn.config.Config, key) and getattr(config, key) == value


@pytest.mark.parametrize("kind", sorted(LAUNCHED))
@pytest.mark.parametrize("fd", [uvicorn_target.SUPERVISOR_FD, uvicorn_target.SYSTEMD_FD])
def test_asgi_launcher_serves_on_an_inherited_unix_socket(kind: str, fd: int, run_dir: Path,
                                                          tmp_path: Path) -> None:
    spec, path = render_one(project_data(run_dir, kind=kind, workers=2), tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(appserver.socket_path(spec))
    echo = _serve_with_launcher(spec, path, listener, fd, lambda: _unix_get(
        appserver.socket_path(spec), "/whoami/", FORWARDED))
    assert (echo["scheme"], echo["remote_addr"]) == ("https", "203.0.113.9")


@pytest.mark.parametrize("kind", sorted(LAUNCHED))
@pytest.mark.parametrize("trusted, scheme", [(["127.0.0.1"], "https"), (["192.0.2.0/24"], "http")])
def test_asgi_launcher_on_tcp_trusts_forwarded_headers_from_trusted_proxies_only(
        kind: str, trusted: list, scheme: str, run_dir: Path, tmp_path: Path) -> None:
    data = project_data(run_dir, kind=kind, workers=1, bind="127.0.0.1:{port}", trusted_proxies=trusted)
    spec, path = render_one(data, tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    echo = _serve_with_launcher(spec, path, listener, uvicorn_target.SUPERVISOR_FD,
                                lambda: _tcp_get("127.0.0.1", port, "/whoami/", FORWARDED))
    assert echo["scheme"] == scheme
    assert echo["remote_addr"] == ("203.0.113.9" if scheme == "https" else "127.0.0.1")


@pytest.mark.parametrize("kind", sorted(LAUNCHED))
def test_asgi_launcher_refuses_to_start_without_a_socket(kind: str, run_dir: Path, tmp_path: Path) -> None:
    spec, path = render_one(project_data(run_dir, kind=kind, workers=1), tmp_path)
    done = subprocess.run([sys.executable, str(path)], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **LAUNCHED[kind].environment(spec)})
    assert done.returncode != 0 and "no listening socket on fd 0" in done.stderr


@pytest.mark.parametrize("kind", sorted(LAUNCHED))
def test_asgi_launcher_finishes_open_requests_on_term(kind: str, run_dir: Path, tmp_path: Path) -> None:
    """TERM while a request runs: the request gets its answer, the process exits by itself."""
    spec, path = render_one(project_data(run_dir, kind=kind, workers=1), tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    sock_path = appserver.socket_path(spec) or ""
    listener.bind(sock_path)
    listener.listen()
    proc = subprocess.Popen([sys.executable, str(path)], stdin=listener.fileno(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, **LAUNCHED[kind].environment(spec)})
    try:
        _wait_for(lambda: _unix_get(sock_path, "/whoami/"), proc)
        result: dict = {}
        slow = threading.Thread(target=lambda: result.update(_unix_get(sock_path, "/slow/?seconds=2")))
        slow.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        slow.join(30)
        assert result.get("slept") == 2.0
        assert proc.wait(LAUNCHED[kind].graceful_timeout(spec)) == 0
        # The socket outlives the process, as a rolling restart needs: a new process serves on it.
        assert os.path.exists(sock_path)
        proc = subprocess.Popen([sys.executable, str(path)], stdin=listener.fileno(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env={**os.environ, **LAUNCHED[kind].environment(spec)})
        assert _wait_for(lambda: _unix_get(sock_path, "/whoami/"), proc)["pid"] == proc.pid
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
