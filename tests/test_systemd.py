"""systemd target: quoting, and every unit checked by systemd-analyze verify (silent) and security (<= 2.0)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support import EXAMPLES, example_paths, require_tool
from scaffold.render import render_all
from scaffold.spec import validate_data
from scaffold.targets import systemd
from scaffold.targets._programs import programs

MAX_EXPOSURE = 2.0
_EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")


def _systemd_spec(path: Path):
    """The example as systemd runs it (a supervisor or pm2 example becomes `both`)."""
    data = yaml.safe_load(path.read_text())
    if data.get("process_manager", "supervisor") in ("supervisor", "pm2"):
        data["process_manager"] = "both"
    return validate_data(data)


def _host_tree(tmp: Path, spec) -> Path:
    """A root directory with the units installed and every program they run, for --root=."""
    root = tmp / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for f in render_all(spec):
        if f.dest.parts[0] == "systemd" and f.dest.suffix != ".tmpfiles":
            (units / f.dest.name).write_text(f.content)
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True)
    for target in Path("/lib/systemd/system").glob("*.target"):
        shutil.copy(target, lib)
    for exe in {p.argv[0] for p in programs(spec)} | {systemd.KILL}:
        (root / exe.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / exe.lstrip("/")).write_text("#!/bin/sh\n")
        (root / exe.lstrip("/")).chmod(0o755)
    return root


def _unit_names(spec) -> list[str]:
    """Every unit, templates as their first instance (what `systemctl enable` gets)."""
    found = [f"{spec.name}-web.socket", *(u.filename for u in systemd.units(spec) if u.filename.endswith(".target"))]
    for program in programs(spec):
        found += systemd.instance_names(program)[:1]
        found += [f"{program.name}.timer"] if program.schedule else []
    return found


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.stem)
def test_units_verify_silently(path: Path, tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    spec = _systemd_spec(path)
    root = _host_tree(tmp_path, spec)
    result = subprocess.run([tool, "verify", f"--root={root}", *_unit_names(spec)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.stem)
def test_services_are_hardened(path: Path, tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    spec = _systemd_spec(path)
    root = _host_tree(tmp_path, spec)
    for unit in (u for u in _unit_names(spec) if u.endswith(".service")):
        result = subprocess.run([tool, "security", "--offline=yes", f"--root={root}", unit],
                                capture_output=True, text=True, timeout=60)
        score = float(_EXPOSURE.search(result.stdout).group(1))
        assert score <= MAX_EXPOSURE, (unit, result.stdout)


def test_a_misspelt_key_would_be_caught(tmp_path: Path) -> None:
    """The verify test means something: systemd-analyze warns on stderr, rc 0, for unknown keys."""
    tool = require_tool("systemd-analyze")
    spec = _systemd_spec(next(p for p in example_paths() if p.stem == "minimal"))
    root = _host_tree(tmp_path, spec)
    unit = root / "etc/systemd/system/blog-web.service"
    unit.write_text(unit.read_text().replace("KillMode=", "KillMod="))
    result = subprocess.run([tool, "verify", f"--root={root}", "blog-web.service"], capture_output=True, text=True)
    assert "Unknown key" in result.stderr


def test_timer_schedules_parse_as_calendar_events() -> None:
    tool = require_tool("systemd-analyze")
    spec = _systemd_spec(next(p for p in example_paths() if p.stem == "uvicorn-systemd"))
    for program in (p for p in programs(spec) if p.schedule):
        result = subprocess.run([tool, "calendar", program.schedule], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_unit_shapes() -> None:
    spec = _systemd_spec(next(p for p in example_paths() if p.stem == "asgi-both"))
    units = {u.filename: dict((k, v) for _, lines in u.sections for k, v in lines) for u in systemd.units(spec)}
    web = units["market-web.service"]
    assert (web["Type"], web["KillMode"], web["Restart"]) == ("notify", "mixed", "on-failure")
    assert int(web["TimeoutStopSec"]) > spec.app_server.graceful_timeout
    assert web["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert "DJANGO_SECRET_KEY:/etc/market/secrets/DJANGO_SECRET_KEY" in [
        v for _, lines in systemd.units(spec)[1].sections for k, v in lines if k == "LoadCredential"]
    assert "SECRET" not in web["Environment"].replace("DJANGO_SETTINGS_MODULE", "")
    assert units["market-web.socket"]["SocketGroup"] == "www-data"
    assert "market-celery@.service" in units and units["market-beat.service"]["Type"] == "exec"


def test_uvicorn_processes_share_the_socket() -> None:
    spec = _systemd_spec(next(p for p in example_paths() if p.stem == "uvicorn-systemd"))
    units = {u.filename: dict((k, v) for _, lines in u.sections for k, v in lines) for u in systemd.units(spec)}
    assert units["chat-web.socket"]["Service"] == "chat-web@1.service"
    assert units["chat-web@.service"]["Sockets"] == "chat-web.socket"
    # Each start would otherwise make the shared listener blocking under the running instances.
    assert units["chat-web@.service"]["NonBlocking"] == "yes"
    assert units["chat-web@.service"]["Restart"] == "always"  # uvicorn exits 0 after limit_max_requests
    assert units["chat-clearsessions.service"]["Type"] == "oneshot"
    assert units["chat-clearsessions.timer"]["OnCalendar"] == "daily"


def _lines(spec, filename: str) -> list[tuple[str, str]]:
    unit = next(u for u in systemd.units(spec) if u.filename == filename)
    return [(k, v) for _, lines in unit.sections for k, v in lines]


def _uvicorn(**changes):
    data = yaml.safe_load((next(p for p in example_paths() if p.stem == "uvicorn-systemd")).read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data.setdefault(section, {})[key] = value
    return validate_data(data)


def test_instances_belong_to_one_target_the_socket_starts() -> None:
    """A socket restart brings every instance back, and `workers` lives in a unit file."""
    spec = _uvicorn(app_server__workers=3)
    target = dict(_lines(spec, "chat-web.target"))
    assert target["Wants"] == "chat-web@1.service chat-web@2.service chat-web@3.service"
    assert (target["BindsTo"], target["After"]) == ("chat-web.socket", "chat-web.socket")
    assert ("Wants", "chat-web.target") in _lines(spec, "chat-web.socket")
    instance = dict(_lines(spec, "chat-web@.service"))
    assert instance["PartOf"] == "chat-web.target" and "WantedBy" not in instance
    fewer = _uvicorn(app_server__workers=2)
    assert dict(_lines(fewer, "chat-web.target"))["Wants"] == "chat-web@1.service chat-web@2.service"


def test_setup_failures_end_in_failed() -> None:
    """A missing credential (exit 243) is not retried; a crash loop reaches the start limit at RestartSec=2."""
    for spec, name in ((_uvicorn(), "chat-web@.service"), (_systemd_spec(EXAMPLES / "full.yaml"), "shop-web.service")):
        lines = dict(_lines(spec, name))
        assert "243" in lines["RestartPreventExitStatus"].split()
    gunicorn = dict(_lines(_systemd_spec(EXAMPLES / "full.yaml"), "shop-web.service"))
    burst, interval = int(gunicorn["StartLimitBurst"]), int(gunicorn["StartLimitIntervalSec"])
    assert burst * int(gunicorn["RestartSec"]) * 2 < interval  # even starts taking RestartSec each get there


def test_state_directory_keeps_its_mode_and_sqlite_elsewhere_is_writable() -> None:
    spec = _uvicorn()
    assert ("StateDirectoryMode", "0750") in _lines(spec, "chat-web@.service")
    beside = _uvicorn(django__database={"engine": "sqlite", "name": "/var/lib/chat-db/db.sqlite3"})
    writable = dict(_lines(beside, "chat-web@.service"))["ReadWritePaths"].split()
    assert "/var/lib/chat-db" in writable
    inside = _uvicorn(django__database={"engine": "sqlite", "name": "/var/lib/chat/data/db.sqlite3"})
    assert "/var/lib/chat/data" not in dict(_lines(inside, "chat-web@.service"))["ReadWritePaths"].split()


@pytest.mark.parametrize("word, expected", [
    ("--loglevel=INFO", "--loglevel=INFO"),
    ("/srv/app/venv/bin/celery", "/srv/app/venv/bin/celery"),
    ("a b", '"a b"'),
    ("say \"hi\"", '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    (";", '";"'),
    ("$HOME", '"$$HOME"'),
    ("%h", "%%h"),
    ("", '""'),
])
def test_quote_word(word: str, expected: str) -> None:
    assert systemd.quote_word(word) == expected


def test_format_exec_needs_an_absolute_program() -> None:
    with pytest.raises(ValueError):
        systemd.format_exec(["celery", "worker"])


def test_format_environment_doubles_percent_but_not_dollar() -> None:
    text = systemd.format_environment({"B": "a$b", "A": "50%", "C": 'q"q'})
    assert text == '"A=50%%" "B=a$b" "C=q\\"q"'
