"""Evaluation reports a researcher can open, read and share (plots need the ``viz`` extra).

- :mod:`csdn.report.analysis`: camera x camera rank-1/mAP, matching vs non-matching distances, ROC, lowest-AP
  queries (numpy/torch only).
- :func:`write_report` / :func:`build_report`: a self-contained ``index.html`` (inline CSS, embedded images,
  every text escaped) with the results table, CMC curves, the analyses and the provenance of the numbers.
- :func:`write_index`: a page linking several reports (``csdn ablate``).
"""

from .analysis import CameraMatrix as CameraMatrix
from .analysis import HardQuery as HardQuery
from .analysis import ROCCurve as ROCCurve
from .analysis import camera_matrix as camera_matrix
from .analysis import distance_distributions as distance_distributions
from .analysis import hardest_queries as hardest_queries
from .analysis import roc_curve as roc_curve
from .build import build_report as build_report
from .build import check_report_dir as check_report_dir
from .provenance import provenance as provenance
from .writer import SplitAnalysis as SplitAnalysis
from .writer import analyse_split as analyse_split
from .writer import write_index as write_index
from .writer import write_report as write_report
