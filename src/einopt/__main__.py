"""``python -m einopt``: the same as the ``einopt`` command."""

import sys

from .cli import main

sys.exit(main())
