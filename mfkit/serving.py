"""From a trained model to recommendations: new users without retraining, new items from side information, and
fast top-k retrieval over large catalogues.

* **Fold-in** (:func:`fold_in`, :func:`fold_in_users`, :func:`recommend_new_user`): the vector of a user who was
  not in the training data, computed from their interactions against the trained, fixed item factors. For weighted
  MF (:class:`mfkit.implicit.WeightedMF`, squared loss) it is exactly one ALS user step, the closed-form solution
  of Hu, Koren & Volinsky (2008); for rating models with biases (:class:`mfkit.explicit.BiasedMF`) the ridge
  regression of the user's ratings on ``[1, q_i]``, the ALS step of that model. Where no closed form exists
  (weighted MF with a sigmoid or logistic loss, Bayesian MF) a few gradient steps on the model's own loss.
* **Cold-start items** (:func:`movielens_item_features`, :class:`ItemFeatureRegression`,
  :func:`cold_start_item_factors`): a ridge regression from item side information (MovieLens genres and year) to
  the trained item factors, which gives an item nobody has rated yet a vector.
* **Top-k retrieval** (:func:`top_k_exact`, :class:`ANNIndex`, :func:`mips_augment`, :func:`retrieval_recall`):
  exact top-k by batched matrix products on the device, and an approximate index (faiss' HNSW graph; Malkov &
  Yashunin 2018, Johnson, Douze & Jégou 2019) for maximum inner product search, by the extra-dimension transform of
  Bachrach et al. (2014) that turns the largest inner product into the nearest Euclidean neighbour.
* **Held-out users** (:func:`new_user_split`, :func:`first_interactions`): the user-based split of the chapter.

The ANN index needs faiss: ``pip install "mfkit[serving]"`` (``faiss-cpu``; the book's ``requirements.txt`` has it).

Used by: Chapter 10 ("From model to recommendations") and ``benchmarks/serving.py``.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .base import RatingMixin, Recommender, _raw_to_index, check_float, check_int
from .data import Interactions
from .observed import item_popularity
from .topk import top_k_vectors

__all__ = ["FoldIn", "fold_in_users", "fold_in", "score_fold_in", "recommend_new_user", "popularity_scores",
           "new_user_split", "first_interactions", "movielens_item_features", "ItemFeatureRegression",
           "cold_start_item_factors", "top_k_exact", "mips_augment", "ANNIndex", "catalogue_like", "retrieval_recall"]

NEW_USER_COLUMNS = ("item_id", "title", "score", "rank")
"""Columns of :func:`recommend_new_user`."""


# ---------------------------------------------------------------------------------------------------------------------
# Fold-in
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class FoldIn:
    """Folded-in users: what a model needs to score them.

    Attributes
    ----------
    factors : (n_users, k) tensor
        The users' vectors, on the model's device.
    bias : (n_users,) tensor or None
        User biases (rating models), ``None`` for weighted MF.
    method : str
        ``"closed form"`` or ``"gradient"``.
    """

    factors: torch.Tensor
    bias: torch.Tensor | None
    method: str


def _check_foldable(model) -> None:
    if not isinstance(model, Recommender):
        raise TypeError(f"fold-in needs a fitted mfkit model, got {type(model).__name__}")
    model._check_fitted()


@dataclass
class _Histories:
    """Validated histories, flat: ``item[j]`` belongs to user ``owner[j]`` (sorted by owner), ``rating`` or None."""

    item: np.ndarray
    owner: np.ndarray
    counts: np.ndarray
    rating: np.ndarray | None

    def __len__(self) -> int:
        return len(self.counts)

    def padded(self, n_items: int, device):
        """``(n, width)`` item indices padded with ``n_items`` (an extra all-zero item row), the ratings padded
        with 0, and each user's count, as tensors on ``device``."""
        width = max(1, int(self.counts.max()) if len(self.counts) else 1)
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]) if len(self.counts) else np.zeros(0, np.int64)
        pos = np.arange(len(self.item)) - starts[self.owner]
        idx = np.full((len(self), width), n_items, dtype=np.int64)
        idx[self.owner, pos] = self.item
        val = np.zeros((len(self), width), dtype=np.float64)
        if self.rating is not None:
            val[self.owner, pos] = self.rating
        return (torch.from_numpy(idx).to(device), torch.from_numpy(val).to(device),
                torch.from_numpy(self.counts).to(device))


