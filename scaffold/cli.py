"""Command-line interface: parse arguments, call the library, turn errors into exit codes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaffold import __version__
from scaffold.errors import DjdeployError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    help="Render a production Django deployment (nginx, gunicorn/uvicorn, supervisor/systemd, "
    "settings) from one spec.",
)

SpecArg = Annotated[Path, typer.Argument(help="The spec file (YAML).", show_default=False)]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"djdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Render a production Django deployment from one spec."""


@app.command()
def validate(
    spec_paths: Annotated[list[Path], typer.Argument(help="Spec files (YAML).", show_default=False)],
) -> None:
    """Check each spec; exit 0 when all are valid, 2 with one line per problem when not."""
    from scaffold.errors import SpecError
    from scaffold.spec import load_spec

    failed = False
    for spec_path in spec_paths:
        try:
            load_spec(spec_path)
        except SpecError as e:
            typer.echo(f"djdeploy: error: {e}", err=True)
            failed = True
        else:
            typer.echo(f"{spec_path}: valid")
    if failed:
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema (draft-07), for editors and check-jsonschema."""
    from scaffold.spec import schema_json

    typer.echo(schema_json(), nl=False)


@app.command()
def render(
    spec_path: SpecArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("deploy"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if OUT differs from what the spec produces.")
    ] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Print unified diffs of what would change; write nothing.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files djdeploy did not write, or that were edited by hand.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove generated files the spec no longer produces.")
    ] = False,
) -> None:
    """Render every deployment file from SPEC_PATH into OUT: plan, print the plan, then apply it."""
    from scaffold import render as rendering
    from scaffold import writer
    from scaffold.spec import load_spec

    with _user_errors():
        spec = load_spec(spec_path)
        files = rendering.render_all(spec, spec_name=spec_path.name)
        plan = writer.plan_writes(files, out, prune=prune)
        if diff:
            typer.echo(plan.diff(), nl=False)
        if check:
            _report_drift(plan, out)
        typer.echo(plan.table(), err=True)
        if not (dry_run or diff):
            writer.apply_plan(plan, force=force, prune=prune)


def _report_drift(plan, out: Path) -> None:
    drift = plan.drift
    if not drift:
        typer.echo(f"{out}: up to date with the spec", err=True)
        raise typer.Exit(0)
    for f in drift:
        typer.echo(f"drift: {out / f.dest} ({f.action.value})", err=True)
    typer.echo(f"{out}: {len(drift)} file(s) differ from the spec; run `djdeploy render` to update", err=True)
    raise typer.Exit(1)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except DjdeployError as e:
        typer.echo(f"djdeploy: error: {e}", err=True)
        raise typer.Exit(code=e.exit_code) from None


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("djdeploy: interrupted", err=True)
        sys.exit(130)
