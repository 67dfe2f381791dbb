"""Evaluation protocols: which gallery items a query may not be matched against, and which CMC to report.

Each protocol reproduces the rule of the evaluator that published numbers come from:

- ``sysu`` (AGW/CSDN ``eval_sysu``): camera-2 gallery items are dropped for camera-3 queries; unique-identity CMC.
- ``regdb`` (AGW/CSDN ``eval_regdb``): nothing is dropped; standard CMC.
- ``llcm`` (LLCM ``eval_llcm``): items sharing the query's identity *and* camera are dropped; unique-identity CMC.
- ``market`` (torchreid ``eval_market1501``): same removal as ``llcm``; standard CMC.

The *standard* CMC at rank k is 1 when a true match appears among the first k kept gallery items. The
*unique-identity* CMC first removes every gallery item whose identity already appeared higher in the ranked
list (each identity keeps its best-ranked item), then applies the same rule. AP and INP always use the full
ranked list of kept items.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PROTOCOLS", "Protocol", "get_protocol"]


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol.

    Attributes:
        name: Protocol name (``"sysu"``, ``"regdb"``, ``"llcm"`` or ``"market"``).
        removal: ``"sysu_cam3_cam2"`` (drop camera-2 gallery items for camera-3 queries), ``"none"`` or
            ``"same_pid_cam"`` (drop gallery items sharing the query's identity and camera).
        unique_cmc: Whether the CMC is computed on the identity-deduplicated ranking.
        needs_cams: Whether camera ids are required.
    """

    name: str
    removal: str
    unique_cmc: bool
    needs_cams: bool

    def removed(
        self, q_pids: torch.Tensor, g_pids: torch.Tensor, q_cams: torch.Tensor | None, g_cams: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Mask of the gallery items each query may not be matched against.

        Args:
            q_pids: Query identities, shape (Q,).
            g_pids: Gallery identities, shape (G,).
            q_cams: Query cameras, shape (Q,), or None when the protocol does not use cameras.
            g_cams: Gallery cameras, shape (G,), or None.

        Returns:
            Bool tensor (Q, G), True where the gallery item is removed, or None when nothing is removed.
        """
        if self.removal == "none":
            return None
        assert q_cams is not None and g_cams is not None  # guaranteed by evaluate()'s validation
        if self.removal == "sysu_cam3_cam2":
            return (q_cams == 3)[:, None] & (g_cams == 2)[None, :]
        return (q_pids[:, None] == g_pids[None, :]) & (q_cams[:, None] == g_cams[None, :])


PROTOCOLS: dict[str, Protocol] = {
    "sysu": Protocol("sysu", "sysu_cam3_cam2", unique_cmc=True, needs_cams=True),
    "regdb": Protocol("regdb", "none", unique_cmc=False, needs_cams=False),
    "llcm": Protocol("llcm", "same_pid_cam", unique_cmc=True, needs_cams=True),
    "market": Protocol("market", "same_pid_cam", unique_cmc=False, needs_cams=True),
}


def get_protocol(name: str | Protocol) -> Protocol:
    """Look up a protocol by name (case-insensitive).

    Raises:
        ValueError: If the name is unknown.
    """
    if isinstance(name, Protocol):
        return name
    key = str(name).lower()
    if key not in PROTOCOLS:
        raise ValueError(f"Unknown value {name!r} for argument protocol. Valid values are {sorted(PROTOCOLS)}.")
    return PROTOCOLS[key]
