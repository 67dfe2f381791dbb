"""Modality separation loss (MSEL) of the official CSDN code."""

from __future__ import annotations

import torch
from torch import nn

from .._modality import MODALITIES
from .pairwise import check_paired_features, pairwise_euclidean

__all__ = ["ModalitySeparationLoss"]


class ModalitySeparationLoss(nn.Module):
    """CSDN's MSEL: pull each sample's cross-modality distances towards its intra-modality spread.

    For every visible anchor ``i`` (and symmetrically every infrared anchor):

    - ``intra_i`` = mean of the ``num_pos - 1`` largest values of ``d(i, j) * [y_j == y_i]`` over the anchor's own
      modality (the official code takes ``topk`` of the masked distance row, so with ``num_pos`` images per
      identity and modality these are exactly the other same-identity images; the anchor itself sits at
      distance ``sqrt(1e-12)``);
    - ``cross_i`` = mean distance from the anchor to the other modality's samples of its identity.

    The loss is ``(mean_vis (cross - intra)^2 + mean_ir (cross - intra)^2) / 2`` on Euclidean distances of the
    features as given (pre-BN features in CSDN).

    The official code receives ``cat([visible, infrared])`` and takes the masks from the visible labels only,
    i.e. it assumes both halves carry the same label sequence (what its sampler produces). Here each modality
    has its own labels, so the loss is the same as the official one in that case and still well defined when
    the two label sequences are ordered differently or have different lengths.

    Args:
        num_pos: Images per identity and modality in a batch (K of the P x K sampler); CSDN uses 4.
        normalize_feature: L2-normalise the features first (the official ``feat_norm='yes'``); CSDN uses False.
    """

    def __init__(self, num_pos: int = 4, normalize_feature: bool = False) -> None:
        super().__init__()
        if int(num_pos) != num_pos or num_pos < 2:
            raise ValueError(f"num_pos must be an integer >= 2 (images per identity and modality), got {num_pos}")
        self.num_pos = int(num_pos)
        self.normalize_feature = bool(normalize_feature)

    def forward(
        self,
        visible: torch.Tensor,
        infrared: torch.Tensor,
        visible_labels: torch.Tensor,
        infrared_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            visible: Visible features, shape (Nv, D).
            infrared: Infrared features, shape (Nr, D).
            visible_labels: Identity labels of the visible rows, shape (Nv,).
            infrared_labels: Identity labels of the infrared rows, shape (Nr,); None means "the same as
                ``visible_labels``" (the official convention, which requires Nr == Nv).

        Returns:
            Scalar loss.

        Raises:
            ValueError: On inconsistent shapes, fewer than ``num_pos - 1`` rows in a modality, or an identity
                present in only one modality.
        """
        if infrared_labels is None:
            infrared_labels = visible_labels
        self._check(visible, infrared, visible_labels, infrared_labels)
        if self.normalize_feature:
            visible = nn.functional.normalize(visible, p=2, dim=1)
            infrared = nn.functional.normalize(infrared, p=2, dim=1)
        vis_term = self._separation(visible, infrared, visible_labels, infrared_labels)
        ir_term = self._separation(infrared, visible, infrared_labels, visible_labels)
        return (vis_term + ir_term) / 2

    def _separation(
        self, own: torch.Tensor, other: torch.Tensor, own_labels: torch.Tensor, other_labels: torch.Tensor
    ) -> torch.Tensor:
        """Mean over ``own`` anchors of (cross - intra)^2; shapes as in :meth:`forward`."""
        same_intra = (own_labels.unsqueeze(1) == own_labels.unsqueeze(0)).to(own.dtype)  # (N, N)
        intra = (pairwise_euclidean(own, own) * same_intra).topk(self.num_pos - 1, dim=1).values.mean(dim=1)
        same_cross = (own_labels.unsqueeze(1) == other_labels.unsqueeze(0)).to(own.dtype)  # (N, M)
        count = same_cross.sum(dim=1)
        if not bool((count > 0).all()):
            raise ValueError("every identity in the batch must have samples in both modalities")
        cross = (pairwise_euclidean(own, other) * same_cross).sum(dim=1) / count
        return (cross - intra).pow(2).mean()

    def _check(
        self,
        visible: torch.Tensor,
        infrared: torch.Tensor,
        visible_labels: torch.Tensor,
        infrared_labels: torch.Tensor,
    ) -> None:
        """Raise ValueError for inconsistent shapes or too few rows (see :meth:`forward`)."""
        check_paired_features(
            visible,
            infrared,
            visible_labels,
            infrared_labels,
            MODALITIES,
            label_hint="pass infrared_labels when the two modalities differ",
        )
        if min(visible.shape[0], infrared.shape[0]) < self.num_pos - 1:
            raise ValueError(
                f"each modality needs at least num_pos - 1 = {self.num_pos - 1} rows, got {visible.shape[0]} "
                f"visible and {infrared.shape[0]} infrared; lower num_pos or use larger batches"
            )

    def extra_repr(self) -> str:
        return f"num_pos={self.num_pos}, normalize_feature={self.normalize_feature}"
