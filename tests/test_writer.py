"""The writer: every plan status, the marker rule, the manifest, and all-or-nothing writes."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from scaffold import writer
from scaffold.errors import OutputConflictError, OutputError
from scaffold.render import MARKER, RenderedFile
from scaffold.writer import MANIFEST, Action, apply_plan, plan_writes


def _file(name: str, body: str = "x = 1\n", mode: int = 0o644) -> RenderedFile:
    return RenderedFile(PurePosixPath(name), f"# {MARKER}\n{body}", mode)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _actions(plan) -> dict[str, Action]:
    return {str(f.dest): f.action for f in plan.files}


def _write(files, out: Path, *, force: bool = False, prune: bool = False) -> None:
    apply_plan(plan_writes(files, out, prune=prune), force=force, prune=prune)


def test_plan_into_missing_directory_creates_everything(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    plan = plan_writes([_file("nginx/a.conf"), _file("b.py")], out)
    assert _actions(plan) == {"nginx/a.conf": Action.CREATE, "b.py": Action.CREATE,
                              str(MANIFEST): Action.CREATE}
    assert not out.exists()


def test_apply_writes_files_modes_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _write([_file("nginx/a.conf"), _file("run.sh", mode=0o755)], out)
    assert (out / "nginx/a.conf").read_text().endswith("x = 1\n")
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755
    assert "nginx/a.conf" in (out / MANIFEST).read_text()
    leftovers = [*out.rglob("*.djdeploy-tmp"), *out.rglob("*.djdeploy-old")]
    assert not leftovers, "no temporary or backup files are left"


def test_identical_files_are_not_touched(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    files = [_file("a.conf")]
    _write(files, out)
    os.utime(out / "a.conf", (1_000_000, 1_000_000))
    plan = plan_writes(files, out)
    assert set(_actions(plan).values()) == {Action.IDENTICAL}
    apply_plan(plan)
    assert (out / "a.conf").stat().st_mtime == 1_000_000


def test_generated_files_are_updated(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _write([_file("a.conf", "x = 1\n")], out)
    plan = plan_writes([_file("a.conf", "x = 2\n")], out)
    assert _actions(plan)["a.conf"] is Action.UPDATE
    assert "-x = 1" in plan.diff() and "+x = 2" in plan.diff()
    apply_plan(plan)
    assert (out / "a.conf").read_text().endswith("x = 2\n")


def test_hand_written_file_is_a_conflict_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "a.conf").write_text("# my own config\n")
    plan = plan_writes([_file("a.conf"), _file("b.conf")], out)
    assert _actions(plan)["a.conf"] is Action.CONFLICT
    with pytest.raises(OutputConflictError, match="a.conf"):
        apply_plan(plan)
    assert (out / "a.conf").read_text() == "# my own config\n"
    assert not (out / "b.conf").exists(), "a refused run writes nothing at all"


def test_hand_edited_generated_file_is_a_conflict(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _write([_file("a.conf", "x = 1\n")], out)
    with (out / "a.conf").open("a") as handle:
        handle.write("# tuned by hand\n")
    plan = plan_writes([_file("a.conf", "x = 2\n")], out)
    assert _actions(plan)["a.conf"] is Action.CONFLICT
    assert "edited by hand" in plan.table()
    with pytest.raises(OutputConflictError):
        apply_plan(plan)


def test_force_overwrites_conflicts(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "a.conf").write_text("# my own config\n")
    _write([_file("a.conf")], out, force=True)
    assert MARKER in (out / "a.conf").read_text()


def test_orphans_are_reported_and_removed_only_with_prune(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _write([_file("a.conf"), _file("old.conf")], out)
    plan = plan_writes([_file("a.conf")], out)
    assert _actions(plan)["old.conf"] is Action.ORPHAN
    assert plan.drift, "an orphan is drift"
    apply_plan(plan)
    assert (out / "old.conf").exists()
    _write([_file("a.conf")], out, prune=True)
    assert not (out / "old.conf").exists()


def test_edited_orphan_is_not_pruned_without_force(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _write([_file("a.conf"), _file("old.conf")], out)
    (out / "old.conf").write_text(f"# {MARKER}\nchanged\n")
    with pytest.raises(OutputConflictError, match="old.conf"):
        _write([_file("a.conf")], out, prune=True)
    assert (out / "old.conf").exists()


def test_failed_write_leaves_directory_as_it_was(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "deploy"
    _write([_file("a.conf", "x = 1\n"), _file("b.conf", "y = 1\n")], out)
    before = _snapshot(out)
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:   # fail half-way through swapping files in
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", failing_replace)
    files = [_file("a.conf", "x = 2\n"), _file("b.conf", "y = 2\n"), _file("new/c.conf")]
    with pytest.raises(OutputError, match="left as it was"):
        _write(files, out)
    monkeypatch.setattr(writer.os, "replace", real_replace)
    assert _snapshot(out) == before
    assert not (out / "new").exists()


def test_interrupted_write_leaves_directory_as_it_was(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "deploy"
    _write([_file("a.conf", "x = 1\n")], out)
    before = _snapshot(out)
    real_fsync = os.fsync
    calls = {"n": 0}

    def interrupted_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_fsync(fd)

    monkeypatch.setattr(writer.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        _write([_file("a.conf", "x = 2\n"), _file("b.conf")], out)
    assert _snapshot(out) == before


def test_output_path_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "deploy").write_text("not a directory")
    with pytest.raises(OutputError, match="not a directory"):
        plan_writes([_file("a.conf")], tmp_path / "deploy")


def test_directory_where_a_file_goes_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "a.conf").mkdir(parents=True)
    with pytest.raises(OutputError, match="is a directory"):
        plan_writes([_file("a.conf")], tmp_path / "deploy")


def test_manifest_ignores_paths_outside_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (tmp_path / "victim").write_text(f"# {MARKER}\n")
    (out / MANIFEST).write_text(f"# {MARKER}\n{'0' * 64}  ../victim\n{'0' * 64}  /etc/passwd\n")
    plan = plan_writes([_file("a.conf")], out, prune=True)
    apply_plan(plan, prune=True, force=True)
    assert (tmp_path / "victim").exists()
    assert "victim" not in plan.table()
