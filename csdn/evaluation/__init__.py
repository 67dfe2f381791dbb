"""Evaluation: exact VI-ReID metrics, distances with k-reciprocal re-ranking, and a full-protocol evaluator."""

from .chance import ChanceLevel as ChanceLevel
from .chance import chance_level as chance_level
from .evaluator import VIReIDEvaluator as VIReIDEvaluator
from .features import extract_features as extract_features
from .fused import distance as distance
from .metrics import EvaluationResult as EvaluationResult
from .metrics import evaluate as evaluate
from .protocols import PROTOCOLS as PROTOCOLS
from .protocols import Protocol as Protocol
from .protocols import get_protocol as get_protocol
from .rerank import re_ranking as re_ranking
from .results import EvaluationReport as EvaluationReport
from .results import TrialRecord as TrialRecord
from .roc import tpr_at_fpr as tpr_at_fpr
