"""pm2 target: the ecosystem file read by node and checked by pm2's own option schema, log rotation by
logrotate, the daemon's drop-in by systemd-analyze, and the rules for what pm2 cannot do."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from support import EXAMPLES, require_tool
from scaffold.errors import SpecError
from scaffold.render import render_all
from scaffold.spec import validate_data
from scaffold.targets import pm2
from scaffold.targets._programs import programs

# Loads an ecosystem file and checks each app with pm2's own Config.validateJSON: the errors it reports
# and the keys it drops (pm2 ignores a key it does not know, so a misspelt option would vanish).
CHECK_JS = r"""
const path = require("path");
const [pm2dir, file] = process.argv.slice(1);
const Config = require(path.join(pm2dir, "lib/tools/Config.js"));
const schema = require(path.join(pm2dir, "lib/API/schema.json"));
const aliasOf = {};
for (const [key, def] of Object.entries(schema)) {
  for (const alias of [].concat(def.alias || [])) aliasOf[alias] = key;
}
const apps = require(file).apps;
process.stdout.write(JSON.stringify(apps.map((app) => {
  const checked = Config.validateJSON(app);
  const dropped = Object.keys(app).filter((key) => !((aliasOf[key] || key) in checked.config));
  return {name: app.name, errors: checked.errors, dropped, config: checked.config};
})));
"""


def _data(**changes: object) -> dict:
    data = yaml.safe_load((EXAMPLES / "pm2.yaml").read_text())
    data.update(changes)
    return data


def _render(data: dict, out: Path) -> dict[str, Path]:
    files = {}
    for f in render_all(validate_data(data)):
        if f.dest.parts[0] == "pm2":
            (out / f.dest).parent.mkdir(parents=True, exist_ok=True)
            (out / f.dest).write_text(f.content)
            files[f.dest.name] = out / f.dest
    return files


def _pm2_package() -> Path:
    """The installed pm2 package (npm's global folder), or skip/fail like a missing tool."""
    require_tool("pm2", "the ecosystem file is checked by pm2's own schema")
    npm = require_tool("npm", "to find the pm2 package")
    root = Path(subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=True).stdout.strip())
    return root / "pm2"


def _app_account() -> tuple[str, str]:
    """The user node runs as (the spec never runs the app as root): nobody when the tests run as root."""
    if os.geteuid() == 0:
        return "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, grp.getgrgid(me.pw_gid).gr_name


@pytest.fixture
def as_me() -> dict:
    """django.user is the account node runs as: the ecosystem file loads only for that user."""
    user, group = _app_account()
    return {"django": {"project": "board", "user": user, "group": group, "database": {"engine": "postgresql"},
                       "cache": {"backend": "redis"}}}