def _check_histories(model, histories, ratings) -> _Histories:
    """Validated histories (implicit: each item once per user; rated: a repeated item is refused)."""
    n_items = model.train_.n_items
    if ratings is not None and len(ratings) != len(histories):
        raise ValueError(f"ratings must hold one array per user: {len(ratings)} for {len(histories)} users")
    arrays = [np.asarray(h).reshape(-1) for h in histories]
    lengths = np.array([len(h) for h in arrays], dtype=np.int64)
    flat = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    if flat.size and flat.dtype.kind not in "iu":
        raise ValueError(f"histories must hold dense item indices (integers), got dtype {flat.dtype}")
    flat = flat.astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n_items):
        bad = int(flat[(flat < 0) | (flat >= n_items)][0])
        raise ValueError(f"item index {bad} is outside [0, {n_items}) (histories hold dense item indices)")
    owner = np.repeat(np.arange(len(arrays)), lengths)
    order = np.lexsort((flat, owner))
    repeated = np.zeros(len(flat), dtype=bool)
    repeated[1:] = (owner[order][1:] == owner[order][:-1]) & (flat[order][1:] == flat[order][:-1])
    if ratings is None:  # implicit: each item once
        keep = order[~repeated]
        return _Histories(flat[keep], owner[keep], np.bincount(owner[keep], minlength=len(arrays)), None)
    if repeated.any():
        j = int(owner[order][np.argmax(repeated)])
        raise ValueError(f"user {j}: an item appears twice in the history; give each rated item once")
    rated = [np.asarray(r, dtype=np.float64).reshape(-1) for r in ratings]
    for j, (h, r) in enumerate(zip(arrays, rated)):
        if r.shape != h.shape:
            raise ValueError(f"user {j}: {len(h)} items but {len(r)} ratings")
    rating = np.concatenate(rated) if rated else np.zeros(0)
    if not np.isfinite(rating).all():
        bad = int(owner[np.argmax(~np.isfinite(rating))])
        raise ValueError(f"user {bad}: ratings must be finite numbers")
    return _Histories(flat, owner, lengths, rating)


def _gradient(model, histories: _Histories, n_steps: int, lr: float, reg: float | None) -> FoldIn:
    """A few Adam steps on the model's own loss (:meth:`~mfkit.base.Recommender.fold_in_loss`), the items fixed."""
    V = model.item_factors_.detach().float()
    n, (n_items, k), dev = len(histories), V.shape, V.device
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(n, k, generator=gen) * 0.01).to(dev).requires_grad_(True)
    counts = torch.from_numpy(histories.counts).to(dev)
    rows = torch.from_numpy(histories.owner).to(dev)
    cols = torch.from_numpy(histories.item).to(dev)
    rated = histories.rating is not None
    bias = torch.zeros(n, device=dev, requires_grad=True) if rated else None
    rating = torch.from_numpy(histories.rating).float().to(dev) if rated else None
    params = [x] + ([bias] if rated else [])
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(n_steps):
        opt.zero_grad()
        model.fold_in_loss(x, bias, rows, cols, counts, rating, reg).backward()
        opt.step()
    with torch.no_grad():
        x[counts == 0] = 0.0
        bias = None if bias is None else bias.detach().masked_fill(counts == 0, 0.0)
    dt = model.item_factors_.dtype
    return FoldIn(x.detach().to(dt), None if bias is None else bias.to(dt), "gradient")


