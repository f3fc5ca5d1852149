"""``python -m magan`` (and ``torchrun -m magan``) runs the command line."""

import sys

from magan.cli import main

sys.exit(main())
