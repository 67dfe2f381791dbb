"""Deprecated module: split in 0.2.0 into :mod:`csdn.models.checkpoint` (files) and :mod:`csdn.engine.rng`
(random state); this alias warns and is removed in 0.3.0."""

from .._deprecation import warn_deprecated
from ..models.checkpoint import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from ..models.checkpoint import FEATURES_FORMAT as FEATURES_FORMAT
from ..models.checkpoint import check_plain as check_plain
from ..models.checkpoint import load_checkpoint as load_checkpoint
from ..models.checkpoint import save_checkpoint as save_checkpoint
from .rng import capture_rng_state as capture_rng_state
from .rng import deterministic_algorithms as deterministic_algorithms
from .rng import restore_rng_state as restore_rng_state
from .rng import seed_global_rngs as seed_global_rngs

__all__ = [
    "CHECKPOINT_FORMAT",
    "FEATURES_FORMAT",
    "check_plain",
    "load_checkpoint",
    "save_checkpoint",
    "capture_rng_state",
    "deterministic_algorithms",
    "restore_rng_state",
    "seed_global_rngs",
]

warn_deprecated("csdn.engine.checkpoint", "csdn.models.checkpoint and csdn.engine.rng", stacklevel=2)
