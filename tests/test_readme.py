"""The README's spec reference is the JSON Schema written out as a table: every field, in sync."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from support import TESTS

ROOT = TESTS.parent
README = ROOT / "README.md"
START, END = "<!-- spec-reference: start -->", "<!-- spec-reference: end -->"


def reference_table(schema: dict[str, Any]) -> str:
    """One row per field of the schema, sections before their fields, in the schema's order."""
    rows = ["| field | value | default | meaning |", "| --- | --- | --- | --- |"]
    required = set(schema.get("required", []))
    for path, prop, needed in _fields(schema, schema, "", required):
        rows.append(f"| `{path}` | {_value(schema, prop)} | {_default(prop, needed)} | {_meaning(prop)} |")
    return "\n".join(rows) + "\n"


def _resolve(schema: dict, prop: dict) -> dict:
    if len(prop.get("allOf", [])) == 1 and "$ref" in prop["allOf"][0]:     # draft-07's $ref with siblings
        prop = {**prop["allOf"][0], **{k: v for k, v in prop.items() if k != "allOf"}}
    while "$ref" in prop:
        prop = {**schema["definitions"][prop["$ref"].split("/")[-1]], **{k: v for k, v in prop.items() if k != "$ref"}}
    for key in ("anyOf", "oneOf"):
        objects = [p for p in prop.get(key, []) if "$ref" in p]
        if len(objects) == 1:
            return _resolve(schema, {**objects[0], **{k: v for k, v in prop.items() if k != key}})
    return prop


def _fields(schema: dict, node: dict, prefix: str, required: set) -> Iterator[tuple[str, dict, bool]]:
    for name, raw in node.get("properties", {}).items():
        prop = _resolve(schema, raw)
        path = f"{prefix}{name}"
        yield path, prop, name in required
        if prop.get("type") == "object" or "properties" in prop:
            yield from _fields(schema, prop, f"{path}.", set(prop.get("required", [])))
        items = _resolve(schema, prop.get("items", {})) if prop.get("type") == "array" else {}
        if "properties" in items:
            yield from _fields(schema, items, f"{path}[].", set(items.get("required", [])))


def _value(schema: dict, prop: dict) -> str:
    if "enum" in prop or "const" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop.get("enum", [prop.get("const")]))
    if "properties" in prop:
        return "section"
    choices = prop.get("anyOf", prop.get("oneOf", [prop]))
    if any(p.get("type") in ("integer", "boolean") for p in choices):   # not their quoted forms
        choices = [p for p in choices if p.get("type") != "string" and "enum" not in p]
    kinds = [p.get("type") or ("`" + json.dumps(p["const"]) + "`" if "const" in p else "") for p in choices]
    words = [k if isinstance(k, str) else "/".join(k) for k in kinds if k and k != "null"]
    if prop.get("type") == "array":
        item = _resolve(schema, prop.get("items", {}))
        words = ["list of sections" if "properties" in item else f"list of {item.get('type', 'values')}"]
    return " or ".join(dict.fromkeys(words)) or "value"


def _default(prop: dict, needed: bool) -> str:
    if needed:
        return "required"
    if "default" not in prop or prop["default"] is None:
        return "derived" if "Default:" in prop.get("description", "") else "none"
    return f"`{json.dumps(prop['default'])}`"


def _meaning(prop: dict) -> str:
    text = prop.get("description", "")
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def readme_reference() -> str:
    text = README.read_text()
    return text.split(START + "\n", 1)[1].split(END, 1)[0]


def test_readme_spec_reference_matches_the_schema(request: pytest.FixtureRequest) -> None:
    schema = json.loads((ROOT / "schemas" / "djdeploy.schema.json").read_text())
    expected = reference_table(schema)
    if request.config.getoption("--update-golden"):
        text = README.read_text()
        head, rest = text.split(START + "\n", 1)
        README.write_text(head + START + "\n" + expected + END + rest.split(END, 1)[1])
    assert readme_reference() == expected


def test_readme_names_no_file_outside_the_repository() -> None:
    text = README.read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), target
    assert "SPEC.md" not in text
