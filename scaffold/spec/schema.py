"""The spec's JSON Schema, as committed in schemas/ and written beside a new spec by init."""

from __future__ import annotations

import json
from typing import Any

from scaffold.spec.models import Spec

SCHEMA_FILE = "djdeploy.schema.json"
SCHEMA_MARKER = "djdeploy:generated"


def schema_json() -> str:
    """The JSON Schema (draft-07) of the spec, as committed in schemas/djdeploy.schema.json."""
    schema = Spec.model_json_schema(ref_template="#/definitions/{model}")
    schema["definitions"] = schema.pop("$defs")
    schema = {"$schema": "http://json-schema.org/draft-07/schema#",
              "$comment": f"{SCHEMA_MARKER}: the JSON Schema of a djdeploy spec; "
                          f"`djdeploy schema --out {SCHEMA_FILE}` rewrites it. Do not edit.",
              **_draft_07_refs(schema)}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _draft_07_refs(node: Any) -> Any:
    """Draft-07 ignores the keywords beside a $ref, so a $ref with siblings moves into allOf."""
    if isinstance(node, list):
        return [_draft_07_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _draft_07_refs(value) for key, value in node.items()}
    if "$ref" in node and len(node) > 1:
        node["allOf"] = [{"$ref": node.pop("$ref")}, *node.get("allOf", [])]
    return node
