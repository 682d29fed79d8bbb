"""The stack under pm2: a pm2 daemon of the app user, in a PM2_HOME of its own, runs the rendered ecosystem file.

The daemon is started as INSTALL.md's pm2 step starts it (the app user, PM2_HOME, PM2_KILL_SIGNAL from
the rendered drop-in) and always killed in stop(), with every process it ran, whatever the test did.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
from pathlib import Path
from typing import Optional

from live.host import APP_USER
from live.layout import NAME, Site, ecosystem_path, read_ecosystem
from live.stack import CLEAN_PATH, Stack, _kill_group, process_tree, wait_for

from scaffold.spec import load_spec
from scaffold.targets import pm2 as pm2_target

# A variable of the shell that runs `pm2 start`: filter_env must keep it from the programs.
CALLER_MARKER = "DJDEPLOY_LIVE_CALLER_ENV"


def daemon_environment(site: Site) -> dict[str, str]:
    """The daemon's environment: the rendered drop-in's variables, PM2_HOME moved into the test's tree."""
    dropin = next((site.rendered / "pm2").glob("pm2-*.conf")).read_text()
    found = dict(line.removeprefix("Environment=").split("=", 1) for line in dropin.splitlines()
                 if line.startswith("Environment="))
    found["PM2_HOME"] = str(pm2_home(site))
    return found


def pm2_home(site: Site) -> Path:
    return site.base / "pm2-home"


class Pm2Stack(Stack):
    """nginx in front of the app that a pm2 daemon runs."""

    def __init__(self, site: Site, nginx: str, pm2: str) -> None:
        super().__init__(site, nginx)
        self.pm2_bin = pm2
        self.daemon_pids: set[int] = set()

    def pm2(self, *args: str, timeout: float = 60, extra_env: Optional[dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
        """Run the pm2 command line as the app user against this stack's daemon."""
        user = pwd.getpwnam(APP_USER)
        env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": str(pm2_home(self.site)),
               **daemon_environment(self.site), **(extra_env or {})}
        return subprocess.run([self.pm2_bin, *args], env=env, user=user.pw_uid, group=user.pw_gid,
                              extra_groups=[], cwd="/", capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start_manager(self) -> None:
        """`pm2 start <ecosystem> --only <every app>` as the app user: the daemon starts with it."""
        user = pwd.getpwnam(APP_USER)
        home = pm2_home(self.site)
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, user.pw_uid, user.pw_gid)
        names = ",".join(app["name"] for app in read_ecosystem(self.site))
        done = self.pm2("start", str(ecosystem_path(self.site)), "--only", names,
                        extra_env={CALLER_MARKER: "leaked"})
        self._note_daemon()
        if done.returncode != 0:
            raise RuntimeError(f"pm2 start failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _note_daemon(self) -> None:
        pid_file = pm2_home(self.site) / "pm2.pid"
        if pid_file.exists():
            self.daemon_pids.add(int(pid_file.read_text().strip()))

    def apps(self) -> list[dict]:
        """`pm2 jlist`: every app with its status and pid."""
        done = self.pm2("jlist", timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"pm2 jlist failed: {done.stderr}")
        start = done.stdout.find("[")  # pm2 may print notices before the JSON
        return json.loads(done.stdout[start:]) if start >= 0 else []

    def status(self) -> dict[str, tuple[str, Optional[int]]]:
        found: dict[str, tuple[str, Optional[int]]] = {}
        for app in self.apps():
            pid = app.get("pid") or None
            found[app["name"]] = (app["pm2_env"]["status"], pid)
            if pid:
                self.seen_pids.add(pid)
        return found

    def all_running(self) -> bool:
        states = self.status()
        return bool(states) and all(state == "online" for state, _ in states.values())

    def web_processes(self) -> dict[str, int]:
        return {name: pid for name, (_, pid) in self.status().items() if name == f"{NAME}-web" and pid}

    def reload_web(self) -> subprocess.CompletedProcess:
        """The runbook's reload: the app server's own reload signal through pm2."""
        return self.pm2(*pm2_target.web_reload_command(load_spec(self.site.spec_path)))

    def restart_count(self, name: str) -> int:
        return next(a["pm2_env"]["restart_time"] for a in self.apps() if a["name"] == name)

    def stop_manager(self) -> None:
        """`pm2 kill`, then SIGKILL the daemon and every process it still has, whatever happened."""
        self._note_daemon()
        try:
            self.status()
            self.pm2("kill", timeout=60)
        except Exception:  # noqa: BLE001 - stopping must go on whatever state the stack is in
            pass
        left = process_tree(self.daemon_pids)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.seen_pids:
            _kill_group(pid)


def wait_until_gone(pids: set[int], timeout: float, what: str) -> None:
    """Wait until none of *pids* is alive (a zombie counts as gone)."""
    def gone() -> bool:
        return not any(_alive(pid) for pid in pids)
    wait_for(gone, timeout, what, interval=0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
