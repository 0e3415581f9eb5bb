"""Scaling up (Chapter 8): timing and memory per stage, the probe split without copies, the noise floor of a
generated data set, top-k for every user in batches, and user slices.

What "peak memory" means here: the peak resident set size (RSS, the physical memory the process holds) while a
stage runs. On Linux :class:`StageTimer` resets the kernel's high-water mark (``VmHWM``) at the start of each stage
by writing ``5`` to ``/proc/self/clear_refs`` and reads ``VmHWM`` from ``/proc/self/status`` at its end, so each
stage reports its own peak (which includes whatever earlier stages left in memory). Where that reset is not
possible the figure is the process's peak so far (``resource.getrusage``'s ``ru_maxrss``), an upper bound; the
record's ``peak_is_stage`` says which. GPU memory is not included. (Resetting the mark also resets what the
kernel reports as the process's lifetime peak, so ``/usr/bin/time -v`` around a timed script shows only the peak
since the last stage started.)

Used by: Chapter 8 and ``benchmarks/netflix_full.py``.
"""
from __future__ import annotations

import contextlib
import resource
import sys
import time

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtr

from .data.interactions import Interactions
from .serving import top_k_exact
from .observed import seen_csr
from .topk import top_k_vectors
from .utils import get_device

__all__ = ["StageTimer", "peak_rss_bytes", "current_rss_bytes", "reset_peak_rss", "train_without_probe",
           "expected_rating", "noise_floor_rmse", "planted_rmse", "top_k_all_users", "user_slice", "dense_matrix_bytes"]


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss_bytes() -> int:
    """The resident set size now (bytes); the peak so far where ``/proc`` is missing."""
    v = _status_bytes("VmRSS")
    return peak_rss_bytes() if v is None else v


def peak_rss_bytes() -> int:
    """The high-water resident set size (bytes): ``VmHWM`` since the last :func:`reset_peak_rss`, else the
    process's lifetime peak (``ru_maxrss``: kilobytes on Linux, bytes on macOS)."""
    v = _status_bytes("VmHWM")
    if v is not None:
        return v
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark to the current RSS (Linux ``clear_refs``); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class StageTimer:
    """Wall time and peak resident memory per named stage (see the module docstring for "peak").

    Example::

        timer = StageTimer()
        with timer.stage("parse"):
            data = load_netflix(folder)
        timer.table()        # stage, seconds, peak_rss_gb, rss_gb, peak_is_stage

    ``device``: a CUDA device is synchronised before each stage's clock stops.
    """

    def __init__(self, device=None):
        self.device = device
        self.stages: list[dict] = []

    @contextlib.contextmanager
    def stage(self, name: str):
        if any(s["stage"] == name for s in self.stages):
            raise ValueError(f"stage {name!r} was already timed")
        exact = reset_peak_rss()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dev = None if self.device is None else torch.device(self.device)
            if dev is not None and dev.type == "cuda":
                torch.cuda.synchronize(dev)
            self.stages.append({"stage": name, "seconds": time.perf_counter() - t0,
                                "peak_rss_gb": peak_rss_bytes() / 1e9, "rss_gb": current_rss_bytes() / 1e9,
                                "peak_is_stage": exact})

    def table(self) -> pd.DataFrame:
        """One row per stage, in the order they ran."""
        return pd.DataFrame(self.stages, columns=["stage", "seconds", "peak_rss_gb", "rss_gb", "peak_is_stage"])

    def total_seconds(self, exclude=()) -> float:
        return float(sum(s["seconds"] for s in self.stages if s["stage"] not in set(exclude)))

    def peak_rss_gb(self, exclude=()) -> float:
        return float(max((s["peak_rss_gb"] for s in self.stages if s["stage"] not in set(exclude)), default=0.0))


def dense_matrix_bytes(n_users: int, n_items: int, itemsize: int = 8) -> int:
    """Bytes of a dense ``users × items`` matrix (what the seed notebook built): ``n_users * n_items * itemsize``."""
    return int(n_users) * int(n_items) * int(itemsize)


