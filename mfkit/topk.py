"""The one top-k: scores (or blocks of factor products) in, each user's seen items excluded, best ``k`` out.

Every ranking in mfkit goes through here: :meth:`mfkit.base.Recommender.recommend`,
:func:`mfkit.metrics.top_k_items` and :func:`mfkit.metrics.ranking_metrics`, :func:`mfkit.serving.top_k_exact`
and :func:`mfkit.scale.top_k_all_users`. Seen items are a CSR matrix (users × items, scipy), excluded by setting
their scores to ``-inf`` on the device; users are processed in batches so that memory stays bounded (the
``implicit`` library's ``recommend`` with ``filter_already_liked_items`` does the same per batch).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["seen_rows", "mask_seen", "top_k", "top_k_vectors"]


def csr_rows_as_coo(csr, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row position within ``rows``, column) index tensors of the non-zeros of the CSR rows ``rows``."""
    sub = csr[np.asarray(rows)]
    row_pos = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    return (torch.from_numpy(row_pos.astype(np.int64)).to(device),
            torch.from_numpy(sub.indices.astype(np.int64)).to(device))


def seen_rows(seen, users: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """``(len(users), n_items)`` dense 0/1 rows of ``seen`` (CSR) for the dense user indices ``users``, on their
    device (what item kNN and EASE multiply by their item-item weights)."""
    out = torch.zeros(len(users), seen.shape[1], dtype=dtype, device=users.device)
    out[csr_rows_as_coo(seen, users.cpu().numpy(), users.device)] = 1.0
    return out


def mask_seen(scores: torch.Tensor, seen, users) -> torch.Tensor:
    """``scores`` (``(len(users), n_items)``, changed in place and returned) with ``-inf`` at each user's seen
    items (``seen``: a scipy CSR matrix, users × items; ``users``: its rows, in the order of ``scores``)."""
    rows, cols = csr_rows_as_coo(seen, users, scores.device)
    scores[rows, cols] = -torch.inf
    return scores


def top_k(scores: torch.Tensor, k: int, seen=None, users=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best ``(values, indices)`` of each row of ``scores``, seen items (``seen``, rows ``users``)
    excluded in place first; ``k`` at most the number of columns."""
    if seen is not None:
        mask_seen(scores, seen, users)
    top = torch.topk(scores, min(int(k), scores.shape[1]), dim=1)
    return top.values, top.indices


def top_k_vectors(queries: torch.Tensor, items: torch.Tensor, k: int, seen=None, batch_size: int | None = None,
                  max_elements: int = 2 ** 26) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of ``queries @ items.T`` (both on one device), in batches of queries whose scores stay within
    ``max_elements`` (2**26 floats, 256 MB) unless ``batch_size`` is given; ``seen`` (CSR, one row per query)
    excluded. Returns ``(values, indices)``, ``(n_queries, k)`` each, on the device, best first."""
    n, n_items = len(queries), len(items)
    if batch_size is None:
        batch_size = max(1, max_elements // max(1, n_items))
    values = torch.empty(n, k, dtype=queries.dtype, device=queries.device)
    index = torch.empty(n, k, dtype=torch.long, device=queries.device)
    items_t = items.T.contiguous()
    with torch.no_grad():
        for a in range(0, n, batch_size):
            b = min(a + batch_size, n)
            values[a:b], index[a:b] = top_k(queries[a:b] @ items_t, k, seen, None if seen is None else
                                            np.arange(a, b))
    return values, index
