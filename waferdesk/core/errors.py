"""Typed errors of the core.

Every error a user can meet names what was wrong (the file, the field, the value) in its
message, so that the CLI, the app and the server can show ``str(exc)`` as-is and never a
stack trace.
"""

from __future__ import annotations


class WaferDeskError(Exception):
    """Base class of every error WaferDesk raises on purpose."""


class ValidationError(WaferDeskError, ValueError):
    """A wafer map or label mask breaks the data model (wrong dtype, values, shape, labels)."""


class TaxonomyError(WaferDeskError):
    """The taxonomy file is missing or malformed, or a class name is unknown."""


class FormatError(WaferDeskError):
    """A wafer file cannot be read or written.

    ``path`` is the file, ``problem`` what is wrong with it; ``str()`` joins them so a
    message always says which file.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsupportedFormatError(FormatError):
    """No reader recognises the file."""


class ModelError(WaferDeskError):
    """A model file or its card cannot be used (missing, corrupt, incompatible)."""
