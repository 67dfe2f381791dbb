"""Evaluation: exact VI-ReID metrics, distances with k-reciprocal re-ranking, and a full-protocol evaluator."""

from .evaluator import EvaluationReport as EvaluationReport
from .evaluator import TrialRecord as TrialRecord
from .evaluator import VIReIDEvaluator as VIReIDEvaluator
from .features import extract_features as extract_features
from .fused import distance as distance
from .metrics import EvaluationResult as EvaluationResult
from .metrics import evaluate as evaluate
from .protocols import PROTOCOLS as PROTOCOLS
from .protocols import Protocol as Protocol
from .protocols import get_protocol as get_protocol
from .rerank import re_ranking as re_ranking
