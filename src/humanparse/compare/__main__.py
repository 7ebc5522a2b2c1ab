"""``python -m humanparse.compare`` (see :mod:`humanparse.compare.cli`)."""

import sys

from humanparse.compare.cli import main
from humanparse.utils.errors import run_main

if __name__ == "__main__":
    sys.exit(run_main(main))
