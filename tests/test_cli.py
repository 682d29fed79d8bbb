"""The command line: exit codes, --check/--diff/--dry-run/--force, schema, start-up imports."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from scaffold import __version__
from scaffold.cli import app
from scaffold.spec import schema_json
from support import EXAMPLES, TESTS

FULL = EXAMPLES / "full.yaml"
ROOT = TESTS.parent


def _render(runner, out: Path, *extra: str, spec: Path = FULL):
    return runner.invoke(app, ["render", str(spec), "--out", str(out), *extra])


def test_version(runner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"djdeploy {__version__}"


def test_validate_good_and_bad(runner, tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", str(FULL)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: shop\ndomain: shop.example.com\ndjango: {project: shop, user: root}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "django.user: the app never runs as root" in result.output


def test_validate_missing_file(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the file" in result.output


def test_render_then_check_is_clean(runner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert _render(runner, out).exit_code == 0
    result = _render(runner, out, "--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_reports_drift_by_file(runner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _render(runner, out)
    target = next(p for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith("."))
    target.write_text(target.read_text() + "# local change\n")
    result = _render(runner, out, "--check")
    assert result.exit_code == 1
    assert f"drift: {target}" in result.output


def test_check_on_empty_directory_is_drift(runner, tmp_path: Path) -> None:
    result = _render(runner, tmp_path / "deploy", "--check")
    assert result.exit_code == 1
    assert not (tmp_path / "deploy").exists()


def test_check_with_bad_spec_exits_2(runner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\n")
    assert _render(runner, tmp_path / "deploy", "--check", spec=bad).exit_code == 2


def test_diff_prints_unified_diff_and_writes_nothing(runner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _render(runner, out)
    changed = tmp_path / "changed.yaml"
    changed.write_text(FULL.read_text().replace("timeout: 30", "timeout: 45"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = _render(runner, out, "--diff", spec=changed)
    assert result.exit_code == 0
    assert "--- a/" in result.output and "+++ b/" in result.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_dry_run_prints_plan_and_writes_nothing(runner, tmp_path: Path) -> None:
    result = _render(runner, tmp_path / "deploy", "--dry-run")
    assert result.exit_code == 0
    assert "create" in result.output
    assert not (tmp_path / "deploy").exists()


def test_hand_written_file_needs_force(runner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _render(runner, out)
    target = next(p for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith("."))
    target.write_text("# written by hand\n")
    result = _render(runner, out)
    assert result.exit_code == 1
    assert "--force" in result.output
    assert target.read_text() == "# written by hand\n"
    assert _render(runner, out, "--force").exit_code == 0
    assert "djdeploy:generated" in target.read_text()


@pytest.mark.parametrize("flag", ["--dry-run", "--diff"])
def test_dry_run_and_diff_exit_as_the_real_render_would(runner, tmp_path: Path, flag: str) -> None:
    out = tmp_path / "deploy"
    _render(runner, out)
    target = out / "INSTALL.md"
    target.write_text("# written by hand\n")
    result = _render(runner, out, flag)
    assert result.exit_code == 1, result.output
    assert "--force" in result.output
    assert target.read_text() == "# written by hand\n"
    assert _render(runner, out, flag, "--force").exit_code == 0


def _drop_background(tmp_path: Path, source: Path) -> Path:
    data = yaml.safe_load(source.read_text())
    data["background"] = []
    spec = tmp_path / "smaller.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def test_every_orphan_message_names_prune_and_the_host_steps(runner, tmp_path: Path) -> None:
    source = EXAMPLES / "uvicorn-systemd.yaml"
    out = tmp_path / "deploy"
    assert _render(runner, out, spec=source).exit_code == 0
    smaller = _drop_background(tmp_path, source)
    result = _render(runner, out, spec=smaller)
    assert result.exit_code == 0
    assert f"djdeploy render {smaller} --out {out} --prune" in result.output
    assert "systemctl disable --now chat-clearsessions.service chat-clearsessions.timer" in result.output
    check = _render(runner, out, "--check", spec=smaller)
    assert check.exit_code == 1
    assert f"run `djdeploy render {smaller} --out {out} --prune` to update" in check.output
    assert _render(runner, out, "--prune", spec=smaller).exit_code == 0
    assert _render(runner, out, "--check", spec=smaller).exit_code == 0
    assert not (out / "systemd" / "chat-clearsessions.timer").exists()


def test_removal_steps_retire_units_programs_and_sites() -> None:
    from scaffold.targets.runbook import removal_steps

    steps = removal_steps([PurePosixPath(p) for p in ("systemd/shop-web@.service", "systemd/shop-celery.service",
                                                        "supervisor/shop-beat.conf", "nginx/shop.conf",
                                                        "gunicorn/gunicorn.conf.py")])
    assert steps == [
        "systemctl disable --now shop-celery.service",
        "systemctl stop 'shop-web@*.service'; rm -f /etc/systemd/system/*.wants/shop-web@*.service",
        "rm -f /etc/systemd/system/shop-web@.service /etc/systemd/system/shop-celery.service && systemctl daemon-reload",
        "rm -f /etc/supervisor/conf.d/shop-beat.conf && supervisorctl reread && supervisorctl update",
        "rm -f /etc/nginx/sites-enabled/shop.conf /etc/nginx/sites-available/shop.conf && nginx -t && systemctl reload nginx",
    ]


def test_renaming_or_copying_the_spec_is_not_drift(runner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert _render(runner, out).exit_code == 0
    moved = tmp_path / "elsewhere" / "production.yaml"
    moved.parent.mkdir()
    moved.write_text(FULL.read_text())
    result = _render(runner, out, "--check", spec=moved)
    assert result.exit_code == 0, result.output


def test_usage_lines_name_arguments_plainly(runner) -> None:
    usage = runner.invoke(app, ["validate", "--help"]).output.splitlines()[0]
    assert "SPEC" in usage and "spec_paths" not in usage, usage


def test_schema_command_matches_committed_schema(runner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    committed = (ROOT / "schemas" / "djdeploy.schema.json").read_text()
    assert result.output == committed == schema_json(), "run `djdeploy schema > schemas/djdeploy.schema.json`"


def test_schema_uses_draft_07_keywords_only() -> None:
    schema = json.loads(schema_json())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    text = json.dumps(schema)
    for newer in ("unevaluatedProperties", "prefixItems", "dependentRequired", "$dynamicRef"):
        assert newer not in text
    assert schema["additionalProperties"] is False


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from typer.testing import CliRunner; from scaffold.cli import app; "
            "CliRunner().invoke(app, ['--help']); "
            "print(sorted(m for m in ('jinja2', 'pydantic', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_scaffold_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "scaffold", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"djdeploy {__version__}"


def _mutations(text: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    noise = ["", ":", "- ", "{", "}", "[", "]", "&a", "*a", "!!binary", "\t", "'", '"', "\x00", "…", "0x", "~"]
    out = []
    for _ in range(count):
        chars = list(text)
        for _ in range(rng.randint(1, 5)):
            pos = rng.randrange(len(chars))
            chars[pos:pos + rng.randint(0, 4)] = rng.choice(noise)
        out.append("".join(chars))
    return out


def test_no_input_produces_a_traceback(runner, tmp_path: Path) -> None:
    """Randomly damaged specs: always exit 0 or 2 with a message, never an exception, never half a tree."""
    spec = tmp_path / "spec.yaml"
    for i, text in enumerate(_mutations(FULL.read_text(), 150, seed=1)):
        spec.write_text(text, encoding="utf-8", errors="surrogateescape")
        out = tmp_path / f"out{i}"
        result = _render(runner, out, spec=spec)
        assert result.exit_code in (0, 2), (text, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (text, result.exception)
        if result.exit_code == 2:
            assert "invalid spec" in result.output
            assert not out.exists()
