"""Deprecated module: renamed :mod:`csdn.losses.pairwise` in 0.2.0; this alias warns and is removed in 0.3.0."""

from .._deprecation import warn_deprecated
from .pairwise import check_paired_features as check_paired_features
from .pairwise import pairwise_euclidean as pairwise_euclidean

__all__ = ["check_paired_features", "pairwise_euclidean"]

warn_deprecated("csdn.losses.distance", "csdn.losses.pairwise", stacklevel=2)
