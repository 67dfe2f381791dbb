"""csdn: CLIP-Driven Semantic Discovery Network for visible-infrared person re-identification.

Subpackages, in dependency order (each imports only from those before it): ``clip`` -> ``data`` -> ``models``
-> ``losses`` -> ``engine`` (training only); ``evaluation`` and ``inference`` sit on ``data``/``models`` and never
import ``engine``; ``viz``, ``export``, ``report`` and ``cli`` on top (see ``tests/test_layering.py``). Importing
:mod:`csdn` builds nothing and touches no hardware.
"""

from . import clip as clip
from . import data as data
from . import engine as engine
from . import evaluation as evaluation
from . import inference as inference
from . import losses as losses
from . import models as models
from ._version import __version__ as __version__
from .data import LLCM as LLCM
from .data import SYSUMM01 as SYSUMM01
from .data import Modality as Modality
from .data import RegDB as RegDB
from .data import Sample as Sample
from .data import open_dataset as open_dataset
from .engine import TrainConfig as TrainConfig
from .engine import Trainer as Trainer
from .engine import get_preset as get_preset
from .evaluation import VIReIDEvaluator as VIReIDEvaluator
from .evaluation import distance as distance
from .evaluation import evaluate as evaluate
from .evaluation import re_ranking as re_ranking
from .inference import FeatureExtractor as FeatureExtractor
from .inference import SearchResult as SearchResult
from .inference import search as search
from .models import CSDN as CSDN
from .models import csdn_from_official as csdn_from_official