def train_without_probe(data: Interactions, probe_users, probe_items, keep_timestamp: bool = False,
                        block: int = 1 << 23) -> tuple[Interactions, Interactions]:
    """The probe split of :func:`mfkit.data.probe_split` for 100M ratings, with small temporaries.

    Each rating's (user, item) key is looked up in the sorted probe keys block by block (``block`` ratings at a
    time: two 8-byte temporaries of that size) instead of an ``isin`` over all keys at once; the only full-size
    temporary is a one-byte mask. Timestamps are dropped unless ``keep_timestamp`` (the models do not use them).

    Raises ValueError for an empty probe list, a pair listed twice, or a probe pair not in ``data``.

    Used by: Chapter 8, ``benchmarks/netflix_full.py``.
    """
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be mfkit.data.Interactions, got {type(data).__name__}")
    pu, pi = data.user_index(np.asarray(probe_users)), data.item_index(np.asarray(probe_items))
    if len(pu) == 0:
        raise ValueError("the probe list is empty: expected at least one (user, item) pair")
    # item-major keys: Netflix files come sorted by movie, so the lookups below walk the probe keys in order
    n_users = np.int64(data.n_users)
    probe_key = np.sort(pi.astype(np.int64) * n_users + pu)
    if (probe_key[1:] == probe_key[:-1]).any():
        j = int(np.flatnonzero(probe_key[1:] == probe_key[:-1])[0])
        raise ValueError(f"the probe list holds the pair (user {data.user_ids[probe_key[j] % n_users]!r}, item "
                         f"{data.item_ids[probe_key[j] // n_users]!r}) more than once: expected each pair once")
    test = np.empty(len(data), dtype=bool)
    for s in range(0, len(data), block):
        key = data.item[s:s + block].astype(np.int64) * n_users + data.user[s:s + block]
        pos = np.minimum(np.searchsorted(probe_key, key), len(probe_key) - 1)
        test[s:s + block] = probe_key[pos] == key
    n_test = int(np.count_nonzero(test))
    if n_test != len(probe_key):
        raise ValueError(f"{len(probe_key) - n_test} probe pair(s) are not in the ratings (or a rating is listed "
                         "twice): every probe pair must be one rating")
    if n_test == len(data):
        raise ValueError("every rating is a probe pair: the train part would be empty")
    ts = data.timestamp if keep_timestamp else None

    def part(mask):
        return Interactions._trusted(data.user[mask], data.item[mask],
                                     None if data.rating is None else data.rating[mask], data.user_ids,
                                     data.item_ids, None if ts is None else ts[mask], data.items, data.name)

    test_part = part(test)
    np.logical_not(test, out=test)
    return part(test), test_part


def _truth_mean(truth, users, movies) -> np.ndarray:
    return np.asarray(truth.predict(np.asarray(users), np.asarray(movies)), dtype=np.float64)


def _rating_moments(m: np.ndarray, sigma: float, low: int = 1, high: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """E[r] and Var[r] of ``r = clip(round(m + e), low, high)``, ``e ~ N(0, sigma^2)``, exactly."""
    levels = np.arange(low, high + 1, dtype=np.float64)
    cdf = ndtr((levels[:-1, None] + 0.5 - m[None, :]) / sigma)  # P(r <= level) for low..high-1
    cdf = np.vstack([cdf, np.ones((1, len(m)))])
    prob = np.diff(np.vstack([np.zeros((1, len(m))), cdf]), axis=0)
    mean = levels @ prob
    var = (levels ** 2) @ prob - mean ** 2
    return mean, np.maximum(var, 0.0)


def expected_rating(truth, users, movies) -> np.ndarray:
    """The best possible prediction :math:`E[r_{ui}]` under the planted model, for raw user and movie ids.

    The generator writes :math:`r = \\mathrm{clip}(\\mathrm{round}(m_{ui} + \\varepsilon), 1, 5)` with
    :math:`\\varepsilon \\sim N(0, \\sigma^2)`, so :math:`P(r = k)` is a difference of normal CDFs at
    :math:`k \\pm 1/2` (the end levels take the tails) and the mean follows exactly. ``truth`` is a
    :class:`mfkit.data.synthetic.NetflixModel` or :class:`~mfkit.data.synthetic.NetflixGroundTruth`.
    """
    return _rating_moments(_truth_mean(truth, users, movies), float(truth.noise_std))[0]


def noise_floor_rmse(truth, users, movies, ratings=None, block: int = 1 << 20) -> float:
    """The lowest floor: RMSE of the best possible predictor :math:`E[r_{ui}]` on the given pairs.

    No model can beat it in expectation (the conditional mean minimises the expected squared error). With
    ``ratings`` (the written probe ratings) it is the RMSE of :func:`expected_rating` against them, the floor
    realised on this probe; without, its expectation :math:`\\sqrt{\\overline{\\mathrm{Var}[r_{ui}]}}`, computed
    exactly from the Gaussian noise, the rounding and the clipping. The two differ by sampling noise only (about
    ``0.5 / sqrt(n_pairs)`` relative).

    Used by: Chapter 8, ``benchmarks/netflix_full.py``.
    """
    users, movies = np.asarray(users), np.asarray(movies)
    if users.shape != movies.shape or users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users and movies must be 1-D, non-empty and of one length, got shapes {users.shape} "
                         f"and {movies.shape}")
    if ratings is not None:
        ratings = np.asarray(ratings, dtype=np.float64)
        if ratings.shape != users.shape:
            raise ValueError(f"ratings must have one entry per pair ({len(users)}), got shape {ratings.shape}")
    total = 0.0
    for s in range(0, len(users), block):
        mean, var = _rating_moments(_truth_mean(truth, users[s:s + block], movies[s:s + block]),
                                    float(truth.noise_std))
        total += float(np.sum(var if ratings is None else (ratings[s:s + block] - mean) ** 2))
    return float(np.sqrt(total / len(users)))


