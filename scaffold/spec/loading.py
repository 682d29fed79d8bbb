"""From YAML text (or already-parsed data) to a complete Spec, or a SpecError listing every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scaffold import messages
from scaffold.errors import SpecError
from scaffold.source import SourceMap
from scaffold.spec.defaults import (derive_app_server, derive_django, derive_hosts, derive_nginx, derive_paths,
                                    derive_programs, derive_tls)
from scaffold.spec.models import Spec
from scaffold.spec.rules import CHECKS, check_explicit_tls
from scaffold.spec.values import Problem

def parse_spec(text: str, *, source: str = "<spec>") -> Spec:
    """Parse and validate spec YAML; raise SpecError listing every problem with its field and line."""
    from scaffold.source import YamlProblem, read_yaml  # PyYAML loads only when a file is read

    try:
        data, where = read_yaml(text)
    except YamlProblem as e:
        line = f" (line {e.line})" if e.line else ""
        raise SpecError(source, [f"{e}{line}"]) from None
    return validate_data(data, source=source, where=where)


def load_spec(path: Path) -> Spec:
    """Read the spec file at *path* and parse it."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(str(path), [f"cannot read the file: {e.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(str(path), ["the file is not UTF-8 text"]) from None
    return parse_spec(text, source=str(path))


def validate_data(data: Any, *, source: str = "<spec>", where: SourceMap | None = None) -> Spec:
    """Validate already-parsed data (the wizard uses this too); raise SpecError on any problem."""
    where = where or SourceMap()
    if not isinstance(data, dict):
        raise SpecError(source, ["(top level): the spec must be a mapping of keys, starting with `version: 1`"])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        raise SpecError(source, messages.describe_errors(e.errors(), data, where, Spec)) from None
    cross = resolve_spec(spec)
    if cross:
        raise SpecError(source, [messages.format_problem(loc, msg, where) for loc, msg in cross])
    return spec




def resolve_spec(spec: Spec) -> list[Problem]:
    """Fill the defaults other fields imply, then check cross-field rules.

    Returns the problems found, each as (field path, message); the spec is
    complete only when the list is empty.
    """
    problems = check_explicit_tls(spec.tls)
    derive_django(spec)
    derive_paths(spec)
    derive_app_server(spec)
    derive_tls(spec)
    derive_programs(spec)
    derive_nginx(spec)
    problems.extend(derive_hosts(spec))
    for check in CHECKS:
        problems.extend(check(spec))
    return problems
