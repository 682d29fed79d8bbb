"""Print median wall times of `djdeploy --help` and of rendering tests/examples/full.yaml, in fresh processes.

Run: python tests/bench_cli.py [--runs N]. Targets on a 2-core machine: --help under 80 ms,
render under 250 ms; `python -c pass` is measured in the same run as the floor.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent / "examples" / "full.yaml"


def median_ms(argv: list[str], runs: int) -> float:
    """Median wall time of *argv* over *runs* runs, after one warm-up run."""
    subprocess.run(argv, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    djdeploy = [sys.executable, "-m", "scaffold"]
    out = Path(tempfile.mkdtemp(prefix="djdeploy-bench-"))
    try:
        rows = [
            ("python -c pass", median_ms([sys.executable, "-c", "pass"], runs), None),
            ("djdeploy --help", median_ms([*djdeploy, "--help"], runs), 80),
            ("djdeploy render (full example)",
             median_ms([*djdeploy, "render", str(EXAMPLE), "--out", str(out / "deploy"), "--force"], runs), 250),
        ]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; median of {runs} runs")
    print(f"{'command':<36} {'median ms':>10} {'target ms':>10}")
    for name, ms, target in rows:
        print(f"{name:<36} {ms:>10.1f} {target if target else '-':>10}")


if __name__ == "__main__":
    main()
