"""Datasets for visible-infrared re-ID: SYSU-MM01, RegDB and LLCM readers with the standard protocols, CSV lists
for your own dataset, a registry of readers, synthetic look-alike datasets, channel augmentations, the
cross-modality identity sampler and DataLoader datasets.
"""

from typing import TYPE_CHECKING, Any

from .base import VIReIDDataset as VIReIDDataset
from .csv_dataset import CSVDataset as CSVDataset
from .llcm import LLCM as LLCM
from .loaders import CachedImageLoader as CachedImageLoader
from .loaders import CrossModalityDataset as CrossModalityDataset
from .loaders import ImageDataset as ImageDataset
from .loaders import PairedSample as PairedSample
from .loaders import concat_views as concat_views
from .loaders import load_image as load_image
from .regdb import RegDB as RegDB
from .registry import DATASETS as DATASETS
from .registry import detect_dataset as detect_dataset
from .registry import open_dataset as open_dataset
from .registry import register_dataset as register_dataset
from .samplers import CrossModalityIdentitySampler as CrossModalityIdentitySampler
from .samples import Modality as Modality
from .samples import Sample as Sample
from .samples import TestSplit as TestSplit
from .samples import TrainSplit as TrainSplit
from .sysu import SYSUMM01 as SYSUMM01

if TYPE_CHECKING:
    from .transforms import ChannelAdapGray as ChannelAdapGray
    from .transforms import ChannelExchange as ChannelExchange
    from .transforms import ChannelRandomErasing as ChannelRandomErasing
    from .transforms import TrainTransforms as TrainTransforms
    from .transforms import build_test_transform as build_test_transform
    from .transforms import build_train_transforms as build_train_transforms

#: Names of :mod:`csdn.data.transforms` served on first access: importing torchvision also imports its detection
#: ops and ``torch._dynamo`` (about a second), which ``import csdn`` and ``csdn --help`` do not need.
_TRANSFORMS = (
    "ChannelAdapGray",
    "ChannelExchange",
    "ChannelRandomErasing",
    "TrainTransforms",
    "build_test_transform",
    "build_train_transforms",
)


def __getattr__(name: str) -> Any:
    if name in _TRANSFORMS:
        from . import transforms

        return getattr(transforms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_TRANSFORMS])
