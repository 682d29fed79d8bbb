"""Reading spec YAML safely: size, depth and alias-expansion limits, and the line of every key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import yaml

MAX_BYTES = 256 * 1024          # a real spec is a few kB
MAX_DEPTH = 32                  # the spec nests four levels deep
MAX_NODES = 20_000              # counting every alias as the nodes it expands to

Location = tuple[Union[str, int], ...]
# libyaml's parser when PyYAML was built with it (the wheels are); same safe constructors.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Tags YAML gives a plain (unquoted) scalar that did not stay a string.
_TYPED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "null")}


@dataclass
class SourceMap:
    """Where each value came from: the 1-based line of every key and item, and the text of
    every unquoted scalar YAML turned into a boolean, number or null (`off`, `1.20`, `~`)."""

    lines: dict[Location, int] = field(default_factory=dict)
    plain: dict[Location, str] = field(default_factory=dict)


class YamlProblem(ValueError):
    """The text is not a YAML document djdeploy will read; the message says why."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


def read_yaml(text: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; return the data and where each of its values came from."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // 1024} KiB; a spec is a few kB")
    try:
        _check_shape(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, SourceMap()
            where = SourceMap()
            _map_node(node, (), where)
            return loader.construct_document(node), where
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise YamlProblem(_explain(e, text), line) from None
    except yaml.YAMLError as e:
        raise YamlProblem(f"not valid YAML: {e}") from None


def _explain(error: yaml.MarkedYAMLError, text: str) -> str:
    """The parser's complaint, in terms of what the user typed where we can tell."""
    problem = error.problem or error.context or "unreadable"
    mark = error.problem_mark
    lines = text.splitlines()
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    column = mark.column if mark else 0
    found = line[column:column + 1]
    if found == "\t" or (error.context == "while scanning for the next token" and "\t" in line[:column + 1]):
        return "tabs are not allowed in YAML indentation: indent with spaces"
    if error.context in ("while scanning an alias", "while scanning an anchor") or "undefined alias" in problem:
        return _explain_alias(line, column)
    if error.context == "while scanning for the next token" and found:
        return f"a value cannot start with {found!r} in YAML: put it in quotes"
    if "could not determine a constructor for the tag" in problem:
        return "'!' starts a YAML tag: put a value that starts with '!' in quotes"
    if "mapping values are not allowed" in problem:
        return ("unexpected ':' here: a value that contains ': ' must be quoted, "
                "and a key must line up with the keys above it")
    if "expected key" in problem or "expected '-' indicator" in problem:
        return "the indentation does not line up: keys of one mapping, and items of one list, start in one column"
    for words, meaning in _PARSER_WORDS:
        if words in problem:
            return meaning
    return f"not valid YAML: {problem}"


# The parser's complaints that have one usual cause, in the user's terms.
_PARSER_WORDS = (
    ("could not find expected ':'", "expected `key: value` here: a ':' is missing, or a quote or bracket is not closed"),
    ("expected ',' or ']'", "a [list] is not closed with ']', or an item in it needs quotes"),
    ("expected ',' or '}'", "a {mapping} is not closed with '}', or a value in it needs quotes"),
    ("found unexpected end of stream", "the file ends inside a quoted value or a bracket: close it"),
    ("did not find expected node content", "a value is missing here, or starts with a character YAML reserves: "
                                           "put it in quotes"),
    ("block sequence entries are not allowed", "a `- item` line where no list can start: check its indentation"),
    ("did not find expected comment or line break", "unexpected text after a value: quote the whole value, "
                                                    "or start a comment with ' #'"),
)


def _explain_alias(line: str, column: int) -> str:
    start = max(line.rfind("*", 0, column + 1), line.rfind("&", 0, column + 1))
    word = line[start:].split()[0].rstrip(",]}") if start >= 0 else ""
    if word.startswith("&"):
        return f"YAML reads {word!r} as an anchor: put the value in quotes"
    return f"YAML reads {word or 'a value starting with *'!r} as an alias: put the value in quotes, like \"{word}\""


def _check_shape(text: str) -> None:
    """Walk the parser's events (no recursion) and refuse deep or exploding documents early."""
    sizes: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = []
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            total += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            stack.append((event.anchor, total))
            if len(stack) > MAX_DEPTH:
                raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels", event.start_mark.line + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = stack.pop()
            if anchor:
                sizes[anchor] = total - start + 1
        if total > MAX_NODES:
            raise YamlProblem(
                f"the document expands to more than {MAX_NODES} values (YAML aliases?)",
                event.start_mark.line + 1,
            )


def _map_node(node: yaml.Node, where: Location, found: SourceMap) -> None:
    if len(where) > MAX_DEPTH:
        raise YamlProblem("an alias refers to itself", node.start_mark.line + 1)
    found.lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode) and not node.style and node.tag in _TYPED_TAGS:
        found.plain.setdefault(where, node.value)
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise YamlProblem("mapping keys must be plain strings", key.start_mark.line + 1)
            if key.value in seen and key.value != "<<":
                raise YamlProblem(f"duplicate key {key.value!r}", key.start_mark.line + 1)
            seen.add(key.value)
            found.lines.setdefault((*where, key.value), key.start_mark.line + 1)
            _map_node(value, (*where, key.value), found)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _map_node(item, (*where, i), found)
