"""supervisor target: escaping, and every rendered file read by supervisor's own config parser."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from supervisor.datatypes import RestartUnconditionally, dict_of_key_value_pairs
from supervisor.options import ServerOptions

from support import example_paths, require_tool
from scaffold.render import render_all
from scaffold.spec import validate_data
from scaffold.targets import supervisor


def _spec_data(path: Path, tmp: Path, **changes: object) -> dict:
    """An example spec whose user and log directory exist here, so supervisor's checks can pass."""
    data = yaml.safe_load(path.read_text())
    data.setdefault("django", {}).update(user="nobody", group="nogroup")
    data.setdefault("paths", {}).update(log_dir=str(tmp / "log"))
    data.update(changes)
    (tmp / "log").mkdir(exist_ok=True)
    return data


def _render(data: dict, out: Path) -> list[Path]:
    files = [f for f in render_all(validate_data(data)) if f.dest.parts[0] == "supervisor"]
    for f in files:
        (out / f.dest).parent.mkdir(parents=True, exist_ok=True)
        (out / f.dest).write_text(f.content)
    return [out / f.dest for f in files]


def _parse(out: Path) -> ServerOptions:
    """What supervisord would run: a supervisord.conf including the rendered files, parsed."""
    conf = out / "supervisord.conf"
    conf.write_text(f"[supervisord]\nlogfile={out}/supervisord.log\npidfile={out}/supervisord.pid\n"
                    f"[include]\nfiles = {out}/supervisor/*.conf\n")
    options = ServerOptions()
    options.configfile = str(conf)
    options.process_config(do_usage=False)
    return options


def _groups(options: ServerOptions) -> dict:
    return {g.name: g for g in options.process_group_configs}


def _uvicorn_changes() -> dict:
    return {"app_server": {"kind": "uvicorn", "workers": 3, "graceful_timeout": 25},
            "process_manager": "supervisor", "background": []}


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.stem)
def test_supervisor_parses_every_example(path: Path, tmp_path: Path) -> None:
    data = _spec_data(path, tmp_path, process_manager="systemd" if path.stem in ("uvicorn-systemd", "fleet") else "both")
    if data["process_manager"] == "systemd":
        assert _render(data, tmp_path) == []
        return
    _render(data, tmp_path)
    groups = _groups(_parse(tmp_path))
    name = data["name"]
    web = next(p for g in groups.values() for p in g.process_configs if p.name.startswith(f"{name}-web"))
    graceful = data.get("app_server", {}).get("graceful_timeout", 30)
    assert web.stopwaitsecs > graceful
    assert web.killasgroup and web.stopasgroup and web.redirect_stderr
    assert web.uid is not None  # user= resolved: runs as the app user, not root
    assert web.environment["DJANGO_SECRET_KEY_FILE"] == f"/etc/{name}/secrets/DJANGO_SECRET_KEY"
    assert not any("SECRET_KEY" == k or k.endswith("PASSWORD") for k in web.environment)
    assert shlex.split(web.command)[0].startswith(data["django"].get("venv", f"/srv/{name}/venv") + "/bin/")


def test_group_and_numbered_processes(tmp_path: Path) -> None:
    data = _spec_data(next(p for p in example_paths() if p.stem == "asgi-both"), tmp_path)
    _render(data, tmp_path)
    groups = _groups(_parse(tmp_path))
    names = sorted(p.name for p in groups["market"].process_configs)
    assert names == ["market-celery-0", "market-celery-1", "market-tasks-0", "market-tasks-1", "market-web"]
    celery = groups["market"].process_configs[1]
    assert "--hostname=market-celery-0@%h" in celery.command
    assert celery.stdout_logfile.endswith("/market-celery-0.log") and celery.stopwaitsecs == 120
    # beat: its own file, its own program, outside the group, once
    assert [p.name for p in groups["market-beat"].process_configs] == ["market-beat"]
    assert "--schedule=/var/lib/market/celerybeat-schedule" in groups["market-beat"].process_configs[0].command


def test_uvicorn_is_an_fcgi_program_owning_its_socket(tmp_path: Path) -> None:
    data = _spec_data(next(p for p in example_paths() if p.stem == "minimal"), tmp_path, **_uvicorn_changes())
    _render(data, tmp_path)
    web = _groups(_parse(tmp_path))["blog-web"]
    assert type(web).__name__ == "FastCGIGroupConfig"
    assert web.socket_config.url == "unix:///run/blog/app.sock"
    assert web.socket_config.mode == 0o660
    assert [p.name for p in web.process_configs] == ["blog-web-0", "blog-web-1", "blog-web-2"]
    assert all(p.stopwaitsecs == 35 and p.autorestart is RestartUnconditionally for p in web.process_configs)


