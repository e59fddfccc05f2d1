"""``python -m lab_helpers``: the course's command line (see ``cli.py``)."""

import sys

from .cli import main

sys.exit(main())
