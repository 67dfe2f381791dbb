"""The version of this csdn (one place: the package, pyproject and run records read it)."""

__version__ = "0.2.0"
