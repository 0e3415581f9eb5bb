"""Seeded train/test splits. Every split returns ``(train, test)`` sharing the full data's id maps.

Used by: Chapter 1 (all four shown), Chapters 2–4 (:func:`stratified_item_split`, protocol I1), Chapters 5–7
(:func:`random_split`, protocol E1), Chapter 6 (:func:`probe_split`, Netflix), Chapter 9 (:func:`leave_k_out` by time and :func:`global_time_split`).
"""
from __future__ import annotations

import numpy as np

from .interactions import Interactions, _py

__all__ = ["random_split", "stratified_item_split", "leave_k_out", "global_time_split", "probe_split",
           "train_validation_split"]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_data(data) -> None:
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be mfkit.data.Interactions, got {type(data).__name__}")
    if len(data) < 2:
        raise ValueError(f"cannot split {len(data)} interaction(s) into two non-empty parts")


def _check_frac(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < float(value) < 1:
        raise ValueError(f"{what} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_int(value, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _non_empty(data: Interactions, train_mask: np.ndarray, what: str) -> tuple[Interactions, Interactions]:
    n_train = int(train_mask.sum())
    if n_train == 0 or n_train == len(data):
        empty = "train" if n_train == 0 else "test"
        raise ValueError(f"{what} leaves the {empty} part empty ({len(data):,} interactions: {n_train:,} train, "
                         f"{len(data) - n_train:,} test); expected two non-empty parts")
    return data.subset(train_mask), data.subset(~train_mask)


def random_split(data: Interactions, test_frac: float = 0.2, seed=0) -> tuple[Interactions, Interactions]:
    """Uniformly random split of the interaction rows (protocol E1: 80/20, seeds 0–4).

    The test part has exactly ``round(test_frac * len(data))`` rows; a ``test_frac`` that leaves either part empty
    raises ValueError.
    """
    _check_data(data)
    test_frac = _check_frac(test_frac, "test_frac")
    perm = _rng(seed).permutation(len(data))
    n_test = int(round(test_frac * len(data)))
    test = np.zeros(len(data), dtype=bool)
    test[perm[:n_test]] = True
    return _non_empty(data, ~test, f"test_frac={test_frac}")


def stratified_item_split(data: Interactions, train_frac: float = 0.75, seed=42) -> tuple[Interactions, Interactions]:
    """Per item, a random ``train_frac`` of its rows to train and the rest to test (protocol I1: 75%, seed 42).

    The train count of an item with ``n`` rows is ``round(train_frac * n)`` (Python's round: halves to even, as
    numpy's ``np.round``). A ``train_frac`` that leaves either part empty raises ValueError.
    """
    _check_data(data)
    train_frac = _check_frac(train_frac, "train_frac")
    rng = _rng(seed)
    # A random key per row, then a stable sort by (item, key) gives a random order within each item, vectorised.
    rank, counts = _rank_within(data.item, rng.random(len(data)), data.n_items)
    n_train = np.round(train_frac * counts).astype(np.int64)
    train = rank < n_train[data.item]
    return _non_empty(data, train, f"train_frac={train_frac} (per item: round(train_frac * rows of the item))")


def _rank_within(groups: np.ndarray, key: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's rank within its group when the group's rows are ordered by ``key`` (vectorised: one stable sort
    by (group, key)), and the size of every group."""
    order = np.lexsort((key, groups))
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(starts, counts)
    return rank, counts


def leave_k_out(data: Interactions, k: int = 1, seed=0, by_time: bool = False,
                min_train: int = 1) -> tuple[Interactions, Interactions]:
    """Hold out ``k`` interactions of every user who keeps at least ``min_train`` in train.

    With ``by_time=True`` the held-out ones are each user's latest (needs timestamps); otherwise random.
    Users with fewer than ``k + min_train`` interactions stay wholly in train. ``k`` (>= 1) and ``min_train``
    (>= 0) must be integers (a fractional ``k`` is refused, not rounded); when no user qualifies, ValueError.
    """
    _check_data(data)
    k = _check_int(k, "k", 1)
    min_train = _check_int(min_train, "min_train", 0)
    rng = _rng(seed)
    if by_time:
        if data.timestamp is None:
            raise ValueError("by_time=True needs timestamps")
        # Sort on the integer timestamps themselves (a float key loses digits beyond 2**53), ties broken at random:
        # the position of every row in (timestamp, random) order, negated so that the latest comes first.
        order = np.lexsort((rng.random(len(data)), data.timestamp.astype(np.int64)))
        key = np.empty(len(data), dtype=np.int64)
        key[order] = np.arange(len(data))
        key = -key  # latest first
    else:
        key = rng.random(len(data))
    rank, counts = _rank_within(data.user, key, data.n_users)
    eligible = counts >= k + min_train
    test = (rank < k) & eligible[data.user]
    if not test.any():
        raise ValueError(f"leave_k_out(k={k}, min_train={min_train}) holds nothing out: no user has "
                         f"k + min_train = {k + min_train} interactions (the most active has {int(counts.max())})")
    if test.all():
        raise ValueError(f"leave_k_out(k={k}, min_train={min_train}) holds every interaction out: the train part "
                         "would be empty (use min_train >= 1)")
    return data.subset(~test), data.subset(test)


def global_time_split(data: Interactions, train_frac: float | None = 0.8, cutoff=None, min_train: int = 1,
                      drop_new_items: bool = False) -> tuple[Interactions, Interactions]:
    """One cutoff time for everybody: train on every interaction before it, test on those at or after it.

    The *global temporal split* (Meng et al. 2020, "Exploring Data Splitting Strategies for the Evaluation of
    Recommendation Models", RecSys): unlike :func:`leave_k_out` with ``by_time=True``, which holds out each user's
    latest interactions but trains on other users' later ones, nothing after the cutoff is seen in training, so a
    model cannot learn, for example, which items *will* become popular.

    Parameters
    ----------
    data : Interactions
        Needs timestamps (whole numbers; compared as integers, never as floats).
    train_frac : float in (0, 1), optional
        Where the cutoff falls when ``cutoff`` is None: the timestamp of the row at position
        ``round(train_frac * len(data))`` in time order, so that about ``train_frac`` of the rows are before it
        (rows sharing the cutoff's timestamp all go to the test side).
    cutoff : int, optional
        The cutoff timestamp itself (then ``train_frac`` is ignored): train ``timestamp < cutoff``.
    min_train : int
        Test rows are kept only for users with at least ``min_train`` interactions before the cutoff (users seen
        before it); the after-cutoff rows of other users are in neither part.
    drop_new_items : bool
        Also drop test rows of items with no interaction before the cutoff (no model trained on the past can score
        them; keep them to measure that loss).

    Returns
    -------
    (train, test) sharing ``data``'s id maps. ValueError when there are no timestamps, when the cutoff leaves
    either part empty, or when no user seen before the cutoff interacts after it.

    Used by: Chapter 9 (pitfall 1), ``benchmarks/ranking_ml100k.py``.
    """
    _check_data(data)
    if data.timestamp is None:
        raise ValueError("global_time_split needs timestamps (data.timestamp is None)")
    min_train = _check_int(min_train, "min_train", 1)
    ts = data.timestamp.astype(np.int64)
    if cutoff is None:
        if train_frac is None:
            raise ValueError("give train_frac or cutoff")
        train_frac = _check_frac(train_frac, "train_frac")
        position = min(max(int(round(train_frac * len(data))), 1), len(data) - 1)
        cutoff = int(np.sort(ts, kind="stable")[position])
    else:
        if isinstance(cutoff, (bool, float, np.floating)) or not isinstance(cutoff, (int, np.integer)):
            raise ValueError(f"cutoff must be a whole-number timestamp, got {cutoff!r}")
        cutoff = int(cutoff)
    before = ts < cutoff
    if not before.any() or before.all():
        empty = "train" if not before.any() else "test"
        raise ValueError(f"cutoff {cutoff} leaves the {empty} part empty: the timestamps run from {int(ts.min())} to "
                         f"{int(ts.max())}")
    seen = np.bincount(data.user[before], minlength=data.n_users) >= min_train
    test = ~before & seen[data.user]
    if drop_new_items:
        test &= np.bincount(data.item[before], minlength=data.n_items)[data.item] > 0
    if not test.any():
        raise ValueError(f"no user with min_train={min_train} interaction(s) before the cutoff {cutoff} interacts "
                         f"after it: the test part would be empty (lower min_train or move the cutoff)")
    return data.subset(before), data.subset(test)


def probe_split(data: Interactions, probe_users, probe_items) -> tuple[Interactions, Interactions]:
    """Netflix-style hold-out: rows whose raw (user, item) pair is in the probe list go to test.

    ``probe_users``/``probe_items`` are raw ids (as read from ``probe.txt``). Every probe pair must be present in
    ``data``; a missing one raises ValueError (silently scoring fewer pairs would change the metric), and so does
    a pair listed twice or an empty list.
    """
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be mfkit.data.Interactions, got {type(data).__name__}")
    probe_users, probe_items = np.asarray(probe_users), np.asarray(probe_items)
    if probe_users.ndim != 1 or probe_users.shape != probe_items.shape:
        raise ValueError(f"probe_users and probe_items must be 1-D and of one length, got shapes "
                         f"{probe_users.shape} and {probe_items.shape}")
    if len(probe_users) == 0:
        raise ValueError("the probe list is empty: expected at least one (user, item) pair")
    pu = data.user_index(probe_users)
    pi = data.item_index(probe_items)
    n_items = np.int64(data.n_items)
    probe_key, first, counts = np.unique(pu * n_items + pi, return_index=True, return_counts=True)
    if (counts > 1).any():
        j = int(np.flatnonzero(counts > 1)[0])
        i = int(first[j])
        raise ValueError(f"the probe list holds the pair (user {_py(probe_users[i])!r}, item {_py(probe_items[i])!r}) "
                         f"{int(counts[j])} times: expected each pair once")
    row_key = data.user.astype(np.int64) * n_items + data.item
    test = np.isin(row_key, probe_key)
    found = np.unique(row_key[test])
    if len(found) != len(probe_key):
        missing = np.setdiff1d(probe_key, found)[:3]
        pairs = [(_py(data.user_ids[m // n_items]), _py(data.item_ids[m % n_items])) for m in missing]
        raise ValueError(f"{len(probe_key) - len(found)} probe pair(s) are not in the ratings, e.g. (user, item) "
                         f"{pairs}")
    if test.all():
        raise ValueError("every rating is a probe pair: the train part would be empty")
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
