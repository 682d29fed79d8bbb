"""Reading spec YAML safely: size, depth and alias-expansion limits, and the line of every key."""

from __future__ import annotations

from typing import Any, Union

import yaml

MAX_BYTES = 256 * 1024          # a real spec is a few kB
MAX_DEPTH = 32                  # the spec nests four levels deep
MAX_NODES = 20_000              # counting every alias as the nodes it expands to

Location = tuple[Union[str, int], ...]
# libyaml's parser when PyYAML was built with it (the wheels are); same safe constructors.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlProblem(ValueError):
    """The text is not a YAML document djdeploy will read; the message says why."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


def read_yaml(text: str) -> tuple[Any, dict[Location, int]]:
    """Parse one YAML document; return the data and the 1-based line of each key and item."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // 1024} KiB; a spec is a few kB")
    try:
        _check_shape(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            lines: dict[Location, int] = {}
            _map_lines(node, (), lines)
            return loader.construct_document(node), lines
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise YamlProblem(f"not valid YAML: {e.problem or e.context}", line) from None
    except yaml.YAMLError as e:
        raise YamlProblem(f"not valid YAML: {e}") from None


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


def _map_lines(node: yaml.Node, where: Location, lines: dict[Location, int]) -> None:
    if len(where) > MAX_DEPTH:
        raise YamlProblem("an alias refers to itself", node.start_mark.line + 1)
    lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise YamlProblem("mapping keys must be plain strings", key.start_mark.line + 1)
            if key.value in seen and key.value != "<<":
                raise YamlProblem(f"duplicate key {key.value!r}", key.start_mark.line + 1)
            seen.add(key.value)
            lines.setdefault((*where, key.value), key.start_mark.line + 1)
            _map_lines(value, (*where, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _map_lines(item, (*where, i), lines)
