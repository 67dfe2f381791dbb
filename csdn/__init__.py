"""csdn: CLIP-Driven Semantic Discovery Network for visible-infrared person re-identification.

Subpackages, in dependency order (each imports only from those before it):
``clip`` -> ``data`` -> ``models`` -> ``losses`` -> ``engine`` -> ``evaluation`` -> (``cli``, ``extract``,
``search``, ``viz``, ``export``). Importing :mod:`csdn` builds nothing and touches no hardware.
"""

__version__ = "0.1.0"

from . import clip as clip
from . import data as data
from . import engine as engine
from . import evaluation as evaluation
from . import losses as losses
from . import models as models
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
from .extract import FeatureExtractor as FeatureExtractor
from .models import CSDN as CSDN
from .models import csdn_from_official as csdn_from_official
from .search import SearchResult as SearchResult
from .search import search as search
