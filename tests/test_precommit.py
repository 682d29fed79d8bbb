"""The README's pre-commit snippets, run as pasted by pre-commit itself in a scratch repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaffold import __version__
from support import EXAMPLES, TESTS, require_tool

ROOT = TESTS.parent


def readme_snippets() -> list[str]:
    """The YAML blocks of the README's pre-commit section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## pre-commit\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


@pytest.fixture
def ops_repo(tmp_path: Path) -> Path:
    """An ops repository with a spec and its rendered files committed."""
    repo = tmp_path / "ops"
    (repo / "deploy").mkdir(parents=True)
    shutil.copy(EXAMPLES / "full.yaml", repo / "deploy" / "spec.yaml")
    subprocess.run([require_tool("djdeploy", "pip install ."), "render", "deploy/spec.yaml", "--out", "deploy/"], cwd=repo, check=True,
                   capture_output=True, text=True)
    _git(repo, "init", "-q")
    return repo


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    identity = ["-c", "user.name=ops", "-c", "user.email=ops@example.org", "-c", "commit.gpgsign=false"]
    return subprocess.run([require_tool("git"), *identity, *args], cwd=repo, check=True, capture_output=True,
                          text=True)


def _pre_commit(repo: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def _commit_config(repo: Path, config: str) -> None:
    (repo / ".pre-commit-config.yaml").write_text(config)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "deployment")


def _edit_spec(repo: Path) -> None:
    spec = repo / "deploy" / "spec.yaml"
    spec.write_text(spec.read_text().replace("client_max_body_size: 10m", "client_max_body_size: 20m"))


def test_readme_has_both_snippets() -> None:
    local, remote = readme_snippets()
    assert "repos:" in local and "repos:" in remote
    assert re.search(rf"^\s+rev: v{re.escape(__version__)}$", remote, flags=re.M), remote


def test_local_snippet_passes_then_catches_drift(ops_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pip install pre-commit")
    _commit_config(ops_repo, readme_snippets()[0])
    clean = _pre_commit(ops_repo, tmp_path / "home")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    _edit_spec(ops_repo)
    drifted = _pre_commit(ops_repo, tmp_path / "home")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "differ from the spec" in drifted.stdout


def test_remote_snippet_installs_djdeploy_at_the_tag(ops_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pip install pre-commit")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the remote snippet needs djdeploy's repository")
    source = tmp_path / "djdeploy"
    subprocess.run([require_tool("git"), "clone", "-q", str(ROOT), str(source)], check=True, capture_output=True)
    tag = f"v{__version__}"
    if not _git(source, "tag", "--list", tag).stdout.strip():
        _git(source, "tag", tag)          # a clone without tags: tag its head as the release
    config = re.sub(r"^(\s+- repo: )\S+.*$", rf"\g<1>{source}", readme_snippets()[1], count=1, flags=re.M)
    _commit_config(ops_repo, config)
    result = _pre_commit(ops_repo, tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "djdeploy rendered files match the spec" in result.stdout
