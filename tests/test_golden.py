"""Golden trees: each example spec renders byte-for-byte to the committed tree in tests/golden/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import TESTS, example_paths
from scaffold.render import render_all
from scaffold.spec import load_spec
from scaffold.writer import make_manifest

GOLDEN = TESTS / "golden"
VERSION = "0.0.0"   # a fixed version keeps the golden trees stable across releases


def _render_tree(spec_path: Path) -> dict[str, str]:
    files = render_all(load_spec(spec_path), version=VERSION)
    return {str(f.dest): f.content for f in [*files, make_manifest(files)]}


def _read_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("spec_path", example_paths(), ids=lambda p: p.stem)
def test_golden_tree_matches(spec_path: Path, request: pytest.FixtureRequest) -> None:
    rendered = _render_tree(spec_path)
    golden = GOLDEN / spec_path.stem
    if request.config.getoption("--update-golden"):
        shutil.rmtree(golden, ignore_errors=True)
        for name, content in rendered.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(content, encoding="utf-8")
    assert _read_tree(golden) == rendered


@pytest.mark.parametrize("spec_path", example_paths(), ids=lambda p: p.stem)
def test_render_is_deterministic(spec_path: Path) -> None:
    assert _render_tree(spec_path) == _render_tree(spec_path)