def fold_in_users(model, histories, ratings=None, method: str = "auto", n_steps: int = 100, lr: float = 0.05,
                  reg: float | None = None) -> FoldIn:
    """Vectors for users who were not in the training data, from their interactions, the items held fixed.

    Parameters
    ----------
    model : fitted WeightedMF or rating model (BiasedMF, BayesianMF...)
    histories : sequence of arrays of dense item indices
        One array per new user (the model's item index space, ``model.train_.item_index(raw_ids)``).
    ratings : sequence of arrays, optional
        One rating per history entry; rating models need them, weighted MF ignores them.
    method : {"auto", "closed form", "gradient"}
        ``"auto"``: the closed form where the model has one (weighted MF with the squared loss: the ALS user step of
        Hu et al. 2008, with the model's ``reg`` and ``reg_scaling``; BiasedMF: its ALS user step), otherwise
        ``n_steps`` Adam steps of size ``lr`` on the model's loss.
    reg : float, optional
        Replaces the model's ``reg`` (``λ``; the factor penalty of BiasedMF) in the fold-in only; default: the
        model's ``reg``, or 0.05 for a model without one.

    Returns
    -------
    FoldIn
        ``factors`` ``(n, k)`` and ``bias`` (rating models) on the model's device. A user with an empty history
        gets zeros (scores fall back to the item terms; :func:`recommend_new_user` uses popularity instead).

    Used by: Chapter 10, ``benchmarks/serving.py``.
    """
    _check_foldable(model)
    if method not in ("auto", "closed form", "gradient"):
        raise ValueError(f"method must be 'auto', 'closed form' or 'gradient', got {method!r}")
    n_steps, lr = check_int("n_steps", n_steps, 1), check_float("lr", lr, strict=True)
    rated = model.requires_ratings
    if rated and ratings is None:
        raise ValueError(f"{type(model).__name__} predicts ratings: fold-in needs the new users' ratings")
    histories = _check_histories(model, histories, ratings if rated else None)
    if method != "gradient":
        try:
            with torch.no_grad():
                x, bias = model.fold_in(histories.item, histories.owner, len(histories), histories.rating, reg=reg)
            return FoldIn(x, bias, "closed form")
        except NotImplementedError:
            if method == "closed form":
                raise ValueError(f"{type(model).__name__} has no closed-form fold-in here; use method='gradient'")
    try:
        return _gradient(model, histories, n_steps, lr, reg)
    except NotImplementedError:
        raise TypeError(f"{type(model).__name__} implements neither fold_in nor fold_in_loss: its users are not "
                        "a vector against fixed item factors") from None


def score_fold_in(model, folded: FoldIn) -> torch.Tensor:
    """Scores of every item for folded-in users: ``(n_users, n_items)``, on the model's scale (``σ(x·v)`` for
    weighted MF with a sigmoid or logistic loss, predicted ratings for rating models):
    :meth:`~mfkit.base.Recommender.score_folded`."""
    return model.score_folded(folded.factors, folded.bias)


def _item_indices(model, item_ids) -> np.ndarray:
    raw = np.asarray(list(item_ids) if not isinstance(item_ids, np.ndarray) else item_ids).reshape(-1)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    idx = _raw_to_index(raw, model.train_.item_ids)
    if (idx < 0).any():
        unknown = list(dict.fromkeys(raw[idx < 0].tolist()))
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise KeyError(f"{len(unknown)} item id(s) unknown to the model: {shown} (new items need a vector first: "
                       "see cold_start_item_factors)")
    return idx


def fold_in(model, item_ids, ratings=None, **kwargs) -> FoldIn:
    """:func:`fold_in_users` for one new user given by raw item ids (``KeyError`` naming unknown ids)."""
    _check_foldable(model)
    idx = _item_indices(model, item_ids)
    return fold_in_users(model, [idx], None if ratings is None else [np.asarray(ratings)], **kwargs)


def popularity_scores(model) -> torch.Tensor:
    """Distinct training users of each item (the popularity baseline), on the model's device."""
    return torch.from_numpy(item_popularity(model.train_).astype(np.float32)).to(model.device_)


