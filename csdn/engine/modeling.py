"""Deprecated module: renamed :mod:`csdn.engine.build` in 0.2.0 (``build_model`` is ``build_csdn``); this alias
warns and is removed in 0.3.0."""

from .._deprecation import warn_deprecated
from ..models.checkpoint import CLIP_ARCH_KEY as CLIP_ARCH_KEY
from .build import build_csdn as build_model
from .build import load_trained_model as load_trained_model

__all__ = ["CLIP_ARCH_KEY", "build_model", "load_trained_model"]

warn_deprecated("csdn.engine.modeling", "csdn.engine.build (build_model is build_csdn)", stacklevel=2)
