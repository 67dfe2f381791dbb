"""Losses of CSDN: tensors in, scalar out.

``SupConLoss`` (stages 1-2), ``CrossEntropyLabelSmooth`` (identity and HSE terms), ``WeightedRegularizedTriplet``
(AGW's WRT) and ``ModalitySeparationLoss`` (MSEL) for stage 3.
"""

from .identity import CrossEntropyLabelSmooth as CrossEntropyLabelSmooth
from .msel import ModalitySeparationLoss as ModalitySeparationLoss
from .pairwise import pairwise_euclidean as pairwise_euclidean
from .supcon import SupConLoss as SupConLoss
from .triplet import WeightedRegularizedTriplet as WeightedRegularizedTriplet

__all__ = [
    "CrossEntropyLabelSmooth",
    "ModalitySeparationLoss",
    "SupConLoss",
    "WeightedRegularizedTriplet",
    "pairwise_euclidean",
]
