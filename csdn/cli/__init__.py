"""The ``csdn`` command line (console script ``csdn = csdn.cli:main``; also ``python -m csdn``)."""

from .main import build_parser as build_parser
from .main import main as main

__all__ = ["main", "build_parser"]
