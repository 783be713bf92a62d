"""Entry point of the desktop bundle (PyInstaller runs this file as ``__main__``).

One executable for everything a fab PC does: no arguments opens the app (as a double-click
or the Start menu does), ``app``, ``predict``, ``--version``, ``--self-test`` and the other
sub-commands go through the same command line as ``waferdesk`` in a Python install.
"""

import multiprocessing
import sys

from waferdesk.cli.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen program re-runs itself for child processes
    sys.exit(main())
