"""``python -m humanparse.compare`` (see :mod:`humanparse.compare.cli`)."""

import sys

from humanparse.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
