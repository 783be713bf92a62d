"""``python -m waferdesk.worker``: the training worker (see :mod:`waferdesk.worker`)."""

import sys

from .cli import main

sys.exit(main())
