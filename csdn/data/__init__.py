"""Datasets for visible-infrared re-ID: SYSU-MM01, RegDB and LLCM readers with the standard protocols,
synthetic look-alike datasets, channel augmentations, the cross-modality identity sampler and DataLoader datasets.
"""

from .base import VIReIDDataset as VIReIDDataset
from .llcm import LLCM as LLCM
from .regdb import RegDB as RegDB
from .registry import DATASETS as DATASETS
from .registry import detect_dataset as detect_dataset
from .registry import open_dataset as open_dataset
from .samples import Modality as Modality
from .samples import Sample as Sample
from .samples import TestSplit as TestSplit
from .samples import TrainSplit as TrainSplit
from .sysu import SYSUMM01 as SYSUMM01
