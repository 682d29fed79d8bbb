"""The rendered INSTALL.md as an operator reads it: numbered steps, each a list of shell blocks with
the prose that introduces them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SECTION = re.compile(r"^## (\d+)[a-z]?\. (.*)$", re.M)
_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One shell block of step *step*, and the text between it and the block before it."""

    step: int
    title: str
    prose: str
    script: str

    @property
    def kind(self) -> str:
        """install (run while installing), deploy (load new code) or change (after a spec change)."""
        if "To load new code after a deploy" in self.prose:
            return "deploy"
        if "After a change of the spec" in self.prose:
            return "change"
        return "install"


def read_blocks(text: str) -> list[Block]:
    """Every shell block of INSTALL.md, in order."""
    sections = list(_SECTION.finditer(text))
    found = []
    for section, following in zip(sections, [*sections[1:], None]):
        body = text[section.end():following.start() if following else len(text)]
        previous_end = 0
        for block in _BLOCK.finditer(body):
            prose = body[previous_end:block.start()]
            found.append(Block(int(section[1]), section[2], prose, block[1]))
            previous_end = block.end()
    return found