def recommend_new_user(model, item_ids, ratings=None, k: int = 10, exclude_seen: bool = True,
                       **kwargs) -> pd.DataFrame:
    """Top-``k`` items for a user who was not in the training data, from their raw item ids (and ratings).

    The user is folded in (:func:`fold_in`) and scored against every item, without retraining. An empty history
    falls back to the most popular items of the training data, with a warning that says so.

    Returns
    -------
    pandas.DataFrame
        Columns ``item_id``, ``title``, ``score``, ``rank`` (1 = best).

    Raises
    ------
    KeyError
        Item ids the model does not know (named in the message).
    ValueError
        ``k < 1`` or more than the items left to recommend; a rating model without ``ratings``.

    Used by: Chapter 10.
    """
    _check_foldable(model)
    k = check_int("k", k, 1)
    idx = _item_indices(model, item_ids)
    if len(idx) == 0:
        warnings.warn("recommend_new_user: the history is empty, so there is nothing to fold in; falling back to "
                      "popularity (the items with the most training interactions)", UserWarning, stacklevel=2)
        scores = popularity_scores(model)
    else:
        folded = fold_in_users(model, [idx], None if ratings is None else [np.asarray(ratings)], **kwargs)
        scores = score_fold_in(model, folded)[0].float().clone()
    if exclude_seen and len(idx):
        scores[torch.from_numpy(idx).to(scores.device)] = -torch.inf
    available = int(torch.isfinite(scores).sum())
    if k > available:
        raise ValueError(f"k={k} is more than the {available} items left to recommend")
    top = torch.topk(scores, k)
    items = top.indices.cpu().numpy()
    return pd.DataFrame({"item_id": model.train_.item_ids[items], "title": model.train_.item_titles(items),
                         "score": top.values.cpu().numpy(), "rank": np.arange(1, k + 1)},
                        columns=list(NEW_USER_COLUMNS))


# ---------------------------------------------------------------------------------------------------------------------
# Held-out users
# ---------------------------------------------------------------------------------------------------------------------
def new_user_split(data: Interactions, test_frac: float = 0.2, seed=0,
                   min_interactions: int = 1) -> tuple[Interactions, Interactions]:
    """Split by user: a random ``test_frac`` of the users with at least ``min_interactions`` rows go, with all their
    rows, to the second part (users the model never sees); everyone else to the first. Both keep ``data``'s id maps.

    Used by: Chapter 10 (fold-in of held-out users), ``benchmarks/serving.py``.
    """
    test_frac = check_float("test_frac", test_frac, 0.0, strict=True)
    if test_frac >= 1:
        raise ValueError(f"test_frac must be < 1, got {test_frac}")
    counts = np.bincount(data.user, minlength=data.n_users)
    eligible = np.flatnonzero(counts >= check_int("min_interactions", min_interactions, 1))
    rng = np.random.default_rng(seed)
    n_new = int(round(test_frac * len(eligible)))
    if n_new == 0 or n_new == data.n_users:
        raise ValueError(f"test_frac={test_frac} of {len(eligible)} eligible users leaves one part empty")
    held = np.zeros(data.n_users, dtype=bool)
    held[rng.choice(eligible, n_new, replace=False)] = True
    mask = held[data.user]
    return data.subset(~mask), data.subset(mask)


def first_interactions(data: Interactions, n: int, skip: int | None = None, order: str = "random",
                       seed=0) -> tuple[Interactions, Interactions]:
    """Each user's first ``n`` rows and the rows after the first ``skip`` (default ``n``): with a fixed ``skip``,
    every ``n <= skip`` is scored on the same later rows.

    ``order="random"``: "first" in an order drawn at random with ``seed`` (the strong-generalization protocol of
    Marlin 2004 and Liang et al. 2018); ``order="time"``: by timestamp, ties by position.

    Used by: Chapter 10.
    """
    n = check_int("n", n, 0)
    skip = n if skip is None else check_int("skip", skip, 0)
    if n > skip:
        raise ValueError(f"n={n} must be <= skip={skip}, or history and future would overlap")
    if order not in ("random", "time"):
        raise ValueError(f"order must be 'random' or 'time', got {order!r}")
    if order == "random":
        time_key = np.random.default_rng(seed).permutation(len(data))
    elif data.timestamp is not None:
        time_key = data.timestamp
    else:
        raise ValueError("order='time' needs timestamps; these interactions have none")
    order = np.lexsort((np.arange(len(data)), time_key, data.user))
    user_sorted = data.user[order]
    starts = np.searchsorted(user_sorted, user_sorted, side="left")
    position = np.empty(len(data), dtype=np.int64)
    position[order] = np.arange(len(data)) - starts
    return data.subset(position < n), data.subset(position >= skip)


# ---------------------------------------------------------------------------------------------------------------------
# Cold-start items from side information
# ---------------------------------------------------------------------------------------------------------------------
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
"""The 19 genre flags of ML-100k's ``u.item``, in file order."""


