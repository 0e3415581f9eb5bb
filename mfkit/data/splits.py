"""Seeded train/test splits. Every split returns ``(train, test)`` sharing the full data's id maps.

Used by: Chapter 1 (all four shown), Chapters 2–4 (:func:`stratified_item_split`, protocol I1), Chapters 5–7
(:func:`random_split`, protocol E1), Chapter 6 (:func:`probe_split`, Netflix).
"""
from __future__ import annotations

import numpy as np

from .interactions import Interactions

__all__ = ["random_split", "stratified_item_split", "leave_k_out", "probe_split", "train_validation_split"]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_split(data: Interactions, test_frac: float = 0.2, seed=0) -> tuple[Interactions, Interactions]:
    """Uniformly random split of the interaction rows (protocol E1: 80/20, seeds 0–4).

    The test part has exactly ``round(test_frac * len(data))`` rows.
    """
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    perm = _rng(seed).permutation(len(data))
    n_test = int(round(test_frac * len(data)))
    test = np.zeros(len(data), dtype=bool)
    test[perm[:n_test]] = True
    return data.subset(~test), data.subset(test)


def stratified_item_split(data: Interactions, train_frac: float = 0.75, seed=42) -> tuple[Interactions, Interactions]:
    """Per item, a random ``train_frac`` of its rows to train and the rest to test (protocol I1: 75%, seed 42).

    The train count of an item with ``n`` rows is ``round(train_frac * n)`` (Python's round: halves to even, as
    numpy's ``np.round``).
    """
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    rng = _rng(seed)
    # A random key per row, then a stable sort by (item, key) gives a random order within each item, vectorised.
    key = rng.random(len(data))
    order = np.lexsort((key, data.item))
    counts = np.bincount(data.item, minlength=data.n_items)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(data), dtype=np.int64)
    rank[order] = np.arange(len(data)) - np.repeat(starts, counts)
    n_train = np.round(train_frac * counts).astype(np.int64)
    train = rank < n_train[data.item]
    return data.subset(train), data.subset(~train)


def leave_k_out(data: Interactions, k: int = 1, seed=0, by_time: bool = False,
                min_train: int = 1) -> tuple[Interactions, Interactions]:
    """Hold out ``k`` interactions of every user who keeps at least ``min_train`` in train.

    With ``by_time=True`` the held-out ones are each user's latest (needs timestamps); otherwise random.
    Users with fewer than ``k + min_train`` interactions stay wholly in train.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = _rng(seed)
    if by_time:
        if data.timestamp is None:
            raise ValueError("by_time=True needs timestamps")
        key = data.timestamp.astype(np.float64) + rng.random(len(data)) * 1e-3  # random tie-break
        key = -key  # latest first
    else:
        key = rng.random(len(data))
    order = np.lexsort((key, data.user))
    counts = np.bincount(data.user, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(data), dtype=np.int64)
    rank[order] = np.arange(len(data)) - np.repeat(starts, counts)
    eligible = counts >= k + min_train
    test = (rank < k) & eligible[data.user]
    return data.subset(~test), data.subset(test)


def probe_split(data: Interactions, probe_users, probe_items) -> tuple[Interactions, Interactions]:
    """Netflix-style hold-out: rows whose raw (user, item) pair is in the probe list go to test.

    ``probe_users``/``probe_items`` are raw ids (as read from ``probe.txt``). Every probe pair must be present in
    ``data``; a missing one raises ValueError (silently scoring fewer pairs would change the metric).
    """
    pu = data.user_index(probe_users)
    pi = data.item_index(probe_items)
    n_items = np.int64(data.n_items)
    probe_key = np.unique(pu * n_items + pi)
    row_key = data.user.astype(np.int64) * n_items + data.item
    test = np.isin(row_key, probe_key)
    found = np.unique(row_key[test])
    if len(found) != len(probe_key):
        raise ValueError(f"{len(probe_key) - len(found)} probe pair(s) are not in the ratings")
    return data.subset(~test), data.subset(test)


def train_validation_split(train: Interactions, protocol: str, seed=0) -> tuple[Interactions, Interactions]:
    """Carve a validation part out of a training part with the same protocol as the test split.

    Hyperparameters are chosen on this, never on the test part. ``protocol`` is ``"E1"`` (random 80/20 of the rows)
    or ``"I1"`` (stratified by item, 75/25).
    """
    if protocol == "E1":
        return random_split(train, 0.2, seed)
    if protocol == "I1":
        return stratified_item_split(train, 0.75, seed)
    raise ValueError(f"protocol must be 'E1' or 'I1', got {protocol!r}")
