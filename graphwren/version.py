"""graphwren's version, in a leaf module any layer may import (pyproject reads it from here)."""
__version__ = "0.1.0"
