"""``python -m server`` is ``waferdesk-server``."""

import sys

from .cli import main

sys.exit(main())