def planted_rmse(truth, users, movies, ratings, clip=(1, 5), block: int = 1 << 20) -> float:
    """RMSE of the planted model's own predictions :math:`\\mu + b_u + b_i + p_u^\\top q_i` on the given pairs.

    The noise floor of Chapter 8 and of protocol N3: what the model that generated the ratings scores when it
    predicts them, clipped to the rating scale like every prediction in this book (``clip=None``: unclipped).
    The rounding and clipping of the written ratings move their mean away from the planted value, so the best
    possible predictor, :func:`expected_rating`, does a little better (:func:`noise_floor_rmse`).

    Used by: Chapter 8, ``benchmarks/netflix_full.py``.
    """
    users, movies = np.asarray(users), np.asarray(movies)
    ratings = np.asarray(ratings, dtype=np.float64)
    if users.shape != movies.shape or users.shape != ratings.shape or users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users, movies and ratings must be 1-D, non-empty and of one length, got shapes "
                         f"{users.shape}, {movies.shape} and {ratings.shape}")
    total = 0.0
    for s in range(0, len(users), block):
        pred = _truth_mean(truth, users[s:s + block], movies[s:s + block])
        if clip is not None:
            pred = np.clip(pred, *clip)
        total += float(np.sum((pred - ratings[s:s + block]) ** 2))
    return float(np.sqrt(total / len(users)))


def top_k_all_users(model, k: int = 10, batch_size: int | None = None, exclude: Interactions | None = None,
                    device=None, max_elements: int = 2 ** 26) -> np.ndarray:
    """The top-``k`` items (dense indices, best first) for every user of a fitted factor model, in batches.

    Without ``exclude`` this is :func:`mfkit.serving.top_k_exact` over all users. With ``exclude`` (the training
    interactions) each user's already-rated items are masked out: users are processed in batches of
    ``batch_size`` (default: as many as keep ``batch × n_items`` scores within ``max_elements``), each batch's rated
    items found from a CSR index of ``exclude`` built once. Memory: the scores of one batch plus that index.

    Returns an ``(n_users, k)`` int64 array. Users with fewer than ``k`` unrated items get ``-1`` in the slots left.

    Used by: Chapter 8, ``benchmarks/netflix_full.py``.
    """
    try:
        P, Q = model.user_vectors().float(), model.item_vectors().float()
    except NotImplementedError as err:
        raise ValueError(f"{type(model).__name__} has no user/item vectors: fit a factor model first") from err
    dev = get_device(device)
    if k < 1 or k > len(Q):
        raise ValueError(f"k must lie in 1..{len(Q)} (the number of items), got {k}")
    if exclude is None:
        return top_k_exact(P, Q, k=k, batch_size=batch_size, device=dev,
                           max_elements=max_elements)[1].cpu().numpy()
    if exclude.n_users != len(P) or exclude.n_items != len(Q):
        raise ValueError(f"exclude has {exclude.n_users} users and {exclude.n_items} items, the model "
                         f"{len(P)} and {len(Q)}")
    values, index = top_k_vectors(P.to(dev), Q.to(dev), k, seen_csr(exclude), batch_size, max_elements)
    out = index.cpu().numpy()
    out[torch.isneginf(values).cpu().numpy()] = -1
    return out


def user_slice(data: Interactions, frac: float = 0.01, seed=0, probe=None):
    """A random ``frac`` of the users with all their ratings (ids re-indexed densely), for a quick run.

    ``probe``: an optional DataFrame with ``user``/``movie`` columns (raw ids, as :func:`mfkit.data.read_probe`
    returns it); it is returned restricted to the kept users. Returns the slice, or ``(slice, probe_slice)``.

    Used by: Chapter 8 (the slice CI runs when ``$MFKIT_NETFLIX_DIR`` points at the real data).
    """
    if not 0 < frac <= 1:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    rng = np.random.default_rng(seed)
    keep_user = rng.random(data.n_users) < frac
    if not keep_user.any():
        keep_user[rng.integers(data.n_users)] = True
    rows = keep_user[data.user]
    items_used = np.zeros(data.n_items, dtype=bool)
    items_used[data.item[rows]] = True
    new_user = np.cumsum(keep_user) - 1
    new_item = np.cumsum(items_used) - 1
    items = data.items
    if items is not None:
        items = items.loc[items.index.isin(data.item_ids[items_used])] if hasattr(items, "index") else items
    sliced = Interactions._trusted(
        new_user[data.user[rows]].astype(np.int32), new_item[data.item[rows]].astype(np.int32),
        None if data.rating is None else data.rating[rows], data.user_ids[keep_user], data.item_ids[items_used],
        None if data.timestamp is None else data.timestamp[rows], items, data.name)
    if probe is None:
        return sliced
    kept_raw = data.user_ids[keep_user]
    return sliced, probe[np.isin(probe["user"].to_numpy(), kept_raw)].reset_index(drop=True)
