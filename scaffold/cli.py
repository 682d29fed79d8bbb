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
    help="Render a production Django deployment (nginx, gunicorn/uvicorn, supervisor/systemd/pm2, "
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


_Answer = Optional[str]


@app.command()
def init(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the spec.")] = Path("spec.yaml"),
    domain: Annotated[_Answer, typer.Option(help="The site's primary host name.")] = None,
    name: Annotated[_Answer, typer.Option(help="Slug naming files and programs. Default: from the domain.")] = None,
    aliases: Annotated[_Answer, typer.Option(help="Other host names, comma-separated, or none.")] = None,
    project: Annotated[_Answer, typer.Option(help="Django project package. Default: the name, '-' as '_'.")] = None,
    app_server: Annotated[_Answer, typer.Option(help="gunicorn (default), uwsgi, uvicorn, daphne or hypercorn.")] = None,
    interface: Annotated[_Answer, typer.Option(help="wsgi (default) or asgi; asked for gunicorn only.")] = None,
    workers: Annotated[_Answer, typer.Option(help="Workers per app host: a number, or auto "
                                                  "(gunicorn's and uwsgi's default; the others' is 2).")] = None,
    upstream: Annotated[_Answer, typer.Option(help="App hosts as HOST:PORT, comma-separated, or none "
                                                   "(default: the app runs beside nginx).")] = None,
    trusted_proxies: Annotated[_Answer, typer.Option(help="Addresses nginx connects from, comma-separated; "
                                                          "needed when --upstream names other hosts.")] = None,
    tls: Annotated[_Answer, typer.Option(help="off, files or letsencrypt (default).")] = None,
    certificate: Annotated[_Answer, typer.Option(help="With --tls files: the certificate chain (PEM). "
                                                      "Default: /etc/ssl/<name>/fullchain.pem.")] = None,
    certificate_key: Annotated[_Answer, typer.Option(help="With --tls files: the private key (PEM). "
                                                          "Default: /etc/ssl/<name>/privkey.pem.")] = None,
    process_manager: Annotated[_Answer, typer.Option(help="supervisor (default), systemd, both or pm2.")] = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="Accept the default of every question not "
                                                              "given as a flag, without asking.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH (and the schema beside it) "
                                                        "if it exists.")] = False,
) -> None:
    """Ask what a first deployment needs and write a spec that passes `validate`; each question is a flag.

    The JSON Schema goes beside the spec (djdeploy.schema.json), which the spec's first line names.
    """
    from scaffold import wizard, writer
    from scaffold.spec import SCHEMA_FILE, schema_json

    given = {"domain": domain, "name": name, "aliases": aliases, "project": project, "app_server": app_server,
             "interface": interface, "workers": workers, "upstream": upstream, "trusted_proxies": trusted_proxies,
             "tls": tls, "certificate": certificate, "certificate_key": certificate_key,
             "process_manager": process_manager}
    try:
        with _user_errors():
            schema_path = path.parent / SCHEMA_FILE
            writer.check_destination(path, force)
            writer.check_generated_destination(schema_path, force)
            ask = _ask_on_terminal if _stdin_is_terminal() else None
            data = wizard.build_spec({k: v for k, v in given.items() if v is not None}, ask,
                                     use_defaults=defaults, warn=_warn)
            writer.write_spec_with_schema(path, wizard.dump_spec(data), schema_path, schema_json(), force=force)
    except KeyboardInterrupt:
        typer.echo("\ndjdeploy: interrupted; nothing was written", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"wrote {path} and {schema_path}; next: djdeploy render {path} --out deploy")


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _ask_on_terminal(text: str, default: Optional[str]) -> str:
    """typer.prompt, except that Ctrl-C stays a KeyboardInterrupt (typer makes it and EOF an Abort)."""
    try:
        return typer.prompt(text, default=default, type=str)
    except typer.Abort as e:
        if isinstance(e.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise


def _warn(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)


@app.command()
def validate(
    spec_paths: Annotated[list[Path], typer.Argument(metavar="SPEC", help="Spec files (YAML).",
                                                     show_default=False)],
) -> None:
    """Check each spec; exit 0 when all are valid, 2 with one line per problem when not."""
    from scaffold.errors import SpecError
    from scaffold.spec import load_spec

    failed = False
    for spec_path in spec_paths:
        try:
            spec = load_spec(spec_path)
        except SpecError as e:
            typer.echo(f"djdeploy: error: {e}", err=True)
            failed = True
        else:
            _print_warnings(spec_path, spec)
            typer.echo(f"{spec_path}: valid")
    if failed:
        raise typer.Exit(2)


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="FILE",
        help="Write the schema to FILE (into FILE/djdeploy.schema.json if FILE is a directory), "
             "replacing an older copy; default: print it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE even if djdeploy did not write it.")] = False,
) -> None:
    """Print or write the spec's JSON Schema (draft-07), for editors and check-jsonschema."""
    from scaffold.spec import SCHEMA_FILE, schema_json

    if out is None:
        typer.echo(schema_json(), nl=False)
        return
    from scaffold import writer

    path = out / SCHEMA_FILE if out.is_dir() else out
    with _user_errors():
        changed = writer.write_generated_file(path, schema_json(), force=force)
    typer.echo(f"{'wrote' if changed else 'up to date:'} {path}; a spec beside it points at it with the first "
               f"line  # yaml-language-server: $schema=./{path.name}", err=True)


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
        _print_warnings(spec_path, spec)
        files = rendering.render_all(spec)
        plan = writer.plan_writes(files, out, prune=prune)
        if diff:
            typer.echo(plan.diff(), nl=False)
        if check:
            _report_drift(plan, spec_path, out)
        typer.echo(plan.table(), err=True)
        if dry_run or diff:
            writer.check_plan(plan, force=force, prune=prune)   # exit as the real render would
        else:
            writer.apply_plan(plan, force=force, prune=prune)
        _report_orphans(plan, spec_path, out, prune=prune, applied=not (dry_run or diff))


