"""What a user has seen: the observed (user, item) pairs of an :class:`~mfkit.data.Interactions`, each once.

One place for the three views every model and metric needs: the pairs (sorted by user, then item), the seen-items
CSR matrix (what top-k excludes) and item popularity (distinct users per item: the popularity baseline, BPR's
popularity sampling, the popularity of recommendations, the cold-start fallback).

Used by: :mod:`mfkit.implicit`, :mod:`mfkit.ranking`, :mod:`mfkit.spark`, :mod:`mfkit.topk`, :mod:`mfkit.serving`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["observed_pairs", "seen_csr", "item_popularity"]


def seen_csr(data):
    """The items of each user as a scipy CSR matrix of ones, indices sorted (a pair held twice counts once)."""
    csr = data.to_csr("ones")
    csr.data[:] = 1.0
    return csr


def observed_pairs(data) -> tuple[np.ndarray, np.ndarray]:
    """Observed (user, item) pairs, each once, sorted by user (then item): int64 arrays."""
    csr = data.to_csr("ones")
    user = np.repeat(np.arange(data.n_users), np.diff(csr.indptr))
    return user.astype(np.int64), csr.indices.astype(np.int64)


def item_popularity(data) -> np.ndarray:
    """Distinct users of each item, ``(n_items,)`` int64."""
    return np.bincount(observed_pairs(data)[1], minlength=data.n_items)
