"""The ``waferdesk`` command line: one module per sub-command, registered in :mod:`.main`."""

from .main import main

__all__ = ["main"]
