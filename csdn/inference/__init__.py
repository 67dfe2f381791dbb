"""Using a trained model: :class:`FeatureExtractor` (images -> embeddings), :func:`search` (top-k gallery
matches), and loading a trained or official checkpoint for inference. Never imports the training engine.
"""

from .extractor import FeatureExtractor as FeatureExtractor
from .extractor import load_model as load_model
from .search import SearchResult as SearchResult
from .search import rank_distances as rank_distances
from .search import search as search
