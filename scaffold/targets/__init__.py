"""The registry of output kinds: one module per target, each with ``NAME`` and ``jobs(spec)``."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# Order is the order files are listed in plans; a new target is one module here and one
# templates/<name>/ folder.
TARGET_NAMES = ("nginx", "gunicorn", "uwsgi", "uvicorn", "daphne", "hypercorn", "supervisor", "systemd", "pm2",
                "firewall", "django", "runbook", "ansible")


def load_targets() -> list[ModuleType]:
    """Import the target modules, in registry order."""
    return [import_module(f"scaffold.targets.{name}") for name in TARGET_NAMES]
