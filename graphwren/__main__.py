"""``python -m graphwren``: the same command line as ``graphwren``."""
import sys

from .cli import main

sys.exit(main())