def _print_warnings(spec_path: Path, spec) -> None:
    """Valid but likely wrong choices, on stderr; they never change the exit status."""
    from scaffold.spec import describe_warnings

    for line in describe_warnings(spec):
        typer.echo(f"djdeploy: warning: {spec_path}: {line}", err=True)


def _render_command(spec_path: Path, out: Path, *extra: str) -> str:
    return " ".join(["djdeploy render", str(spec_path), "--out", str(out), *extra])


def _report_drift(plan, spec_path: Path, out: Path) -> None:
    drift = plan.drift
    if not drift:
        typer.echo(f"{out}: up to date with the spec", err=True)
        raise typer.Exit(0)
    for f in drift:
        typer.echo(f"drift: {out / f.dest} ({f.action.value})", err=True)
    orphans = [f for f in drift if f.action.value == "orphan"]
    fix = _render_command(spec_path, out, "--prune") if orphans else _render_command(spec_path, out)
    typer.echo(f"{out}: {len(drift)} file(s) differ from the spec; run `{fix}` to update", err=True)
    raise typer.Exit(1)


def _report_orphans(plan, spec_path: Path, out: Path, *, prune: bool, applied: bool) -> None:
    """Files the spec no longer produces stay until --prune; say so, and what the hosts need."""
    from scaffold.targets.runbook import removal_steps

    orphans = [f.dest for f in plan.files if f.action.value == "orphan"]
    if not orphans:
        return
    if prune:
        done = "removed" if applied else "would remove"
        typer.echo(f"{done} {len(orphans)} file(s) the spec no longer produces", err=True)
    else:
        typer.echo(f"kept {len(orphans)} file(s) the spec no longer produces; "
                   f"`{_render_command(spec_path, out, '--prune')}` removes them", err=True)
    steps = removal_steps(orphans)
    if steps:
        typer.echo("on each host, retire what they installed:", err=True)
        for step in steps:
            typer.echo(f"  {step}", err=True)


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
