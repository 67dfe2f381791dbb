"""CSDN model components (prompt learners, text encoder, semantic integrator, heads, two-stream image encoder),
building a CSDN from its configuration and the ablation rules (``factory``), and the checkpoint schema
(``checkpoint``).
"""

from .checkpoint import checkpoint_kind as checkpoint_kind
from .checkpoint import load_csdn as load_csdn
from .csdn import CSDN as CSDN
from .csdn import STAGES as STAGES
from .csdn import ImageFeatures as ImageFeatures
from .factory import ABLATIONS as ABLATIONS
from .factory import ModelConfig as ModelConfig
from .factory import csdn_from_config as csdn_from_config
from .factory import resolve_ablation as resolve_ablation
from .heads import BNNeck as BNNeck
from .heads import BNNeckOutput as BNNeckOutput
from .heads import GeM as GeM
from .heads import HSEHead as HSEHead
from .image_encoder import EncodedImage as EncodedImage
from .image_encoder import ResNetStem as ResNetStem
from .image_encoder import TwoStreamEncoder as TwoStreamEncoder
from .image_encoder import TwoStreamResNet as TwoStreamResNet
from .image_encoder import TwoStreamViT as TwoStreamViT
from .image_encoder import build_image_encoder as build_image_encoder
from .integrator import INTEGRATORS as INTEGRATORS
from .integrator import AddIntegrator as AddIntegrator
from .integrator import SemanticIntegrator as SemanticIntegrator
from .integrator import VisibleOnlyIntegrator as VisibleOnlyIntegrator
from .integrator import build_integrator as build_integrator
from .official import OfficialLoadReport as OfficialLoadReport
from .official import convert_official_state_dict as convert_official_state_dict
from .official import csdn_from_official as csdn_from_official
from .official import load_official_checkpoint as load_official_checkpoint
from .prompts import DEFAULT_TEMPLATE as DEFAULT_TEMPLATE
from .prompts import ModalityPromptLearner as ModalityPromptLearner
from .prompts import Prompts as Prompts
from .text_encoder import TextEncoder as TextEncoder
