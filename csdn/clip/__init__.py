"""A self-contained, OpenAI-compatible CLIP: model, loader and tokenizer (the leaf layer of csdn)."""

from .build import TINY_CONFIGS as TINY_CONFIGS
from .build import build_model as build_model
from .build import infer_config as infer_config
from .build import tiny_state_dict as tiny_state_dict
from .cache import CACHE_ENV as CACHE_ENV
from .cache import DownloadError as DownloadError
from .cache import download as download
from .model import CLIP as CLIP
from .model import AttentionPool2d as AttentionPool2d
from .model import Bottleneck as Bottleneck
from .model import ModifiedResNet as ModifiedResNet
from .model import ResidualAttentionBlock as ResidualAttentionBlock
from .model import Transformer as Transformer
from .model import VisionTransformer as VisionTransformer
from .pos_embed import resize_pos_embed as resize_pos_embed
from .pretrained import available_models as available_models
from .pretrained import build_preprocess as build_preprocess
from .pretrained import load as load
from .pretrained import read_state_dict as read_state_dict
from .pretrained import resolve as resolve
from .tokenizer import SimpleTokenizer as SimpleTokenizer
from .tokenizer import tokenize as tokenize
from .torchscript import ArchiveReadError as ArchiveReadError
from .torchscript import read_torchscript_state_dict as read_torchscript_state_dict
