"""Errors whose message is shown to the user without a traceback (stdlib only)."""

from __future__ import annotations

from collections.abc import Sequence


class DjdeployError(Exception):
    """Base class; ``str(error)`` is the complete user-facing message."""

    exit_code = 2


class SpecError(DjdeployError):
    """The spec is not valid: one problem per line, each naming its field."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: invalid spec ({len(self.problems)} problem(s))\n{lines}")


class OutputConflictError(DjdeployError):
    """Files in the output directory were written or edited by hand."""

    exit_code = 1

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        listed = "\n".join(f"  {p}" for p in self.paths)
        super().__init__(
            "refusing to overwrite files that djdeploy did not generate, "
            f"or that were edited by hand since:\n{listed}\n"
            "Move the changes into the spec, or pass --force to overwrite them."
        )


class OutputError(DjdeployError):
    """The output directory cannot be written; nothing was changed."""

    exit_code = 1


class ResourceNotFoundError(DjdeployError):
    """The installed package lacks its templates or schemas (a broken install)."""

    exit_code = 1


class AnswerError(DjdeployError):
    """A flag's value, or the answer init needs, is missing or invalid; nothing was written."""


class SpecExistsError(DjdeployError):
    """The spec file is already there and --force was not given."""

    exit_code = 1
