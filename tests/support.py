"""Helpers the tests share: example specs, and system tools that skip locally but fail under CI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS / "examples"
UNDER_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str, why: str = "") -> str:
    """Return the path of *name*; skip the test without it, except under CI=true, where fail."""
    # The test environment's own scripts come first: `python -m pytest` run from a virtualenv
    # that is not activated does not have its bin/ on PATH.
    candidates = [Path(sys.executable).parent / name]
    on_path = shutil.which(name)
    candidates += [Path(on_path)] if on_path else []
    candidates += [Path("/usr/sbin") / name, Path("/sbin") / name]
    found = next((str(p) for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)
    if found:
        return found
    message = f"{name} is not installed{': ' + why if why else ''}"
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: .ci/run must install it)")
    pytest.skip(message)


def example_paths() -> list[Path]:
    """Every example spec under tests/examples/."""
    return sorted(EXAMPLES.glob("*.yaml"))
