"""Locate the templates/ and schemas/ folders, in a wheel install or a source checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from scaffold.errors import ResourceNotFoundError

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """Return the folder *name*: the copy inside the package first, then the checkout's."""
    packaged = Path(str(files("scaffold") / name))
    if packaged.is_dir():
        return packaged
    in_checkout = _SOURCE_ROOT / name
    if in_checkout.is_dir():
        return in_checkout
    raise ResourceNotFoundError(f"djdeploy's {name}/ folder is missing: the installation is broken")
