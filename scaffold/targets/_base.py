"""What every target module provides, and the job it hands to the renderer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Comment:
    """How one file format writes a comment line."""

    prefix: str
    suffix: str = ""


HASH = Comment("#")
SEMICOLON = Comment(";")
MARKDOWN = Comment("<!--", " -->")


@dataclass(frozen=True)
class RenderJob:
    """One file to render: a template, where it goes, and the values it lays out."""

    template: str
    dest: PurePosixPath
    context: Mapping[str, Any] = field(default_factory=dict)
    comment: Comment = HASH
    mode: int = 0o644