def test_no_inet_http_server_and_no_secret_values(tmp_path: Path) -> None:
    for path in example_paths():
        data = _spec_data(path, tmp_path, process_manager="both")
        for file in _render(data, tmp_path / path.stem):
            text = file.read_text()
            assert "[inet_http_server]" not in text
            assert "SECRET_KEY=" not in text and "PASSWORD=" not in text


def test_run_directory_is_created_by_systemd_tmpfiles(tmp_path: Path) -> None:
    tool = require_tool("systemd-tmpfiles")
    data = _spec_data(next(p for p in example_paths() if p.stem == "full"), tmp_path)
    snippet = next(f for f in _render(data, tmp_path) if f.name == "shop.tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("nogroup:x:65534:\nwww-data:x:33:\n")
    result = subprocess.run([tool, "--create", f"--root={root}", str(snippet)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    made = (root / "run/shop").stat()
    assert (oct(made.st_mode & 0o7777), made.st_uid, made.st_gid) == ("0o750", 65534, 33)


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("100%", "100%%"),
    ("%(h)s", "%%(h)s"),
    ("a;b#c", "a;b#c"),
])
def test_escape_value(text: str, expected: str) -> None:
    assert supervisor.escape_value(text) == expected


@pytest.mark.parametrize("text", ["a ;b", "a #b", "a\t;b", "line\nbreak"])
def test_escape_value_refuses_what_the_parser_would_cut(text: str) -> None:
    with pytest.raises(ValueError):
        supervisor.escape_value(text)


def test_format_command_round_trips_through_supervisor(tmp_path: Path) -> None:
    argv = ["/venv/bin/celery", "-A", "shop", "worker", "--format=%(levelname)s", "it's", "a b", "x;y"]
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"[supervisord]\nlogfile={tmp_path}/s.log\n[program:p]\ncommand="
                    f"{supervisor.format_command(argv)}\nstdout_logfile={tmp_path}/p.log\n")
    options = ServerOptions()
    options.configfile = str(conf)
    options.process_config(do_usage=False)
    command = options.process_group_configs[0].process_configs[0].command
    assert shlex.split(command) == argv  # supervisor's process.py splits command= with shlex.split


def test_format_environment_round_trips_through_supervisor() -> None:
    env = {"A": "x,y=z", "B": "/etc/shop/secrets/DJANGO_SECRET_KEY", "C": "50%"}
    text = supervisor.format_environment(env)
    # supervisor expands %% to % before parsing the pairs
    assert dict_of_key_value_pairs(text % {}) == env


@pytest.mark.parametrize("value", ['say "hi"', "'quoted'"])
def test_format_environment_refuses_unrepresentable_quotes(value: str) -> None:
    with pytest.raises(ValueError):
        supervisor.format_environment({"A": value})


def _problems(**changes: object) -> str:
    from scaffold.errors import SpecError

    data = {"version": 1, "name": "shop", "domain": "shop.example.com", "django": {"project": "shop"}, **changes}
    try:
        validate_data(data)
    except SpecError as e:
        return str(e)
    return ""


@pytest.mark.parametrize("changes, expected", [
    ({"background": [{"name": "j", "command": "manage.py clearsessions", "schedule": "daily"}]},
     "background[0].schedule: supervisor cannot run a program periodically"),
    ({"background": [{"name": "b", "command": "celery -A shop beat", "numprocs": 2}]},
     "background[0].numprocs: a singleton"),
    ({"background": [{"name": "w", "command": "celery -A shop worker -B"}]},
     "background[0].command: runs beat inside the worker"),
    ({"background": [{"name": "w", "command": "celery worker ;rm"}]},
     "background[0].command: supervisor reads ';' or '#' after a space"),
    ({"background": [{"name": "w", "command": "/usr/bin/celery worker"}]},
     "background[0].command: '/usr/bin/celery': the first word names an executable"),
    ({"background": [{"name": "w", "command": "celery 'worker"}]},
     "background[0].command: must be words as a shell splits them"),
    ({"background": [{"name": "j", "command": "manage.py x", "schedule": "daily; rm"}], "process_manager": "systemd"},
     "background[0].schedule: 'daily; rm' is not a systemd OnCalendar expression"),
    ({"django": {"project": "shop", "root": "/home/shop/app"}, "process_manager": "systemd"},
     "django.root: /home/shop/app is in a home directory"),
])
def test_process_manager_rules(changes: dict, expected: str) -> None:
    assert expected in _problems(**changes)


def test_a_scheduled_program_is_fine_with_systemd_and_singletons_only_once() -> None:
    assert _problems(process_manager="both", background=[
        {"name": "j", "command": "manage.py clearsessions", "schedule": "*-*-* 04:00:00"},
        {"name": "sched", "command": "manage.py runscheduler", "singleton": True}]) == ""
