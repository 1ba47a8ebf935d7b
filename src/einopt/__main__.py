"""``python -m einopt``: the same as the ``einopt`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
