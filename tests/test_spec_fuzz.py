"""Many broken specs, made by mutating the full example: always exit 2 with messages in the user's terms."""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterator

import pytest
import yaml
from pydantic import BaseModel

from scaffold import spec as spec_module
from scaffold.errors import SpecError
from scaffold.spec import parse_spec
from support import EXAMPLES

TEXT = (EXAMPLES / "full.yaml").read_text()
FULL = yaml.safe_load(TEXT)
ODD_VALUES = [True, False, None, 0, -1, 1.5, 10**30, "", " ", "x" * 300, "a;b", "$x", "{", [], {}, [1],
              {"a": 1}, "off", "yes", "1.20", "/", "unix:", ":", "[::1]:80", "0.0.0.0/0", "\u00e9", "\x00"]
ODD_CHARACTERS = ["\t", ":", "*", "&", "!", "@", "`", "%", "[", "]", "{", "}", '"', "'", "\n", " ", "-", "#", "|", ">"]
_MODELS = [m.__name__ for m in vars(spec_module).values()
           if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == spec_module.__name__]
INTERNAL = re.compile("|".join([r"instance of", r"Input should", r"function-", r"Traceback", r"NoneType",
                                r"\b(dict|int|str|bool)\b", *(rf"\b{n}\b" for n in _MODELS if n != "Django")]))


def _paths(node, prefix: tuple = ()) -> Iterator[tuple]:
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


PATHS = list(_paths(FULL))


def _mutated(rng: random.Random) -> str:
    data = copy.deepcopy(FULL)
    for _ in range(rng.randint(1, 3)):
        *parents, last = rng.choice(PATHS)
        node = data
        try:
            for part in parents:
                node = node[part]
            node[last] = rng.choice(ODD_VALUES)
        except (KeyError, IndexError, TypeError):
            pass        # an earlier mutation replaced a parent
    return yaml.safe_dump(data)


@pytest.mark.parametrize("seed", range(6))
def test_mutated_values_get_messages_in_the_users_terms(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        text = _mutated(rng)
        try:
            parse_spec(text)
        except SpecError as e:
            bad = [p for p in e.problems if INTERNAL.search(p) or ": " not in p]
            assert not bad, (bad, text)


@pytest.mark.parametrize("seed", range(4))
def test_mangled_yaml_is_always_a_spec_error(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        chars = list(TEXT)
        for _ in range(rng.randint(1, 4)):
            chars.insert(rng.randrange(len(chars)), rng.choice(ODD_CHARACTERS))
        try:
            parse_spec("".join(chars))
        except SpecError as e:
            assert all("Traceback" not in p for p in e.problems)
