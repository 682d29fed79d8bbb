"""tests/bench.py runs end to end (one worker class, one short round): a smoke test, no figures checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import require_tool

pytestmark = pytest.mark.live

BENCH = Path(__file__).resolve().parents[1] / "bench.py"


def test_bench_runs_and_reports_every_target(live_host) -> None:
    require_tool("wrk", "for tests/bench.py")
    require_tool("unshare", "for tests/bench.py")
    done = subprocess.run([sys.executable, str(BENCH), "--kinds", "sync", "--seconds", "1", "--rounds", "1",
                           "--connections", "2", "--threads", "1"], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split(" | ")[1]: line.split(" | ") for line in done.stdout.splitlines()
            if line.startswith("| sync |") or line.startswith("| static |")}
    assert set(rows) == {"sync, small page: rendered nginx", "sync, small page: gunicorn-docs nginx",
                         "sync, small page: app server alone", "sync, small page: app server alone, its own TLS",
                         "sync, template page: rendered nginx", "sync, template page: app server alone",
                         "sync, small page: least nginx proxy", "sync, template page: least nginx proxy",
                         "sync, small page: rendered nginx, on its own CPU",
                         "sync, template page: rendered nginx, on its own CPU",
                         "stylesheet: rendered nginx", "stylesheet: bare alias location",
                         "stylesheet: Django + WhiteNoise", "sync, small page: rendered, reload every second"}
    assert all(row[7] == "0" for row in rows.values() if "reload" not in row[1]), done.stdout  # non-2xx
    assert rows["stylesheet: rendered nginx"][-1].strip(" |") in ("gzip", "br")  # br with static.brotli
    assert rows["stylesheet: bare alias location"][-1].strip(" |") == "identity"
    assert rows["sync, small page: rendered nginx"][-1].strip(" |") == "identity"  # pages are not compressed
    assert rows["sync, template page: rendered nginx"][-1].strip(" |") == "identity"
    assert "| static: rendered / WhiteNoise |" in done.stdout
    assert "| sync, small page: rendered / app server alone with its own TLS |" in done.stdout
    assert "| sync, template page: rendered / app server alone |" in done.stdout
    assert "| sync, template page: least nginx proxy / app server alone |" in done.stdout
    assert rows["sync, small page: least nginx proxy"][-1].strip(" |") == "identity"  # its gzip off holds
    # host CPU (nginx and the app together) is measured for every row: the ratios at equal host CPU use it
    assert all(float(row[9].replace(",", "")) > 0 for row in rows.values()), done.stdout
