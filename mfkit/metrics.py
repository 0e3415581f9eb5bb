"""Evaluation metrics: rating error (RMSE, MAE) and top-k ranking metrics.

Used by: Chapters 2–4 and 7 (ranking metrics, protocol I1) and Chapters 5–7 (RMSE/MAE, protocol E1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .observed import seen_csr
from .topk import csr_rows_as_coo, top_k

__all__ = ["rmse", "mae", "NonFiniteError", "paired_comparison", "PairedComparison"]


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


class NonFiniteError(ValueError):
    """A model's predictions or scores hold NaN or ±inf (it diverged, or is broken).

    A ValueError; the training loop (:func:`mfkit.training.epoch_loop`) turns one raised while validating into a
    :class:`~mfkit.training.DivergenceError`.
    """


def _first_nonfinite(x: torch.Tensor, what: str, hint: str = "", error=ValueError) -> None:
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = torch.nonzero(bad)[0].tolist()
        where = idx[0] if len(idx) == 1 else tuple(idx)
        raise error(f"{what} holds {int(bad.sum())} non-finite value(s) (NaN or ±inf), e.g. {what}[{where}] = "
                         f"{float(x[tuple(idx)])}; expected finite numbers{hint}")


def _pair(pred, target, clip):
    """Both as float64 tensors of one non-empty shape; non-finite values refused (a NaN prediction would make the
    metric NaN, or, clipped, a silent mid-scale guess)."""
    pred = _as_tensor(pred).double()
    target = _as_tensor(target).to(pred.device, torch.float64)
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"pred and target must be non-empty and of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    _first_nonfinite(target, "target")
    _first_nonfinite(pred, "pred", " (a model that diverged?)", NonFiniteError)
    if clip is not None:
        low, high = clip
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise ValueError(f"clip must be (low, high) with finite low <= high, got {clip!r}")
        pred = pred.clamp(low, high)
    return pred, target


def rmse(pred, target, clip: tuple[float, float] | None = None) -> float:
    """Root mean squared error, ``sqrt(mean((pred - target)^2))``, optionally clipping predictions to the rating scale.

    Not ``sqrt(sum of squared errors / ||R||)`` (the seed notebook's formula), which divides by the norm of the
    rating matrix rather than by the number of ratings. Shapes must match, and NaN or ±inf in either input raises
    ValueError (naming the first position).
    """
    pred, target = _pair(pred, target, clip)
    return float(torch.sqrt(torch.mean((pred - target) ** 2)))


def mae(pred, target, clip: tuple[float, float] | None = None) -> float:
    """Mean absolute error, optionally clipping predictions to the rating scale (inputs checked as in :func:`rmse`)."""
    pred, target = _pair(pred, target, clip)
    return float(torch.mean(torch.abs(pred - target)))


# ---------------------------------------------------------------------------------------------------------------------
# Top-k ranking metrics (protocol I1)
# ---------------------------------------------------------------------------------------------------------------------
__all__ += ["ranking_metrics", "ranking_metrics_from_hits", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
            "hit_rate_at_k", "top_k_items"]


def _check_hits(hits: torch.Tensor, n_relevant: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hits = _as_tensor(hits)
    n_relevant = _as_tensor(n_relevant).to(hits.device)
    if hits.ndim != 2 or hits.shape[1] < 1:
        raise ValueError(f"hits must be a 2-D (users, k >= 1) 0/1 matrix of top-k hits, got shape {tuple(hits.shape)}")
    if n_relevant.shape != hits.shape[:1]:
        raise ValueError(f"n_relevant must hold one count per row of hits ({hits.shape[0]}), "
                         f"got shape {tuple(n_relevant.shape)}")
    hits = hits.to(torch.float64)
    n_relevant = n_relevant.to(torch.float64)
    not01 = (hits != 0) & (hits != 1)
    if bool(not01.any()):
        u, j = torch.nonzero(not01)[0].tolist()
        raise ValueError(f"hits must hold only 0 and 1, got hits[{u}, {j}] = {float(hits[u, j])}")
    if not bool(torch.isfinite(n_relevant).all()) or bool((n_relevant != torch.round(n_relevant)).any()):
        raise ValueError("n_relevant must hold whole counts")
    if (n_relevant <= 0).any():
        u = int(torch.nonzero(n_relevant <= 0)[0])
        raise ValueError(f"every user must have at least one relevant item, got n_relevant[{u}] = "
                         f"{float(n_relevant[u])} (drop users without test rows)")
    too_many = hits.sum(1) > n_relevant
    if bool(too_many.any()):
        u = int(torch.nonzero(too_many)[0])
        raise ValueError(f"row {u} of hits has {int(hits[u].sum())} hits but n_relevant[{u}] = {int(n_relevant[u])}: "
                         "a user cannot have more hits than relevant items")
    return hits, n_relevant


def precision_at_k(hits, n_relevant) -> torch.Tensor:
    """Per-user precision@k: the share of the top ``k`` that is relevant.

    Parameters
    ----------
    hits : (users, k) 0/1 or bool tensor
        ``hits[u, j]`` is 1 when the item ranked ``j + 1`` for user ``u`` is relevant.
    n_relevant : (users,) tensor
        Number of relevant (test) items of each user, all > 0.

    Used by: Chapters 2–4 and 7 (protocol I1).
    """
    hits, _ = _check_hits(hits, n_relevant)
    return hits.sum(1) / hits.shape[1]


def recall_at_k(hits, n_relevant) -> torch.Tensor:
    """Per-user recall@k: relevant items in the top ``k`` over all relevant items of the user."""
    hits, n_relevant = _check_hits(hits, n_relevant)
    return hits.sum(1) / n_relevant


def ndcg_at_k(hits, n_relevant) -> torch.Tensor:
    """Per-user nDCG@k with binary relevance (Järvelin & Kekäläinen 2002).

    ``DCG = sum_j hit_j / log2(j + 1)`` over ranks ``j = 1..k``; the ideal DCG puts the user's relevant items first,
    over ``min(n_relevant, k)`` positions (protocol I1).
    """
    hits, n_relevant = _check_hits(hits, n_relevant)
    k = hits.shape[1]
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, device=hits.device, dtype=torch.float64))
    dcg = hits @ discount
    ideal_cum = torch.cumsum(discount, 0)
    n_ideal = n_relevant.clamp(max=k).long()
    return dcg / ideal_cum[n_ideal - 1]


def map_at_k(hits, n_relevant) -> torch.Tensor:
    """Per-user average precision@k: sum of precision@j at each rank ``j`` holding a hit, divided by ``n_relevant``.

    Divided by the number of relevant items (protocol I1, as Microsoft Recommenders' ``map_at_k``), not by
    ``min(n_relevant, k)``, so a user with 20 test items can score at most 0.5 at k = 10.
    """
    hits, n_relevant = _check_hits(hits, n_relevant)
    k = hits.shape[1]
    ranks = torch.arange(1, k + 1, device=hits.device, dtype=torch.float64)
    precision_at_hits = torch.cumsum(hits, 1) / ranks * hits
    return precision_at_hits.sum(1) / n_relevant


def hit_rate_at_k(hits, n_relevant) -> torch.Tensor:
    """Per-user hit rate@k: 1 when at least one relevant item is in the top ``k``."""
    hits, _ = _check_hits(hits, n_relevant)
    return (hits.sum(1) > 0).to(torch.float64)


_METRICS = {"precision": precision_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k, "map": map_at_k,
            "hit_rate": hit_rate_at_k}


def ranking_metrics_from_hits(hits, n_relevant) -> dict[str, torch.Tensor]:
    """All five per-user metrics (``precision``, ``recall``, ``ndcg``, ``map``, ``hit_rate``) from a hit matrix."""
    return {name: fn(hits, n_relevant) for name, fn in _METRICS.items()}


def _score_fn(model):
    if hasattr(model, "score_users"):
        return model.score_users
    if callable(model):
        return model
    raise TypeError("model must have a score_users(user_idx) method or be a callable user_idx -> (users, items) "
                    f"scores, got {type(model).__name__}")


_NONFINITE = ("raise", "last")


def _check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def _check_users(users, n_users: int | None) -> np.ndarray:
    users = np.asarray(users)
    if users.ndim != 1 or (len(users) and users.dtype.kind not in "iu"):
        raise ValueError(f"users must be a 1-D array of dense user indices, got dtype {users.dtype}, "
                         f"shape {users.shape}")
    users = users.astype(np.int64)
    if n_users is not None and len(users) and (users.min() < 0 or users.max() >= n_users):
        bad = int(users[(users < 0) | (users >= n_users)][0])
        raise ValueError(f"user index {bad} is outside 0..{n_users - 1}")
    return users


def _handle_nonfinite(scores: torch.Tensor, users: np.ndarray, nonfinite: str) -> torch.Tensor:
    """Refuse NaN/±inf scores (``"raise"``), or put them after every finite score (``"last"``)."""
    bad = ~torch.isfinite(scores)
    if not bool(bad.any()):
        return scores
    if nonfinite == "raise":
        row, item = torch.nonzero(bad)[0].tolist()
        raise NonFiniteError(f"the model returned {int(bad.sum())} non-finite score(s) (NaN or ±inf) in this batch, "
                             f"e.g. {float(scores[row, item])} for user {int(users[row])}, item {item}; NaN would "
                             "rank unpredictably. Fix the model, or pass nonfinite='last' to rank them after every "
                             "finite score")
    # the lowest finite float32: after every finite score, before the excluded items (-inf), and still a hit
    return scores.masked_fill(bad, torch.finfo(torch.float32).min)


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _check_index_space(train, test) -> None:
    """``train`` and ``test`` come from one data set: the same raw-id maps, not just the same sizes."""
    if train.n_users != test.n_users or train.n_items != test.n_items:
        raise ValueError(f"train ({train.n_users}×{train.n_items}) and test ({test.n_users}×{test.n_items}) must "
                         "share one index space (split one Interactions object)")
    for what in ("user_ids", "item_ids"):
        a, b = getattr(train, what), getattr(test, what)
        if a is not b and not np.array_equal(a, b):
            j = int(np.argmax(a != b)) if a.dtype == b.dtype else 0
            raise ValueError(f"train and test have different {what} (position {j}: {_py(a[j])!r} vs "
                             f"{_py(b[j])!r}): they are not splits of one data set, so dense index i means "
                             "different things in each")


def top_k_items(model, train, users, k: int = 10, exclude: bool = True, device=None,
                nonfinite: str = "raise") -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item indices and scores for dense user indices ``users``, excluding each user's train items.

    Parameters
    ----------
    model : object with ``score_users`` or callable
        ``score_users(user_idx: LongTensor) -> (len(user_idx), n_items)`` scores.
    train : mfkit.data.Interactions or None
        Items a user has here are set to ``-inf`` before the top-k (when ``exclude``).
    users : array-like of int
        Dense user indices (one batch: callers batch themselves).
    nonfinite : {"raise", "last"}
        NaN or ±inf scores raise ValueError (default), or with ``"last"`` rank after every finite score.

    Returns
    -------
    (items, scores) : two (len(users), k) tensors on the scores' device.
    """
    from .utils import get_device

    device = get_device(device)
    k = _check_k(k)
    if nonfinite not in _NONFINITE:
        raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
    score = _score_fn(model)
    users = _check_users(users, train.n_users if train is not None else None)
    user_idx = torch.from_numpy(users).to(device)
    with torch.no_grad():
        scores = score(user_idx).to(device=device, dtype=torch.float32).clone()
    if scores.ndim != 2 or scores.shape[0] != len(users):
        raise ValueError(f"score_users must return a (len(user_idx), n_items) tensor, got {tuple(scores.shape)}")
    if train is not None and scores.shape[1] != train.n_items:
        raise ValueError(f"the model returned scores for {scores.shape[1]} items, train has {train.n_items}")
    scores = _handle_nonfinite(scores, users, nonfinite)
    if k > scores.shape[1]:
        raise ValueError(f"k={k} is larger than the number of items ({scores.shape[1]})")
    top_scores, top_items = top_k(scores, k, seen_csr(train) if exclude and train is not None else None, users)
    return top_items, top_scores


def ranking_metrics(model, train, test, k: int = 10, batch_size: int = 1024, device=None,
                    per_user: bool = False, nonfinite: str = "raise") -> dict:
    """Top-``k`` ranking metrics of protocol I1: precision, recall, nDCG, MAP and hit rate at ``k``.

    For every user with rows in ``test``, the ``k`` highest-scored items excluding the items the user has in
    ``train`` are compared with the user's test items (binary relevance). Users are scored in batches on the device
    and ranked with :func:`torch.topk`; nothing loops over users or items in Python.

    Parameters
    ----------
    model : object with ``score_users`` or callable
        ``score_users(user_idx: LongTensor) -> Tensor (len(user_idx), n_items)``. ``user_idx`` is given on
        ``device``.
    train, test : mfkit.data.Interactions
        One index space (splits of one data set). ``train`` may be None (nothing excluded).
    k : int
        Cut-off.
    batch_size : int
        Users scored at once (memory: ``batch_size × n_items`` floats).
    device : str, torch.device or None
        Where ranking happens (None: CUDA when available).
    per_user : bool
        Also return the per-user values under ``"per_user"`` (a DataFrame indexed by dense user index) and the
        number of users evaluated under ``"n_users"``.
    nonfinite : {"raise", "last"}
        What to do with NaN or ±inf scores: ``"raise"`` (default) refuses them with a ValueError naming a user and
        item (sorted as-is, NaN would take the top ranks and silently never count as hits); ``"last"`` ranks them
        after every finite score (they can still fill the top ``k`` of a user with fewer finite scores, and count
        as hits there).

    Raises
    ------
    ValueError
        Non-integer or non-positive ``k``/``batch_size``; ``train`` and ``test`` not from one data set (different
        sizes or raw-id maps); an empty ``test``; scores of the wrong shape or non-finite (see ``nonfinite``).

    Returns
    -------
    dict
        ``{"precision", "recall", "ndcg", "map", "hit_rate"}``: floats, means over users with test rows
        (with ``per_user``, also ``"n_users"`` and ``"per_user"``).

    Notes
    -----
    nDCG uses the ideal DCG over ``min(#relevant, k)`` positions; MAP divides the sum of precisions at the hits by
    ``#relevant`` (protocol I1, as Microsoft Recommenders). A test item that is also in the user's train part is
    excluded from the ranking and so can never be a hit, but still counts as relevant.

    Used by: Chapters 2–4 and 7. Protocol: Microsoft Recommenders' ML-100k benchmark (book page "How we measure", I1).
    """
    from .utils import get_device

    device = get_device(device)
    k = _check_k(k)
    batch_size = _check_k(batch_size, "batch_size")
    if nonfinite not in _NONFINITE:
        raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
    if train is not None:
        _check_index_space(train, test)
    test_csr = seen_csr(test)
    users = np.flatnonzero(np.diff(test_csr.indptr) > 0)
    if len(users) == 0:
        raise ValueError("test has no interactions")
    train_csr = seen_csr(train) if train is not None else None
    score = _score_fn(model)
    sums = {name: torch.zeros((), dtype=torch.float64, device=device) for name in _METRICS}
    per_user_values = {name: [] for name in _METRICS} if per_user else None
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        user_idx = torch.from_numpy(batch).to(device)
        with torch.no_grad():
            scores = score(user_idx).to(device=device, dtype=torch.float32)
            if scores.ndim != 2 or scores.shape != (len(batch), test.n_items):
                raise ValueError(f"the model must return ({len(batch)}, {test.n_items}) scores for a batch of "
                                 f"{len(batch)} users, got {tuple(scores.shape)}")
            scores = scores.clone()  # the model may hand out a view of its own buffers
            scores = _handle_nonfinite(scores, batch, nonfinite)
            top_scores, top_items = top_k(scores, k, train_csr, batch)
            relevant = torch.zeros(len(batch), test.n_items, dtype=torch.bool, device=device)
            rows, cols = csr_rows_as_coo(test_csr, batch, device)
            relevant[rows, cols] = True
            # an excluded (-inf) item never counts as a hit, even when it is also a test item
            hits = torch.gather(relevant, 1, top_items) & torch.isfinite(top_scores)
            if hits.shape[1] < k:  # fewer items than k: the missing ranks are misses
                hits = torch.nn.functional.pad(hits, (0, k - hits.shape[1]))
            n_relevant = torch.from_numpy(np.diff(test_csr.indptr)[batch].astype(np.int64)).to(device)
            values = ranking_metrics_from_hits(hits, n_relevant)
        for name, v in values.items():
            sums[name] += v.sum()
            if per_user:
                per_user_values[name].append(v.cpu())
    out = {name: float(s) / len(users) for name, s in sums.items()}
    if per_user:
        out["n_users"] = int(len(users))
        import pandas as pd

        out["per_user"] = pd.DataFrame({name: torch.cat(v).numpy() for name, v in per_user_values.items()},
                                       index=pd.Index(users, name="user"))
    return out


_VERDICTS = ("A ahead", "B ahead", "tie")


@dataclass(frozen=True)
class PairedComparison:
    """The result of :func:`paired_comparison`: the mean difference ``A − B`` of a metric, its interval and a verdict.

    ``verdict`` is ``"A ahead"``, ``"B ahead"`` or ``"tie"`` (the interval contains zero); "ahead" follows
    ``higher_is_better`` (for RMSE, lower is ahead). ``str()`` gives the sentence a chapter quotes.
    """

    names: tuple[str, str]
    metric: str
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    n: int
    unit: str
    higher_is_better: bool = True
    level: float = 0.95

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "A ahead" if self.higher_is_better else "B ahead"
        if self.high < 0:
            return "B ahead" if self.higher_is_better else "A ahead"
        return "tie"

    @property
    def winner(self) -> str | None:
        """The name of the model ahead, or None for a tie."""
        return {"A ahead": self.names[0], "B ahead": self.names[1]}.get(self.verdict)

    @property
    def interval(self) -> tuple[float, float]:
        return self.low, self.high

    def __str__(self) -> str:
        a, b = self.names
        outcome = "tie" if self.winner is None else f"{self.winner} ahead"
        return (f"{self.metric}: {a} {self.mean_a:.4f}, {b} {self.mean_b:.4f}; {a} − {b} = {self.difference:+.4f}, "
                f"{self.level:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] over {self.n} {self.unit}: "
                f"{outcome}")

    def as_dict(self) -> dict:
        """Plain numbers and strings (for a benchmark record or a DataFrame row)."""
        return {"a": self.names[0], "b": self.names[1], "metric": self.metric, "mean_a": self.mean_a,
                "mean_b": self.mean_b, "difference": self.difference, "low": self.low, "high": self.high,
                "n": self.n, "unit": self.unit, "verdict": self.verdict, "winner": self.winner}


def _per_unit(x, what: str) -> np.ndarray:
    values = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of per-unit values, got shape {values.shape}")
    _first_nonfinite(torch.from_numpy(values.copy()), what)
    return values


def _aligned(a, b, names) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values of A and B on the same users: pandas Series are aligned on their index (which must hold the
    same users), anything else must already be in one order."""
    import pandas as pd

    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if a.index.has_duplicates or b.index.has_duplicates:
            raise ValueError("per-user values must have one row per user (the index holds duplicates)")
        only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
        if len(only_a) or len(only_b):
            raise ValueError(f"{names[0]} and {names[1]} were evaluated on different users ({len(only_a)} only in "
                             f"{names[0]}, {len(only_b)} only in {names[1]}): a paired comparison needs the same "
                             "users, from the same split")
        b = b.loc[a.index]
    a, b = _per_unit(a, names[0]), _per_unit(b, names[1])
    if len(a) != len(b):
        raise ValueError(f"{names[0]} has {len(a)} values and {names[1]} {len(b)}: a paired comparison needs one "
                         "value per unit for each model")
    return a, b


def paired_comparison(a, b, *, names=("A", "B"), metric: str = "metric", over: str | None = None,
                      higher_is_better: bool = True, level: float = 0.95, n_boot: int = 4000,
                      random_state: int = 0) -> PairedComparison:
    """Compare two models on the same split(s): the mean difference ``A − B``, a ``level`` interval and a verdict.

    Two designs, chosen by ``over`` (inferred from the input when None):

    - ``"users"`` (one split): ``a`` and ``b`` hold one value per user, such as the ``per_user`` column of
      :func:`ranking_metrics` for each model (pandas Series are aligned on their user index). The interval is a
      paired bootstrap over users: users are resampled with replacement ``n_boot`` times, the same resamples for both
      models, and the percentile interval of the mean difference is reported. Inferred for an array, Series or
      tensor.
    - ``"seeds"`` (several splits): ``a`` and ``b`` are lists with one entry per split seed, each a number (the
      metric on that split, for example an RMSE) or per-user values (averaged per split). The interval is
      ``mean ± t · sd / √n`` over the per-seed differences (Student's t with ``n − 1`` degrees of freedom), so it
      carries the spread from split to split. Inferred for a list or tuple.

    The verdict is ``"A ahead"`` or ``"B ahead"`` when the interval excludes zero, else ``"tie"``. Swapping ``a``
    and ``b`` flips the sign of the difference and of the interval and swaps the verdict; identical values tie.

    Parameters
    ----------
    a, b : per-user values (one split) or one entry per split seed (several splits), as above.
    names : (str, str)
        Labels of A and B, used in the verdict's sentence and errors.
    metric : str
        What is compared, for the sentence (``"nDCG@10"``, ``"RMSE"``).
    over : {"users", "seeds"} or None
        The unit of pairing (see above).
    higher_is_better : bool
        False for errors (RMSE, MAE): then the model with the lower value is ahead.
    level : float
        Coverage of the interval, in (0, 1).
    n_boot : int
        Bootstrap resamples (``over="users"``).
    random_state : int
        Seed of the bootstrap (the same seed gives the same interval).

    Returns
    -------
    PairedComparison

    Used by: Chapters 3, 9 and 10 and the results page, for every ordering the book states. Reference: Efron and
    Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 (percentile intervals); paired designs as in
    Dror et al. (2018), "The Hitchhiker's Guide to Testing Statistical Significance in NLP".
    """
    from scipy import stats

    if over is None:
        over = "seeds" if isinstance(a, (list, tuple)) else "users"
    if over not in ("users", "seeds"):
        raise ValueError(f"over must be 'users' or 'seeds', got {over!r}")
    if len(names) != 2:
        raise ValueError(f"names must be two labels, got {names!r}")
    names = (str(names[0]), str(names[1]))
    if not (0 < float(level) < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    alpha = 1 - float(level)
    if over == "seeds":
        if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)):
            raise ValueError("over='seeds' takes two lists with one entry per split seed")
        if len(a) != len(b):
            raise ValueError(f"{names[0]} has {len(a)} split seeds and {names[1]} {len(b)}: pair them seed by seed")
        if len(a) < 2:
            raise ValueError(f"over='seeds' needs at least two split seeds, got {len(a)}: for one split, pass "
                             "per-user values (over='users')")
        per_seed = [_aligned(x, y, names) if np.ndim(x) else (_per_unit([x], names[0]), _per_unit([y], names[1]))
                    for x, y in zip(a, b)]
        ma = np.array([x.mean() for x, _ in per_seed])
        mb = np.array([y.mean() for _, y in per_seed])
        d = ma - mb
        n = len(d)
        half = float(stats.t.ppf(1 - alpha / 2, n - 1) * d.std(ddof=1) / np.sqrt(n))
        mean = float(d.mean())
        low, high, unit = mean - half, mean + half, "split seeds"
    else:
        ma, mb = _aligned(a, b, names)
        d = ma - mb
        n = len(d)
        if int(n_boot) < 100:
            raise ValueError(f"n_boot must be at least 100, got {n_boot!r}")
        rng = np.random.default_rng(random_state)
        means = np.empty(int(n_boot))
        chunk = max(1, (1 << 22) // n)  # about 32 MB of indices at a time
        for start in range(0, len(means), chunk):
            stop = min(start + chunk, len(means))
            means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        mean = float(d.mean())
        low, high = (float(q) for q in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
        unit = "users"
    return PairedComparison(names=names, metric=metric, mean_a=float(ma.mean()), mean_b=float(mb.mean()),
                            difference=mean, low=low, high=high, n=n, unit=unit,
                            higher_is_better=bool(higher_is_better), level=float(level))