def _read_genres(folder: Path) -> pd.DataFrame:
    if (folder / "u.item").exists():
        raw = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")
        if raw.shape[1] != 24:
            raise ValueError(f"{folder / 'u.item'}: expected 24 '|'-separated fields, got {raw.shape[1]}")
        flags = raw.iloc[:, 5:].to_numpy(np.float32)
        return pd.DataFrame(flags, index=raw[0].astype(np.int64).to_numpy(), columns=list(ML100K_GENRES))
    path = folder / "ml-100k.item"
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds neither u.item nor ml-100k.item (the genres of ML-100k)")
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    genres = raw.iloc[:, 3].str.split(" ")
    flags = np.array([[g in set(row) for g in ML100K_GENRES] for row in genres], dtype=np.float32)
    return pd.DataFrame(flags, index=raw.iloc[:, 0].astype(np.int64).to_numpy(), columns=list(ML100K_GENRES))


def movielens_item_features(data: Interactions, path=None) -> pd.DataFrame:
    """Side information of ML-100k's movies, one row per item of ``data`` (in its dense order): the 19 genre flags
    of ``u.item``, the release year centred and scaled (``(year - 1990) / 10``; a missing year gets the mean) and
    a flag for a missing year.

    ``path``: the ML-100k folder (GroupLens or RecBole layout); default as :func:`mfkit.data.load_movielens_100k`
    (``$MFKIT_ML100K_DIR``, then the cache). The genres are read here because the loader keeps only titles and years.

    Used by: Chapter 10 (cold-start items).
    """
    from .data import fetch_movielens_100k

    if path is None:
        path = os.environ.get("MFKIT_ML100K_DIR") or fetch_movielens_100k()
    genres = _read_genres(Path(path))
    missing = np.setdiff1d(data.item_ids, genres.index.to_numpy())
    if len(missing):
        raise KeyError(f"{len(missing)} item id(s) of the data have no genres in {path}, e.g. {missing[:5].tolist()}")
    out = genres.loc[data.item_ids].reset_index(drop=True)
    if data.items is not None and "year" in data.items:
        year = pd.to_numeric(data.items["year"].reindex(data.item_ids), errors="coerce").to_numpy(np.float64)
    else:
        year = np.full(data.n_items, np.nan)
    unknown = np.isnan(year)
    fill = np.nanmean(year) if (~unknown).any() else 1990.0
    out["year"] = ((np.where(unknown, fill, year) - 1990.0) / 10.0).astype(np.float32)
    out["year unknown"] = unknown.astype(np.float32)
    out.index = pd.Index(data.item_ids, name="item")
    return out


class ItemFeatureRegression:
    """Ridge regression from item features to item vectors: ``T ≈ [F, 1] W``, the intercept not penalised.

    Parameters
    ----------
    alpha : float
        Ridge penalty on the feature weights.

    Attributes
    ----------
    weights_ : (n_features, d) array
    intercept_ : (d,) array

    Used by: Chapter 10 (cold-start items), through :func:`cold_start_item_factors`.
    """

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_float("alpha", alpha)

    def fit(self, features, targets) -> "ItemFeatureRegression":
        F = np.asarray(features, dtype=np.float64)
        T = np.asarray(targets, dtype=np.float64)
        if F.ndim != 2 or T.ndim != 2 or len(F) != len(T) or len(F) == 0:
            raise ValueError(f"features and targets must be 2-D with one row per item, got {F.shape} and {T.shape}")
        if not (np.isfinite(F).all() and np.isfinite(T).all()):
            raise ValueError("features and targets must be finite")
        f_mean, t_mean = F.mean(0), T.mean(0)
        Fc = F - f_mean
        A = Fc.T @ Fc + self.alpha * np.eye(F.shape[1])
        self.weights_ = np.linalg.lstsq(A, Fc.T @ (T - t_mean), rcond=None)[0]
        self.intercept_ = t_mean - f_mean @ self.weights_
        return self

    def predict(self, features) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise RuntimeError("ItemFeatureRegression is not fitted yet: call fit(features, targets) first")
        F = np.asarray(features, dtype=np.float64)
        if F.ndim != 2 or F.shape[1] != self.weights_.shape[0]:
            raise ValueError(f"features must have {self.weights_.shape[0]} columns, got shape {F.shape}")
        return F @ self.weights_ + self.intercept_


