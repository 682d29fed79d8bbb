"""Validation errors → one line per problem, in the user's terms: the field path, what is wrong,
what to write instead. No message names an internal class or echoes the validator's jargon."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from scaffold.source import SourceMap

Location = tuple[Union[str, int], ...]

_SECRET_KEYS = {"password", "passwd", "secret", "secret_key", "token", "api_key", "key_password",
                "database_password", "django_secret_key", "email_host_password", "dsn", "sentry_dsn"}
# Keys that users bring from other tools, with where the setting lives in a spec.
_BROUGHT_KEYS = {
    "redis": "a Redis cache is django.cache (backend: redis, location: redis://HOST:PORT/DB)",
    "memcached": "a memcached cache is django.cache (backend: memcached)",
    "postgres": "the database is django.database (engine: postgresql)",
    "postgresql": "the database is django.database (engine: postgresql)",
    "mysql": "the database is django.database (engine: mysql)",
    "databases": "the database is django.database",
    "allowed_hosts": "ALLOWED_HOSTS comes from domain and aliases",
    "ssl": "HTTPS is configured under tls",
    "https": "HTTPS is configured under tls",
    "letsencrypt": "write tls: {mode: letsencrypt}",
    "supervisor": "write process_manager: supervisor",
    "systemd": "write process_manager: systemd",
    "pm2": "write process_manager: pm2",
    "celery": "background programs are listed under background (name:, command:)",
    "sentry": "error tracking is django.error_tracking; its DSN is the secret SENTRY_DSN",
    "whitenoise": "write static: {server: whitenoise}",
    "port": "nginx's ports are nginx.http_port and nginx.https_port; the app server's is in app_server.bind",
}
_TYPE_WORDS = {"model_type": "a mapping of keys (key: value lines)", "dict_type": "a mapping of keys (key: value lines)",
               "list_type": "a list (`- item` lines, or [a, b])", "string_type": "text",
               "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
               "bool_type": "true or false", "bool_parsing": "true or false", "float_type": "a number"}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def describe_errors(errors: Sequence[ErrorDetails], data: Any, where: SourceMap, root: type[BaseModel]) -> list[str]:
    """One line per validation error, without duplicates, in the order pydantic found them."""
    lines = [describe_error(err, data, where, root) for err in errors]
    return list(dict.fromkeys(lines))


def describe_error(err: ErrorDetails, data: Any, where: SourceMap, root: type[BaseModel]) -> str:
    """`path: message (line N)` for one validation error."""
    loc = user_location(tuple(err["loc"]), data)
    return format_problem(loc, _message(err, loc, where, root), where)


def format_problem(loc: Location, message: str, where: SourceMap) -> str:
    """`path: message (line N)`, the line where the key or its nearest parent is."""
    line = _line_for(loc, where.lines)
    return f"{format_location(loc)}: {message}{f' (line {line})' if line else ''}"


def format_location(loc: Sequence[Union[str, int]]) -> str:
    """Render a field path as `upstream.servers[1].address`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def user_location(loc: Location, data: Any) -> Location:
    """The path as the user wrote it: drop the parts validators add (union members, functions)."""
    kept: list[Union[str, int]] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part not in node and _is_key_name(part):
            node = None          # a missing key: keep it, there is nothing below it
        else:
            continue
        kept.append(part)
    return tuple(kept)


def _is_key_name(part: Union[str, int]) -> bool:
    return isinstance(part, str) and part.replace("_", "").isalnum() and part.islower()


def _line_for(loc: Location, lines: dict) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _message(err: ErrorDetails, loc: Location, where: SourceMap, root: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return unknown_key_message(loc, root)
    if kind == "missing":
        return "required field is missing"
    typed = where.plain.get(loc)
    hint = _yaml_typing_hint(err, typed) if typed is not None else None
    return hint or _plain_message(err, loc)


def _yaml_typing_hint(err: ErrorDetails, typed: str) -> str | None:
    """The value was unquoted and YAML made it a boolean, number or null: say so, where that is the cause."""
    value, kind = err["input"], err["type"]
    if value is None:
        return "has no value (YAML reads an empty value, ~ and null as none): write one, or remove the key"
    read = str(value).lower() if isinstance(value, bool) else (
        f"the number {value!r}" if str(value) != typed else "a number")
    if kind in ("literal_error", "enum") and isinstance(value, bool):
        return f"YAML reads unquoted {typed} as {read}; write one of: {(err.get('ctx') or {}).get('expected', '')}"
    if kind in ("string_type", "quoted_text"):
        return f"YAML reads unquoted {typed} as {read}: quote it, \"{typed}\""
    if isinstance(value, bool) and kind == "value_error":
        return f"{_plain_message(err, ())} (YAML reads unquoted {typed} as {read})"
    return None


def _plain_message(err: ErrorDetails, loc: Location) -> str:
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if kind in ("model_type", "dict_type") and loc[-2:-1] == ("servers",) and isinstance(value, str):
        return f"each server is a mapping: write `- address: {value}`"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, not {_describe_value(value)}"
    if kind in ("literal_error", "enum"):
        return f"{value!r} is not allowed; write one of: {ctx.get('expected', '')}"
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {ctx.get(_bound_key(kind))}, not {_describe_value(value)}"
    if kind == "too_short" and loc[-1:] == ("servers",):
        return "an upstream group needs at least one server: list the app hosts, or remove `upstream` " \
               "to proxy to the app server on this host"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"{value!r} does not have the expected form ({ctx.get('pattern')})"
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message.replace("Input should be", "must be")


def _bound_key(kind: str) -> str:
    return {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}[kind]


def _describe_value(value: Any) -> str:
    if value is None:
        return "no value"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a value of another kind"


def unknown_key_message(loc: Location, root: type[BaseModel]) -> str:
    """Why a key is unknown, and the likeliest key the user meant."""
    key = str(loc[-1])
    parent = tuple(p for p in loc[:-1] if not isinstance(p, int))
    if key.lower() in _SECRET_KEYS:
        return ("secrets never go in the spec: the rendered settings read them at start-up "
                "(see the README, Secrets)")
    elsewhere = [p for p in _field_paths(root) if p[-1] == key.lower() and p[:-1] != parent]
    if elsewhere:
        return f"unknown key {key!r} here; did you mean {' or '.join(format_location(p) for p in elsewhere)}?"
    if key.lower() in _BROUGHT_KEYS:
        return f"unknown key {key!r}: {_BROUGHT_KEYS[key.lower()]}"
    close = difflib.get_close_matches(key, _known_keys(parent, root), n=1, cutoff=0.6)
    return f"unknown key {key!r}{f'; did you mean {close[0]!r}?' if close else ''}"


def _known_keys(parent: tuple, root: type[BaseModel]) -> list[str]:
    model: Any = root
    for part in parent:
        field = model.model_fields.get(part) if isinstance(model, type) else None
        model = model_in(field.annotation) if field else None
        if model is None:
            return []
    return list(model.model_fields)


def _field_paths(model: type[BaseModel], prefix: tuple = ()) -> Iterator[tuple]:
    for name, field in model.model_fields.items():
        yield (*prefix, name)
        inner = model_in(field.annotation)
        if inner is not None:
            yield from _field_paths(inner, (*prefix, name))


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The spec section model inside an annotation such as Optional[list[Section]]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is Literal:
        return None
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None
