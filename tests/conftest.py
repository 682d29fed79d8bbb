"""Shared fixtures and options, and readable failures for commands the tests run."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

_TESTS = Path(__file__).resolve().parent
_TAIL = 4000   # characters of a failed command's output shown in the report


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden/ from the example specs instead of comparing (review the diff).",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A command run with check=True that fails shows its own output, not subprocess.py's source."""
    outcome = yield
    report = outcome.get_result()
    error = call.excinfo.value if call.excinfo else None
    if isinstance(error, (subprocess.CalledProcessError, subprocess.TimeoutExpired)):
        report.longrepr = describe_command_failure(error, _raised_at(call.excinfo))


def _raised_at(excinfo: pytest.ExceptionInfo) -> str:
    """file:line of the innermost frame in the test suite's own code."""
    ours = [entry for entry in excinfo.traceback if _TESTS in Path(str(entry.path)).parents]
    entry = ours[-1] if ours else excinfo.traceback[-1]
    return f"{Path(str(entry.path)).relative_to(_TESTS.parent)}:{entry.lineno + 1}"


def describe_command_failure(error: subprocess.SubprocessError, where: str) -> str:
    """The command, how it ended, and the end of what it printed."""
    command = error.cmd if isinstance(error.cmd, str) else shlex.join(str(a) for a in error.cmd)
    ended = (f"exit status {error.returncode}" if isinstance(error, subprocess.CalledProcessError)
             else f"timed out after {error.timeout} s")
    lines = [f"{where}: command failed ({ended}):", f"  $ {command}"]
    for name in ("stdout", "stderr"):
        text = getattr(error, name, None)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text:
            lines += [f"--- {name} (last {_TAIL} characters) ---", text[-_TAIL:].rstrip()]
    return "\n".join(lines)
