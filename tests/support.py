"""Helpers the tests share: example specs, and system tools that skip locally but fail under CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS / "examples"
UNDER_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str, why: str = "") -> str:
    """Return the path of *name*; skip the test without it, except under CI=true, where fail."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if found:
        return found
    message = f"{name} is not installed{': ' + why if why else ''}"
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: .ci/run must install it)")
    pytest.skip(message)


def example_paths() -> list[Path]:
    """Every example spec under tests/examples/."""
    return sorted(EXAMPLES.glob("*.yaml"))
