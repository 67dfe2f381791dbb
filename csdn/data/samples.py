"""Plain records shared by every dataset reader: samples, train and test splits (modalities: :mod:`csdn._modality`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .._modality import Modality

__all__ = ["Modality", "Sample", "TrainSplit", "TestSplit", "PROTOCOL_NAMES", "describe_samples"]

#: Names of the evaluation protocols a :class:`TestSplit` can carry (their rules: ``csdn.evaluation.protocols``).
PROTOCOL_NAMES = ("sysu", "regdb", "llcm", "market")


class Sample(NamedTuple):
    """One image of a dataset.

    Attributes:
        path: full path of the image (the reader's root joined with the dataset's relative path).
        pid: the dataset's own identity number (for index-file datasets, the label written in the index file).
        cam: the dataset's camera number (RegDB has none: visible 1, thermal 2).
        modality: ``"visible"`` or ``"infrared"``.
        label: training label ``0..C-1`` in sorted-``pid`` order; ``-1`` in test splits.
    """

    path: str
    pid: int
    cam: int
    modality: str
    label: int = -1


def describe_samples(samples: Sequence[Sample]) -> str:
    """A short summary of a sample list for reprs: ``"<120 images, 12 ids, cams [1, 2, 4, 5]>"``."""
    cams = sorted({s.cam for s in samples})
    return f"<{len(samples)} images, {len({s.pid for s in samples})} ids, cams {cams}>"


@dataclass(frozen=True)
class TrainSplit:
    """Training images of both modalities with aligned labels ``0..num_classes-1``.

    Attributes:
        visible: visible samples, each with ``label`` set.
        infrared: infrared samples, each with ``label`` set (same pid -> same label as in ``visible``).
        num_classes: number of training identities ``C``.
    """

    visible: list[Sample]
    infrared: list[Sample]
    num_classes: int

    def __repr__(self) -> str:
        return (
            f"TrainSplit(num_classes={self.num_classes}, visible={describe_samples(self.visible)}, "
            f"infrared={describe_samples(self.infrared)})"
        )

    @property
    def pids(self) -> list[int]:
        """Original dataset pid of every label: ``pids[label] == pid``."""
        mapping = {s.label: s.pid for s in (*self.visible, *self.infrared)}
        return [mapping[label] for label in range(self.num_classes)]


@dataclass(frozen=True)
class TestSplit:
    """One evaluation setting: queries of one modality searched in a gallery of the other.

    Attributes:
        query: query samples with original pids/cams (``label == -1``).
        gallery: gallery samples with original pids/cams.
        protocol: evaluation rule, one of ``"sysu"``, ``"regdb"``, ``"llcm"``, ``"market"``.
        query_modality: modality of the queries.
        gallery_modality: modality of the gallery.
        name: human-readable name of the setting, e.g. ``"sysu all-search single-shot"``.
        trial: the trial (random draw / split file) this split belongs to.
    """

    query: list[Sample]
    gallery: list[Sample]
    protocol: str
    query_modality: str
    gallery_modality: str
    name: str
    trial: int = 0

    def __repr__(self) -> str:
        return (
            f"TestSplit({self.name!r}, trial={self.trial}, protocol={self.protocol!r}, "
            f"query={describe_samples(self.query)}, gallery={describe_samples(self.gallery)})"
        )
