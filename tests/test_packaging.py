"""Packaging: the wheel carries templates/ and schemas/ and renders from a fresh virtualenv."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from support import EXAMPLES, TESTS

ROOT = TESTS.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    return next(dist.glob("djdeploy-*.whl"))


def _site_dirs() -> list[str]:
    """The test environment's site-packages folders."""
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return sorted(paths)


def test_wheel_contains_code_templates_and_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scaffold/cli.py" in names
    assert "scaffold/schemas/djdeploy.schema.json" in names
    templates = {n.split("/")[2] for n in names if n.startswith("scaffold/templates/")}
    on_disk = {p.name for p in (ROOT / "templates").iterdir() if p.is_dir()}
    assert templates == on_disk


def test_wheel_renders_from_a_fresh_virtualenv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    # The runtime dependencies come from the test environment through a .pth file, without a
    # download; the wheel goes into the new venv's own site-packages, which come first on sys.path.
    # (--system-site-packages would expose the base interpreter's packages, not this environment's.)
    inner = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                check=True, capture_output=True, text=True).stdout.strip())
    (inner / "test-environment.pth").write_text("\n".join(_site_dirs()) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
           "--ignore-installed"]  # a djdeploy in the test environment must not satisfy it
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, text=True)
    where = subprocess.run([venv / "bin" / "python", "-c", "import scaffold; print(scaffold.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where
    out = tmp_path / "deploy"
    result = subprocess.run([venv / "bin" / "djdeploy", "render", str(EXAMPLES / "full.yaml"), "--out", str(out)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / ".djdeploy-manifest").is_file()
    assert len([p for p in out.rglob("*") if p.is_file()]) > 1
