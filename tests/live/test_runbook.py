"""The rendered INSTALL.md, run: its shell blocks for the smallest spec, as root, then the app working.

The smallest spec names host paths (/srv/<name>, /etc/<name>, /var/lib/<name>, ...); the test moves
each of them under a temporary directory in every rendered file and in the runbook, the one change
it makes. The virtualenv is the live tests' own (step 3 installs packages from PyPI, which the live
venv already has), and the app account is the live tests' user instead of a new `blog` account on
this machine (``django.user``/``group``; everything else is the smallest spec's default).
"""

from __future__ import annotations

import pwd
import re
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from support import EXAMPLES, require_tool

from live.host import APP_USER
from live.layout import DJPROJECT, REPO
from live.stack import Host, Stack

pytestmark = pytest.mark.live

_SECTION = re.compile(r"^## (\d+)[a-z]?\. ", re.M)
_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def runbook_blocks(text: str) -> dict[int, list[str]]:
    """The shell blocks of INSTALL.md by step number."""
    starts = [(int(m[1]), m.start()) for m in _SECTION.finditer(text)] + [(0, len(text))]
    return {number: _BLOCK.findall(text[start:end]) for (number, start), (_, end) in zip(starts, starts[1:])}


def host_paths(name: str, root: Path, venv: Path) -> list[tuple[str, str]]:
    """(host path, stand-in) for every host directory the smallest spec uses, longest first."""
    moved = [f"/srv/{name}", f"/etc/{name}", f"/var/lib/{name}", f"/var/log/{name}", f"/run/{name}"]
    return [(f"/srv/{name}/venv", str(venv))] + [(path, f"{root}{path}") for path in moved]


def move_paths(text: str, moves: list[tuple[str, str]]) -> str:
    for path, stand_in in moves:
        text = re.sub(re.escape(path) + r"(?=[/\s'\"]|$)", stand_in, text, flags=re.M)
    return text


def render_smallest(tmp: Path, venv: Path) -> tuple[Path, dict, list[tuple[str, str]]]:
    """Render tests/examples/minimal.yaml (run as the live user) and move its host paths under *tmp*."""
    data = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    data["django"] |= {"user": APP_USER, "group": APP_USER}
    (tmp / "spec.yaml").write_text(yaml.safe_dump(data))
    out = tmp / "deploy"
    subprocess.run([sys.executable, "-m", "scaffold", "render", str(tmp / "spec.yaml"), "--out", str(out)],
                   check=True, capture_output=True, timeout=60, cwd=REPO)
    moves = host_paths(data["name"], tmp / "host", venv)
    for path in [p for p in out.rglob("*") if p.is_file()]:
        path.write_text(move_paths(path.read_text(), moves))
    return out, data, moves


def place_project(app: Path, project: str) -> None:
    """A startproject-shaped project named *project*: its settings keep SQLite at BASE_DIR / "db.sqlite3"."""
    shutil.copytree(DJPROJECT, app, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"), dirs_exist_ok=True)
    package = app / project
    package.mkdir(exist_ok=True)
    (package / "__init__.py").touch()
    (package / "settings.py").write_text("from testsite.settings import *  # noqa: F403\n")
    for entry in ("wsgi", "asgi"):
        (package / f"{entry}.py").write_text(f"from testsite.{entry} import application  # noqa: F401\n")


def run_blocks(blocks: list[str], cwd: Path, *, then: str = "") -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + "\n".join(blocks) + "\n" + then
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=80)


def test_smallest_spec_migrates_and_writes_as_the_app_user(live_host: Host) -> None:
    require_tool("runuser", "INSTALL.md's manage() runs commands as the app user")
    tmp = Path(tempfile.mkdtemp(prefix="runbook-", dir=live_host.base))
    tmp.chmod(0o755)  # a stand-in for /, which the app user may enter
    out, data, moves = render_smallest(tmp, live_host.venv)
    steps = runbook_blocks((out / "INSTALL.md").read_text())
    root = Path(move_paths(f"/srv/{data['name']}/app", moves))

    done = run_blocks(steps[2][:1], out)  # user, group, directories, the SQLite file
    assert done.returncode == 0, done.stderr
    place_project(root, data["django"]["project"])
    write = ("manage shell -c \"from django.contrib.sessions.backends.db import SessionStore; "
             "s = SessionStore(); s['seen'] = 1; s.save(); print('saved', s.session_key)\"")
    done = run_blocks([*steps[2][1:], *steps[4], *steps[5], *steps[6]], out, then=write)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^saved \w+$", done.stdout, re.M), done.stdout

    database = Path(move_paths(f"/var/lib/{data['name']}/db.sqlite3", moves))
    info = database.stat()
    assert pwd.getpwuid(info.st_uid).pw_name == APP_USER
    assert stat.S_IMODE(info.st_mode) == 0o640  # not world-readable
    assert not (root / "db.sqlite3").exists()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        assert db.execute("select count(*) from django_session").fetchone() == (1,)


def test_runbook_supervisorctl_status_names_what_supervisord_runs(stack: Stack) -> None:
    """Each `supervisorctl status ...` line of step 8, against the stack's supervisord: exit 0, web RUNNING."""
    if stack.site.manager != "supervisor":
        pytest.skip("the supervisorctl lines of a supervisor runbook")
    steps = runbook_blocks((stack.site.rendered / "INSTALL.md").read_text())
    lines = [line for block in steps[8] for line in block.splitlines() if line.startswith("supervisorctl status ")]
    assert lines
    for line in lines:
        done = stack.supervisorctl(*shlex.split(line)[1:])
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        assert re.search(r"^\S*-web\S*\s+RUNNING", done.stdout, re.M), done.stdout