def _run_node(script: str, *args: str) -> subprocess.CompletedProcess:
    """node as _app_account(), on copies of the files in a directory that account can read."""
    node = require_tool("node", "pm2 loads the ecosystem file with node")
    where = Path(tempfile.mkdtemp(prefix="djdeploy-pm2-"))
    try:
        where.chmod(0o755)
        copies = []
        for arg in args:
            if Path(arg).is_file():
                copies.append(str(shutil.copy(arg, where / Path(arg).name)))
                Path(copies[-1]).chmod(0o644)
            else:
                copies.append(arg)
        account = pwd.getpwnam(_app_account()[0])
        switch = ({"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
                  if os.geteuid() == 0 else {})
        return subprocess.run([node, "-e", script, *copies], capture_output=True, text=True, timeout=60,
                              cwd=where, **switch)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _check(ecosystem: Path) -> list[dict]:
    done = _run_node(CHECK_JS, str(_pm2_package()), str(ecosystem))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_every_key_is_a_pm2_option_pm2_accepts(kind: str, as_me: dict, tmp_path: Path) -> None:
    app_server = {"kind": kind, "workers": 3}
    files = _render(_data(app_server=app_server, **as_me), tmp_path)
    checked = _check(files[pm2.ECOSYSTEM_NAME])
    assert [c["name"] for c in checked] == ["board-web", "board-celery-0", "board-celery-1", "board-beat"]
    for app in checked:
        assert (app["errors"], app["dropped"]) == ([], []), app["name"]
        config = app["config"]
        assert config["exec_interpreter"] == "none" and config["treekill"] is True
        assert config["kill_timeout"] > 30 * 1000  # above graceful_timeout (30 s)
        assert config["out_file"] == config["error_file"] == f"/var/log/board/{app['name']}.log"
        assert set(config["env"]) == {"DJANGO_SETTINGS_MODULE", "PYTHONUNBUFFERED", "DJANGO_SECRET_KEY_FILE",
                                      "DATABASE_PASSWORD_FILE"}
    assert checked[1]["config"]["args"][-1] == "--hostname=board-celery-0@%h"


def test_a_misspelt_option_would_be_caught(as_me: dict, tmp_path: Path) -> None:
    """The check above means something: pm2 drops an unknown key without a word, the check sees it."""
    ecosystem = _render(_data(**as_me), tmp_path)[pm2.ECOSYSTEM_NAME]
    ecosystem.write_text(ecosystem.read_text().replace('"kill_timeout"', '"kill_timout"'))
    assert all(app["dropped"] == ["kill_timout"] for app in _check(ecosystem))


def test_the_file_refuses_to_load_for_another_user(tmp_path: Path) -> None:
    data = _data()
    data["django"] = {**data["django"], "user": "board", "group": "board"}
    ecosystem = _render(data, tmp_path)[pm2.ECOSYSTEM_NAME]
    done = _run_node("require(process.argv[1])", str(ecosystem))
    assert done.returncode != 0
    assert f"these programs run as board, not {_app_account()[0]}" in done.stderr


def test_no_secret_values_and_no_scheduled_programs(tmp_path: Path) -> None:
    for name, path in _render(_data(), tmp_path).items():
        text = path.read_text()
        assert "SECRET_KEY=" not in text and "PASSWORD=" not in text and '"DJANGO_SECRET_KEY"' not in text, name


def test_logrotate_reads_the_rotation_file(tmp_path: Path) -> None:
    tool = require_tool("logrotate", "pm2 does not rotate its logs")
    user, group = _app_account()
    base = Path(tempfile.mkdtemp(prefix="djdeploy-logrotate-"))
    try:
        base.chmod(0o755)  # logrotate reads the logs as the app account (su), as on a host
        log_dir = base / "log"
        log_dir.mkdir(mode=0o750)
        (log_dir / "board-web.log").write_text("x" * 100)
        for path in (log_dir, log_dir / "board-web.log"):
            shutil.chown(path, user, group)
        data = _data(paths={"log_dir": str(log_dir)})
        data["django"] = {**data["django"], "user": user, "group": group}
        rules = _render(data, tmp_path)["board.logrotate"]
        done = subprocess.run([tool, "--debug", "--state", str(tmp_path / "state"), str(rules)],
                              capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    assert f"rotating pattern: {log_dir}/*.log  52428800 bytes" in done.stderr
    assert f"considering log {log_dir}/board-web.log" in done.stderr


def test_the_drop_in_applies_to_the_unit_pm2_startup_writes(tmp_path: Path) -> None:
    """pm2's own systemd template, filled in as `pm2 startup systemd -u board --hp /var/lib/board` does,
    plus the rendered drop-in: systemd-analyze verify is silent and the daemon gets SIGTERM."""
    tool = require_tool("systemd-analyze")
    template = (_pm2_package() / "lib/templates/init-scripts/systemd.tpl").read_text()
    spec = validate_data(_data())
    home = pm2.pm2_home(spec)
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    (units / f"{pm2.service_name(spec)}.d").mkdir(parents=True)
    unit = (template.replace("%USER%", "board").replace("%NODE_PATH%", "/usr/bin").replace("%HOME_PATH%", home)
            .replace("%PM2_PATH%", "/usr/bin/pm2"))
    (units / pm2.service_name(spec)).write_text(unit)
    dropin = _render(_data(), tmp_path)["pm2-board.conf"]
    shutil.copy(dropin, units / f"{pm2.service_name(spec)}.d" / "djdeploy.conf")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/pm2").write_text("#!/bin/sh\n")
    (root / "usr/bin/pm2").chmod(0o755)
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True)
    for target in Path("/lib/systemd/system").glob("*.target"):
        shutil.copy(target, lib)
    done = subprocess.run([tool, "verify", f"--root={root}", pm2.service_name(spec)], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")
    assert re.findall(r"^Environment=(\S+)$", dropin.read_text(), re.M) == [
        f"PM2_HOME={home}", "PM2_KILL_SIGNAL=SIGTERM"]


def test_reload_is_the_app_servers_own_signal_not_pm2_reload() -> None:
    for kind in ("gunicorn", "uvicorn"):
        spec = validate_data(_data(app_server={"kind": kind, "workers": 2}))
        assert pm2.web_reload_command(spec) == ["sendSignal", "SIGHUP", "board-web"]
        assert programs(spec)[0].numprocs == 1  # one pm2 app; uvicorn's own supervisor runs the workers


def _problems(**changes: object) -> str:
    try:
        validate_data(_data(**changes))
    except SpecError as e:
        return str(e)
    return ""


@pytest.mark.parametrize("changes, expected", [
    ({"background": [{"name": "j", "command": "manage.py clearsessions", "schedule": "daily"}]},
     "background[0].schedule: pm2 cannot run a program periodically"),
    ({"background": [{"name": "w", "command": "celery -A board worker", "stop_signal": "INT"}]},
     "background[0].stop_signal: pm2 stops every program with one signal, SIGTERM"),
    ({"app_server": {"kind": "uvicorn", "workers": 1}}, "app_server.workers: under pm2, uvicorn's own supervisor"),
])
def test_what_pm2_cannot_do_is_refused(changes: dict, expected: str) -> None:
    assert expected in _problems(**changes)


def test_what_only_supervisor_or_systemd_refuse_is_fine_under_pm2() -> None:
    """supervisor's comment characters and systemd's hidden home directories do not apply to pm2."""
    assert _problems(background=[{"name": "w", "command": "celery -A board worker # x"}],
                     django={"project": "board", "root": "/home/board/app"}) == ""
