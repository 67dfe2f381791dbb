"""Training engine: configuration, presets, optimisers, RNG state, distributed helpers, the stage objects and the
three-stage trainer (checkpoint files: :mod:`csdn.models.checkpoint`)."""

from .._deprecation import deprecated_getattr
from ..models.checkpoint import load_checkpoint as load_checkpoint
from ..models.checkpoint import save_checkpoint as save_checkpoint
from .build import build_csdn as build_csdn
from .build import load_trained_model as load_trained_model
from .config import DataConfig as DataConfig
from .config import ImageStageConfig as ImageStageConfig
from .config import ModelConfig as ModelConfig
from .config import PromptStageConfig as PromptStageConfig
from .config import QuirksConfig as QuirksConfig
from .config import RuntimeConfig as RuntimeConfig
from .config import TrainConfig as TrainConfig
from .config import apply_overrides as apply_overrides
from .config import config_from_dict as config_from_dict
from .config import config_to_dict as config_to_dict
from .config import load_config as load_config
from .config import save_config as save_config
from .distributed import DistInfo as DistInfo
from .inputs import holdout_validation as holdout_validation
from .optim import WarmupCosine as WarmupCosine
from .optim import WarmupMultiStep as WarmupMultiStep
from .optim import build_image_stage_optimizer as build_image_stage_optimizer
from .optim import build_prompt_stage_optimizer as build_prompt_stage_optimizer
from .presets import ABLATIONS as ABLATIONS
from .presets import PRESETS as PRESETS
from .presets import apply_ablation as apply_ablation
from .presets import get_preset as get_preset
from .rng import capture_rng_state as capture_rng_state
from .rng import restore_rng_state as restore_rng_state
from .tracking import MetricsLogger as MetricsLogger
from .trainer import NonFiniteLossError as NonFiniteLossError
from .trainer import Trainer as Trainer

# deprecated names (removed in 0.3.0; see docs/development.md, "Deprecation policy")
__getattr__ = deprecated_getattr(__name__, {"build_model": ("csdn.engine.build_csdn", lambda: build_csdn)})
