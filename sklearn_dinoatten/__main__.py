"""``python -m sklearn_dinoatten``: the command line."""

import sys

from .cli import main

sys.exit(main())
