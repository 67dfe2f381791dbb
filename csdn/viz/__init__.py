"""Plots for re-ID results (extra ``viz``: ``pip install 'csdn[viz]'``).

Every function takes arrays/tensors/paths and writes a PNG atomically; matplotlib is imported only when a plot
is drawn (through its object-oriented API, so no pyplot state or backend is touched), and a missing matplotlib
raises an ImportError naming the extra.

- :func:`plot_ranked_lists`: query + top-k gallery images, green/red frames for same/other identity.
- :func:`plot_cmc`: CMC curves of several runs.
- :func:`plot_modality_projection`: 2-D PCA (or t-SNE with scikit-learn) of visible vs infrared embeddings.
- :func:`activation_maps` / :func:`plot_activation_maps`: Grad-CAM-style maps of the last image-encoder stage.
- :func:`write_evaluation_plots`: all of the above for one query/gallery evaluation;
  :func:`plot_evaluation`: the same from a ``VIReIDEvaluator`` and its report (what ``csdn eval --plot DIR`` writes).
"""

from .curves import plot_cmc as plot_cmc
from .heatmap import activation_maps as activation_maps
from .heatmap import plot_activation_maps as plot_activation_maps
from .heatmap import plot_heatmaps as plot_heatmaps
from .projection import plot_modality_projection as plot_modality_projection
from .projection import project_2d as project_2d
from .ranking import plot_ranked_lists as plot_ranked_lists
from .report import plot_evaluation as plot_evaluation
from .report import write_evaluation_plots as write_evaluation_plots