def cold_start_item_factors(model, features, new_items, alpha: float = 1.0, known_items=None):
    """Item vectors (and biases, for rating models) for items without training interactions, from their features.

    A ridge regression (:class:`ItemFeatureRegression`) is fitted from the features of the items the model knows
    (``known_items``, default: every item with a training interaction) to their trained vectors (``[b_i, q_i]`` for
    rating models), then applied to ``new_items``.

    Parameters
    ----------
    model : fitted model with ``item_factors_`` (WeightedMF, BiasedMF...)
    features : (n_items, f) array or DataFrame, in the model's dense item order (:func:`movielens_item_features`)
    new_items : array of dense item indices

    Returns
    -------
    (item_factors, item_bias)
        Copies of the model's ``item_factors_`` and ``item_bias_`` (``None`` for weighted MF) whose ``new_items``
        rows hold the predicted values.

    Used by: Chapter 10.
    """
    model._check_fitted()
    F = np.asarray(features, dtype=np.float64)
    n_items = model.train_.n_items
    if F.shape[0] != n_items:
        raise ValueError(f"features must have one row per item of the model ({n_items}), got {F.shape[0]}")
    new_items = np.asarray(new_items, dtype=np.int64).reshape(-1)
    if known_items is None:
        known = np.bincount(model.train_.item, minlength=n_items) > 0
        known[new_items] = False
        known_items = np.flatnonzero(known)
    V = model.item_factors_.detach()
    has_bias = isinstance(model, RatingMixin)
    T = V.double().cpu().numpy()
    if has_bias:
        T = np.column_stack([model.item_bias_.detach().double().cpu().numpy(), T])
    reg = ItemFeatureRegression(alpha).fit(F[known_items], T[known_items])
    pred = torch.as_tensor(reg.predict(F[new_items]), dtype=V.dtype, device=V.device)
    factors = V.clone()
    factors[torch.from_numpy(new_items).to(V.device)] = pred[:, 1:] if has_bias else pred
    bias = None
    if has_bias:
        bias = model.item_bias_.detach().clone()
        bias[torch.from_numpy(new_items).to(V.device)] = pred[:, 0]
    return factors, bias


# ---------------------------------------------------------------------------------------------------------------------
# Top-k retrieval
# ---------------------------------------------------------------------------------------------------------------------
def top_k_exact(queries, items, k: int = 10, batch_size: int | None = None, device=None,
                max_elements: int = 2 ** 26) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact maximum-inner-product top-``k``: ``topk(queries @ items.T)``, batched over the queries on the device.

    Parameters
    ----------
    queries : (n_queries, d) array or tensor
    items : (n_items, d) array or tensor
    k : int
    batch_size : int, optional
        Queries per matrix product; default: as many as keep ``batch × n_items`` scores within ``max_elements``
        (2**26 floats, 256 MB: large enough for efficient matrix products, small enough for any device).
    device : str, torch.device or None
        None: CUDA when available.

    Returns
    -------
    (scores, indices) : two ``(n_queries, k)`` tensors on the device, best first.

    Used by: Chapter 10, ``benchmarks/serving.py`` (the exact baseline of the ANN index).
    """
    from .utils import get_device

    dev = get_device(device)
    Q = torch.as_tensor(queries, dtype=torch.float32).to(dev)
    V = torch.as_tensor(items, dtype=torch.float32).to(dev)
    if Q.ndim != 2 or V.ndim != 2 or Q.shape[1] != V.shape[1]:
        raise ValueError(f"queries and items must be 2-D with one width, got {tuple(Q.shape)} and {tuple(V.shape)}")
    k = check_int("k", k, 1)
    if k > V.shape[0]:
        raise ValueError(f"k={k} is more than the {V.shape[0]} items")
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1)
    return top_k_vectors(Q, V, k, batch_size=batch_size, max_elements=max_elements)


def mips_augment(items, queries=None):
    """The extra-dimension transform of Bachrach et al. (2014): maximum inner product becomes nearest neighbour.

    Every item ``x`` gets a last coordinate ``sqrt(M² − ‖x‖²)``, with ``M`` the largest item norm, so that all
    items have norm ``M``; a query ``q`` gets 0. Then ``‖q̃ − x̃‖² = ‖q‖² + M² − 2 q·x``: the item nearest to the
    query in Euclidean distance is the one with the largest inner product, for every query.

    Returns
    -------
    items_aug : (n_items, d + 1) float32 array
    queries_aug : (n_queries, d + 1) float32 array, or None when ``queries`` is None
    """
    X = np.asarray(items, dtype=np.float32)
    norms2 = (X.astype(np.float64) ** 2).sum(1)
    extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0)).astype(np.float32)
    items_aug = np.ascontiguousarray(np.column_stack([X, extra]))
    if queries is None:
        return items_aug, None
    Q = np.asarray(queries, dtype=np.float32)
    return items_aug, np.ascontiguousarray(np.column_stack([Q, np.zeros(len(Q), np.float32)]))


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss is in requirements.txt
        raise ImportError("ANNIndex needs faiss: pip install 'mfkit[serving]' (or pip install faiss-cpu)") from err
    return faiss


class ANNIndex:
    """Approximate maximum-inner-product search over item vectors: an HNSW graph (faiss ``IndexHNSWFlat``).

    HNSW (Malkov & Yashunin 2018) finds nearest neighbours in a distance; the largest inner product is not one, so
    by default the items are augmented with :func:`mips_augment` (Bachrach et al. 2014) and searched in Euclidean
    distance, which ranks exactly as the inner product. ``transform="ip"`` uses faiss' inner-product metric on the
    graph instead.

    Parameters
    ----------
    items : (n_items, d) array or tensor
    M : int
        Graph degree (links per node): higher is more accurate, slower to build, more memory.
    ef_construction : int
        Candidate list while building.
    ef_search : int
        Candidate list while searching: the speed/recall knob (settable later with :attr:`ef_search`).
    transform : {"augment", "ip"}
    threads : int, optional
        OpenMP threads of faiss (default: leave faiss' setting alone).

    Used by: Chapter 10, ``benchmarks/serving.py``.
    """

    def __init__(self, items, M: int = 16, ef_construction: int = 64, ef_search: int = 64,
                 transform: str = "augment", threads: int | None = None):
        faiss = _faiss()
        if transform not in ("augment", "ip"):
            raise ValueError(f"transform must be 'augment' or 'ip', got {transform!r}")
        X = np.ascontiguousarray(np.asarray(items.detach().cpu() if isinstance(items, torch.Tensor) else items,
                                            dtype=np.float32))
        if X.ndim != 2 or len(X) == 0 or not np.isfinite(X).all():
            raise ValueError(f"items must be a non-empty finite 2-D array, got shape {X.shape}")
        self.items, self.transform = X, transform
        self.M, self.ef_construction = check_int("M", M, 2), check_int("ef_construction", ef_construction, 1)
        if threads is not None:
            faiss.omp_set_num_threads(check_int("threads", threads, 1))
        if transform == "augment":
            data, _ = mips_augment(X)
            self.index = faiss.IndexHNSWFlat(data.shape[1], self.M, faiss.METRIC_L2)
        else:
            data = X
            self.index = faiss.IndexHNSWFlat(data.shape[1], self.M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.add(data)
        self.ef_search = ef_search

    @property
    def ef_search(self) -> int:
        return int(self.index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.index.hnsw.efSearch = check_int("ef_search", value, 1)

    def __len__(self) -> int:
        return len(self.items)

    def search(self, queries, k: int = 10, exclude=None, overfetch: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` by inner product: ``(scores, indices)``, two ``(n_queries, k)`` arrays, best
        first; the scores are the exact inner products of the returned items.

        ``exclude`` (one array of item indices per query, such as the items each user has seen) removes those items
        from the answers. The graph cannot skip them, so the search over-fetches: it asks for ``k + overfetch``
        candidates (``ef_search`` raised to at least that for the call), filters, and asks again with twice the
        over-fetch for the queries left with fewer than ``k``, until every query has ``k`` or the whole catalogue was
        fetched (then the missing slots hold index -1 and score -inf). ``overfetch`` defaults to ``k``; Chapter 10
        measures what a heavy user needs.
        """
        k = check_int("k", k, 1)
        if k > len(self):
            raise ValueError(f"k={k} is more than the {len(self)} items")
        if exclude is not None:
            return self._search_excluding(queries, k, exclude, k if overfetch is None else
                                          check_int("overfetch", overfetch, 0))
        return self._search(queries, k)

    def _search_excluding(self, queries, k, exclude, overfetch):
        Q = np.asarray(queries.detach().cpu() if isinstance(queries, torch.Tensor) else queries, dtype=np.float32)
        if len(exclude) != len(Q):
            raise ValueError(f"exclude must hold one array of item indices per query ({len(Q)}), got {len(exclude)}")
        scores = np.full((len(Q), k), -np.inf, dtype=np.float32)
        index = np.full((len(Q), k), -1, dtype=np.int64)
        todo, extra, ef = np.arange(len(Q)), overfetch, self.ef_search
        try:
            while len(todo):
                fetch = min(k + extra, len(self))
                self.ef_search = max(ef, fetch)
                s, i = self._search(Q[todo], fetch)
                short = []
                for row, q in enumerate(todo):
                    keep = (i[row] >= 0) & ~np.isin(i[row], np.asarray(exclude[q]))
                    n = min(int(keep.sum()), k)
                    scores[q, :n], index[q, :n] = s[row][keep][:n], i[row][keep][:n]
                    if n < k and fetch < len(self):
                        short.append(q)
                todo, extra = np.array(short, dtype=np.int64), 2 * max(extra, 1)
        finally:
            self.ef_search = ef
        return scores, index

    def _search(self, queries, k):
        Q = np.ascontiguousarray(np.asarray(queries.detach().cpu() if isinstance(queries, torch.Tensor) else queries,
                                            dtype=np.float32))
        if Q.ndim != 2 or Q.shape[1] != self.items.shape[1]:
            raise ValueError(f"queries must be (n, {self.items.shape[1]}), got {Q.shape}")
        if self.transform == "augment":
            Q = np.ascontiguousarray(np.column_stack([Q, np.zeros(len(Q), np.float32)]))
        _, index = self.index.search(Q, k)
        safe = np.maximum(index, 0)
        scores = np.einsum("qd,qkd->qk", Q[:, :self.items.shape[1]], self.items[safe])
        scores[index < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, 1), np.take_along_axis(index, order, 1)


def catalogue_like(items, n: int, noise: float = 0.1, seed=0) -> np.ndarray:
    """``n`` synthetic item vectors whose norms follow the norm distribution of trained ``items``.

    Each vector is a direction drawn from a Gaussian with the mean and covariance of ``items`` (normalised to length
    1) times a norm resampled from the trained vectors' norms with a log-normal jitter ``exp(noise · ε)``. A Gaussian
    alone has light-tailed norms; trained factors do not (popular items have long vectors), and those long vectors
    are what make inner-product search hard. (Resampling the trained vectors themselves with small noise keeps the
    norms too, but turns a million items into tight clusters of near-copies of the few thousand trained ones, which
    no real catalogue looks like and which breaks a graph index's links.)

    Used by: Chapter 10, ``benchmarks/serving.py`` (the 1,000,000-item catalogue).
    """
    X = np.asarray(items.detach().cpu() if isinstance(items, torch.Tensor) else items, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"items must be a 2-D array of at least two vectors, got shape {X.shape}")
    n = check_int("n", n, 1)
    rng = np.random.default_rng(seed)
    directions = rng.multivariate_normal(X.mean(0), np.cov(X.T), n)
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    norms = np.linalg.norm(X, axis=1)[rng.integers(0, len(X), n)] * np.exp(float(noise) * rng.standard_normal(n))
    return (directions * norms[:, None]).astype(np.float32)


def retrieval_recall(approx, exact) -> float:
    """Mean over queries of ``|approx ∩ exact| / k``: the share of the exact top-``k`` an approximate search finds
    (recall@k of retrieval). Two ``(n_queries, k)`` arrays or tensors of item indices."""
    A = np.asarray(approx.cpu() if isinstance(approx, torch.Tensor) else approx)
    E = np.asarray(exact.cpu() if isinstance(exact, torch.Tensor) else exact)
    if A.shape != E.shape or A.ndim != 2:
        raise ValueError(f"approx and exact must be two (n_queries, k) arrays of one shape, got {A.shape}, {E.shape}")
    hits = (A[:, :, None] == E[:, None, :]).any(2).sum(1)
    return float(hits.mean() / E.shape[1]) if len(E) else math.nan
