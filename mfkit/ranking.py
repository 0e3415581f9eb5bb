"""Ranking models and honest ranking evaluation: BPR, item kNN, EASE, confidence-weighted ALS, sampled metrics and
measures beyond accuracy.

Models (all :class:`~mfkit.base.Recommender` subclasses, CPU or CUDA through ``device``):

* :class:`BPR`: matrix factorization trained with the pairwise logistic loss of Bayesian personalised ranking
  (Rendle et al. 2009) on (user, positive, sampled negative) triples; negatives drawn uniformly or in proportion
  to item popularity, all at once per batch (no Python loop per triple).
* :class:`ItemKNN`: item-based nearest neighbours, cosine similarity with a shrinkage term, ``n_neighbors`` kept
  per item (Sarwar et al. 2001), stored sparse.
* :class:`EASE`: Steck's (2019) closed-form item–item model, one ``items × items`` inverse with an L2 penalty;
  the memory is estimated first and a catalogue too large is refused with the size and an alternative.
* :class:`ConfidenceMF`: weighted matrix factorization by ALS with Hu, Koren & Volinsky's (2008) confidence
  ``c = 1 + alpha * r`` on observed cells (``r`` the rating, or 1 for binary confidence) and 1 elsewhere.

Evaluation (protocol I1 and its variants):

* :func:`sampled_ranking_metrics`: the held-out item ranked against ``n_negatives`` sampled unobserved items (the
  NCF protocol, He et al. 2017), next to :func:`mfkit.metrics.ranking_metrics`' full ranking (Krichene & Rendle
  2020 show the sampled version can reorder models).
* :func:`beyond_accuracy`: catalogue coverage, mean popularity of the recommended items, overlap with the
  most-popular list and the Gini index of how often each item is recommended.

Used by: Chapter 9 ("Ranking honestly") and ``benchmarks/ranking_ml100k.py``.
"""
from __future__ import annotations

import numpy as np
import torch

from . import als
from .base import FactorMixin, Recommender, check_choice, check_float, check_int
from .data import Interactions
from .metrics import ranking_metrics, top_k_items
from .observed import item_popularity, observed_pairs, seen_csr
from .topk import seen_rows
from .training import epoch_loop, train_loop

__all__ = ["BPR", "ItemKNN", "EASE", "ConfidenceMF", "SAMPLING", "bpr_loss", "sample_negatives",
           "ease_memory_bytes", "sampled_ranking_metrics", "beyond_accuracy", "fit_and_score"]

SAMPLING = ("uniform", "popularity")


# ---------------------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------------------
def _sparse_matrix(rows, cols, values, shape, device, dtype=torch.float32) -> torch.Tensor:
    """A coalesced torch COO matrix (what ``torch.sparse.mm`` takes on CPU and CUDA)."""
    idx = torch.stack([torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)])
    vals = torch.as_tensor(values, dtype=dtype)
    return torch.sparse_coo_tensor(idx, vals, shape, check_invariants=False).coalesce().to(device)


# ---------------------------------------------------------------------------------------------------------------------
# BPR
# ---------------------------------------------------------------------------------------------------------------------
def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean pairwise logistic loss ``-log σ(x_ui - x_uj)`` of BPR (Rendle et al. 2009), computed stably."""
    return torch.nn.functional.softplus(neg_scores - pos_scores).mean()


def sample_negatives(users: torch.Tensor, positive_keys: torch.Tensor, n_items: int, *,
                     probabilities: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     max_rounds: int = 50) -> torch.Tensor:
    """One negative item per entry of ``users``: an item the user has no training interaction with.

    All draws are made at once; only those that hit a positive (found by binary search in the sorted
    ``user * n_items + item`` keys) are redrawn, round by round. Draws are made on the CPU (with ``generator``), so a
    seed gives the same negatives on every device.

    Parameters
    ----------
    users : (n,) int64 tensor
        Dense user index of each draw.
    positive_keys : (nnz,) int64 tensor, sorted
        ``user * n_items + item`` of every training pair (CPU).
    n_items : int
        Catalogue size.
    probabilities : (n_items,) tensor, optional
        Sampling distribution over items (uniform when None), e.g. proportional to popularity.
    generator : torch.Generator, optional
        CPU generator.
    max_rounds : int
        After this many rounds the draws still hitting positives are redrawn uniformly (a popularity distribution
        may give a user's unobserved items zero mass); after as many more, ValueError.

    Returns
    -------
    (n,) int64 tensor on the CPU.
    """
    users = users.cpu().long()
    n_items = int(n_items)

    def draw(n, uniform):
        if uniform or probabilities is None:
            return torch.randint(n_items, (n,), generator=generator)
        return torch.multinomial(probabilities, n, replacement=True, generator=generator)

    neg = draw(len(users), False)
    todo = torch.arange(len(users))
    for round_ in range(2 * max_rounds):
        keys = users[todo] * n_items + neg[todo]
        pos = torch.searchsorted(positive_keys, keys).clamp_max(max(len(positive_keys) - 1, 0))
        hit = positive_keys[pos] == keys if len(positive_keys) else torch.zeros_like(keys, dtype=torch.bool)
        todo = todo[hit]
        if len(todo) == 0:
            return neg
        neg[todo] = draw(len(todo), round_ >= max_rounds)
    raise ValueError(f"could not draw negatives for {len(todo)} draw(s) (e.g. user {int(users[todo[0]])}) after "
                     f"{2 * max_rounds} rounds: the user has (nearly) every item")


class BPR(FactorMixin, Recommender):
    """Matrix factorization trained for ranking with the BPR pairwise loss (Rendle et al. 2009).

    The score is ``x_ui = p_u · q_i + b_i`` (an item bias, as most BPR implementations add). Each epoch visits
    every distinct training pair ``(u, i)`` once, in minibatches, draws one negative ``j`` per pair (an item ``u``
    has not interacted with) and takes an optimizer step on ``-log σ(x_ui - x_uj)`` plus
    ``reg · (|p_u|² + |q_i|² + |q_j|² + b_i² + b_j²)`` (both averaged over the batch).

    Parameters
    ----------
    n_factors : int
        Latent dimension.
    lr : float
        Learning rate of ``optimizer``.
    reg : float
        L2 penalty per triple.
    n_epochs : int
        Passes over the training pairs (with ``valid``: the most; the best epoch is kept).
    batch_size : int
        Triples per optimizer step.
    sampling : {"uniform", "popularity"}
        How negatives are drawn: uniformly over the catalogue, or in proportion to ``count ** pop_exponent``
        (``count``: an item's training users), which shows the model more of the popular items it must learn to
        rank below a user's own (Rendle & Freudenthaler 2014 study adaptive variants).
    pop_exponent : float
        Exponent of the popularity distribution (1: proportional; 0: uniform again).
    optimizer : str
        A name of :data:`mfkit.training.OPTIMIZERS`.
    init_scale : float
        Standard deviation of the initial factors.
    device, random_state, show_progress
        As every mfkit model.

    Raises
    ------
    ValueError (at fit)
        A user who has interacted with every item: there is no negative to sample for them.

    Used by: Chapter 9 and ``benchmarks/ranking_ml100k.py``.
    """

    fitted_attributes = ("user_factors_", "item_factors_", "item_bias_")

    def __init__(self, n_factors: int = 64, lr: float = 0.01, reg: float = 1e-4, n_epochs: int = 30,
                 batch_size: int = 4096, sampling: str = "uniform", pop_exponent: float = 1.0,
                 optimizer: str = "adam", init_scale: float = 0.1, device=None, random_state: int = 0,
                 show_progress: bool | None = None):
        self.n_factors = check_int("n_factors", n_factors, 1)
        self.lr = check_float("lr", lr, 0.0, strict=True)
        self.reg = check_float("reg", reg, 0.0)
        self.n_epochs = check_int("n_epochs", n_epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.sampling = check_choice("sampling", sampling, SAMPLING)
        self.pop_exponent = check_float("pop_exponent", pop_exponent, 0.0)
        from .training import check_optimizer

        check_optimizer(optimizer)
        self.optimizer = optimizer
        self.init_scale = check_float("init_scale", init_scale, 0.0)
        self.device, self.random_state = device, check_int("random_state", random_state, None)
        self.show_progress = show_progress

    def _fit(self, train: Interactions, valid: Interactions | None, k: int = 10, patience: int | None = None):
        n_users, n_items, device = train.n_users, train.n_items, self.device_
        user_np, item_np = observed_pairs(train)
        counts = np.bincount(user_np, minlength=n_users)
        full = np.flatnonzero(counts >= n_items)
        if len(full):
            raise ValueError(f"user {train.user_ids[full[0]].item()!r} (dense index {int(full[0])}) has interacted with all "
                             f"{n_items} items: BPR has no negative item to sample for them; drop such users "
                             f"({len(full)} in all) from the training data")
        gen = torch.Generator().manual_seed(int(self.random_state))
        P = (torch.randn(n_users, self.n_factors, generator=gen) * self.init_scale).to(device).requires_grad_()
        Q = (torch.randn(n_items, self.n_factors, generator=gen) * self.init_scale).to(device).requires_grad_()
        b = torch.zeros(n_items, device=device, requires_grad=True)
        self.user_factors_, self.item_factors_, self.item_bias_ = P, Q, b
        keys = torch.from_numpy(user_np * n_items + item_np)
        users_cpu, items_cpu = torch.from_numpy(user_np), torch.from_numpy(item_np)
        probs = None
        if self.sampling == "popularity":
            pop = torch.from_numpy(item_popularity(train).astype(np.float64))
            probs = pop ** self.pop_exponent
            probs[pop == 0] = 0.0
        reg = self.reg

        def batches(epoch):
            for idx in torch.randperm(len(keys), generator=gen).split(self.batch_size):
                u = users_cpu[idx]
                j = sample_negatives(u, keys, n_items, probabilities=probs, generator=gen)
                yield u.to(device), items_cpu[idx].to(device), j.to(device)

        def loss_fn(batch):
            u, i, j = batch
            pu, qi, qj = P[u], Q[i], Q[j]
            x_ui = (pu * qi).sum(1) + b[i]
            x_uj = (pu * qj).sum(1) + b[j]
            penalty = (pu.square().sum(1) + qi.square().sum(1) + qj.square().sum(1) + b[i] ** 2 + b[j] ** 2).mean()
            return bpr_loss(x_ui, x_uj) + reg * penalty

        evaluate = None
        if valid is not None:
            evaluate = lambda: ranking_metrics(self, train, valid, k=k, device=device)["ndcg"]  # noqa: E731
        self.history_ = train_loop(loss_fn, [P, Q, b], optimizer=self.optimizer, lr=self.lr,
                                   n_epochs=self.n_epochs, batches=batches, evaluate=evaluate, patience=patience,
                                   show_progress=self.show_progress, desc=f"BPR ({self.sampling})",
                                   divergence_hint="Lower the learning rate or raise reg.")
        self.user_factors_, self.item_factors_, self.item_bias_ = P.detach(), Q.detach(), b.detach()

    def score_users(self, users) -> torch.Tensor:
        """``p_u · q_i + b_i`` for every item: ``(len(users), n_items)``."""
        u = self._user_index(users)
        with torch.no_grad():
            return self.user_factors_[u] @ self.item_factors_.T + self.item_bias_[None, :]


# ---------------------------------------------------------------------------------------------------------------------
# Item kNN
# ---------------------------------------------------------------------------------------------------------------------
class ItemKNN(Recommender):
    """Item-based k-nearest-neighbours: score of item ``j`` for user ``u`` = sum of the similarities between ``j``
    and the items ``u`` has, over ``j``'s ``n_neighbors`` most similar items (Sarwar et al. 2001).

    Similarity: cosine between the items' binary user columns with a shrinkage term,
    ``s_ij = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink)``, which pulls similarities computed from few
    co-occurrences towards 0. Computed in blocks of items and stored sparse (``n_items × n_neighbors`` entries), so
    memory stays ``O(n_items · n_neighbors)``: the alternative :class:`EASE` points to when its dense matrix is too
    large.

    Parameters
    ----------
    n_neighbors : int
        Neighbours kept per item (at most ``n_items - 1``, checked at fit).
    shrink : float
        Shrinkage term (0: plain cosine).
    block_size : int
        Items whose similarities are computed at once (memory ``block_size × n_items`` floats).
    device : str, torch.device or None

    Attributes
    ----------
    neighbors_, similarities_ : (n_items, n_neighbors) tensors
        Row ``j``: the items most similar to ``j`` and their similarities (best first).

    Used by: Chapter 9 and ``benchmarks/ranking_ml100k.py``.
    """

    fitted_attributes = ("neighbors_", "similarities_")

    def __init__(self, n_neighbors: int = 100, shrink: float = 10.0, block_size: int = 2048, device=None):
        self.n_neighbors = check_int("n_neighbors", n_neighbors, 1)
        self.shrink = check_float("shrink", shrink, 0.0)
        self.block_size = check_int("block_size", block_size, 1)
        self.device = device

    def _fit(self, train: Interactions, valid: Interactions | None = None, **kwargs) -> None:
        n_users, n_items, device = train.n_users, train.n_items, self.device_
        if self.n_neighbors > n_items - 1:
            raise ValueError(f"n_neighbors={self.n_neighbors} is more than the {n_items - 1} other items of the "
                             f"catalogue ({n_items} items): choose n_neighbors <= {n_items - 1}")
        user_np, item_np = observed_pairs(train)
        Xt = _sparse_matrix(item_np, user_np, np.ones(len(user_np)), (n_items, n_users), device)  # items × users
        X = _sparse_matrix(user_np, item_np, np.ones(len(user_np)), (n_users, n_items), device)
        norms = torch.sqrt(torch.from_numpy(np.bincount(item_np, minlength=n_items).astype(np.float32))).to(device)
        nbrs, sims = [], []
        for start in range(0, n_items, self.block_size):
            cols = torch.arange(start, min(start + self.block_size, n_items), device=device)
            dense_cols = torch.index_select(X, 1, cols).to_dense()                  # users × block
            co = torch.sparse.mm(Xt, dense_cols)                                    # items × block
            s = co / (norms[:, None] * norms[cols][None, :] + self.shrink).clamp_min(1e-12)
            s[cols, torch.arange(len(cols), device=device)] = -torch.inf            # an item is not its neighbour
            top = torch.topk(s, self.n_neighbors, dim=0)
            nbrs.append(top.indices.T)
            sims.append(top.values.T.clamp_min(0.0))                                # the -inf self entry never wins
        self.neighbors_ = torch.cat(nbrs)
        self.similarities_ = torch.cat(sims)

    def _weights(self) -> torch.Tensor:
        """The sparse ``items × items`` matrix ``W`` with ``W[i, j] = s_ij`` for ``i`` among ``j``'s neighbours."""
        if getattr(self, "_W", None) is None:
            n_items, k = self.neighbors_.shape
            cols = torch.arange(n_items, device=self.neighbors_.device).repeat_interleave(k)
            idx = torch.stack([self.neighbors_.reshape(-1), cols])
            self._W = torch.sparse_coo_tensor(idx, self.similarities_.reshape(-1), (n_items, n_items),
                                              check_invariants=False).coalesce()
        return self._W

    def score_users(self, users) -> torch.Tensor:
        """``X_u W``: for each item, the summed similarity to the user's items among its neighbours."""
        u = self._user_index(users)
        rows = seen_rows(seen_csr(self.train_), u)
        with torch.no_grad():
            return torch.sparse.mm(self._weights().t(), rows.T).T

    def similarity(self, i: int, j: int) -> float:
        """``s_ij`` as stored (0 when ``i`` is not among ``j``'s ``n_neighbors`` nearest items)."""
        self._check_fitted()
        hit = (self.neighbors_[j] == i).nonzero()
        return float(self.similarities_[j, hit[0, 0]]) if len(hit) else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# EASE
# ---------------------------------------------------------------------------------------------------------------------
def ease_memory_bytes(n_items: int, dtype=torch.float32) -> int:
    """Peak bytes of fitting :class:`EASE` on ``n_items`` items: three dense ``n_items × n_items`` matrices (the
    Gram matrix, its inverse and the weights) in ``dtype``."""
    return 3 * int(n_items) ** 2 * torch.finfo(dtype).bits // 8


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class EASE(Recommender):
    """Embarrassingly shallow autoencoder (Steck 2019): an ``items × items`` weight matrix ``B`` with a zero diagonal.

    ``B`` minimises ``|X - XB|² + λ|B|²`` subject to ``diag(B) = 0``; its closed form is ``P = (XᵀX + λI)⁻¹``,
    ``B_ij = -P_ij / P_jj`` (``i ≠ j``). Scores are ``X_u B``.

    Parameters
    ----------
    reg : float
        ``λ`` (> 0). Steck reports values in the hundreds for data sets of ML-20M's size.
    dtype : {"float32", "float64"}
        Precision of the inverse.
    max_bytes : int
        Refuse (ValueError, with the size and an alternative) a catalogue whose dense matrices
        (:func:`ease_memory_bytes`) would exceed this.
    device : str, torch.device or None

    Attributes
    ----------
    weights_ : (n_items, n_items) tensor
        ``B``.

    Used by: Chapter 9 and ``benchmarks/ranking_ml100k.py``.
    """

    fitted_attributes = ("weights_",)

    def __init__(self, reg: float = 300.0, dtype: str = "float32", max_bytes: int = 4 * 2 ** 30, device=None):
        self.reg = check_float("reg", reg, 0.0, strict=True)
        self.dtype = check_choice("dtype", dtype, tuple(_DTYPES))
        self.max_bytes = check_int("max_bytes", max_bytes, 1)
        self.device = device

    def _fit(self, train: Interactions, valid: Interactions | None = None, **kwargs) -> None:
        n_items, dtype = train.n_items, _DTYPES[self.dtype]
        need = ease_memory_bytes(n_items, dtype)
        if need > self.max_bytes:
            raise ValueError(
                f"EASE on {n_items:,} items needs three dense {n_items:,} × {n_items:,} {self.dtype} matrices, "
                f"about {need / 2**30:.1f} GiB (> max_bytes = {self.max_bytes / 2**30:.1f} GiB). Use ItemKNN "
                "(sparse, n_items × n_neighbors) or a factor model (WeightedMF, BPR) instead, keep only the most "
                "popular items, or raise max_bytes if the memory is there")
        user_np, item_np = observed_pairs(train)
        X = _sparse_matrix(user_np, item_np, np.ones(len(user_np)), (train.n_users, n_items), self.device_, dtype)
        G = torch.sparse.mm(X.t().coalesce(), X.to_dense())
        G.diagonal().add_(self.reg)
        P = torch.linalg.inv(G)
        del G
        B = P / (-P.diagonal())[None, :]
        B.diagonal().zero_()
        self.weights_ = B

    def score_users(self, users) -> torch.Tensor:
        """``X_u B`` for every item."""
        u = self._user_index(users)
        rows = seen_rows(seen_csr(self.train_), u, self.weights_.dtype)
        with torch.no_grad():
            return (rows @ self.weights_).float()


# ---------------------------------------------------------------------------------------------------------------------
# Confidence-weighted ALS (Hu, Koren & Volinsky 2008)
# ---------------------------------------------------------------------------------------------------------------------
CONFIDENCES = ("binary", "rating")


class ConfidenceMF(FactorMixin, Recommender):
    """Implicit-feedback matrix factorization with Hu, Koren & Volinsky's (2008) confidence weights, fitted by ALS.

    Minimises ``Σ_{u,i} c_ui (p_ui - x_u·y_i)² + reg (Σ|x_u|² + Σ|y_i|²)`` over *all* cells, with preference
    ``p_ui = 1`` on observed cells (0 elsewhere) and confidence ``c_ui = 1 + alpha · r_ui`` there (1 elsewhere):
    ``r_ui`` is the rating (``confidence="rating"``) or 1 (``"binary"``: every interaction equally sure, the
    weighting of :class:`mfkit.implicit.WeightedMF` up to a factor). Each half-sweep solves, per row, the normal
    equations ``(YᵀY + Yᵀ(C_u - I)Y + reg·I) x_u = YᵀC_u p_u`` by :func:`mfkit.als.solve_rows` (weights
    ``c_ui``, unobserved weight 1), batched, so no row is visited in Python.

    Parameters
    ----------
    n_factors : int
    alpha : float
        Confidence slope (Hu et al. use 40 on play counts).
    reg : float
        L2 penalty.
    confidence : {"binary", "rating"}
    n_epochs : int
        ALS sweeps (users, then items); with ``valid`` the best sweep is kept.
    init_scale : float
    device, random_state, show_progress

    Used by: Chapter 9 (what counts as a positive, and how sure we are of it).
    """

    fitted_attributes = ("user_factors_", "item_factors_")

    @property
    def requires_ratings(self) -> bool:
        """Ratings are needed for ``confidence="rating"`` only (checked by ``fit`` before training)."""
        return self.confidence == "rating"

    def __init__(self, n_factors: int = 32, alpha: float = 10.0, reg: float = 10.0, confidence: str = "binary",
                 n_epochs: int = 10, init_scale: float = 0.1, device=None,
                 random_state: int = 0, show_progress: bool | None = None):
        self.n_factors = check_int("n_factors", n_factors, 1)
        self.alpha = check_float("alpha", alpha, 0.0)
        self.reg = check_float("reg", reg, 0.0, strict=True)
        self.confidence = check_choice("confidence", confidence, CONFIDENCES)
        self.n_epochs = check_int("n_epochs", n_epochs, 1)
        self.init_scale = check_float("init_scale", init_scale, 0.0)
        self.device, self.random_state = device, check_int("random_state", random_state, None)
        self.show_progress = show_progress

    def _confidence_values(self, train: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.confidence == "binary":
            user_np, item_np = observed_pairs(train)
            return user_np, item_np, np.full(len(user_np), self.alpha)
        if train.rating is None:
            raise ValueError("confidence='rating' needs Interactions with ratings; use confidence='binary'")
        csr = train.to_csr("rating", dtype=np.float64)
        csr.sort_indices()
        user_np = np.repeat(np.arange(train.n_users), np.diff(csr.indptr))
        return user_np, csr.indices.astype(np.int64), self.alpha * csr.data

    def _fit(self, train: Interactions, valid: Interactions | None, k: int = 10, patience: int | None = None):
        n_users, n_items, dim, device = train.n_users, train.n_items, self.n_factors, self.device_
        user_np, item_np, extra = self._confidence_values(train)  # extra = c - 1 on observed cells
        by_user = als.Observations(user_np, item_np, n_users, n_items, device=device)
        by_item = als.Observations(item_np, user_np, n_items, n_users, device=device)
        confidence = torch.from_numpy(1.0 + extra).float().to(device)   # a = c_ui on observed cells, 1 elsewhere
        gen = torch.Generator().manual_seed(int(self.random_state))
        U = (torch.randn(n_users, dim, generator=gen) * self.init_scale).to(device)
        V = (torch.randn(n_items, dim, generator=gen) * self.init_scale).to(device)
        self.user_factors_, self.item_factors_ = U, V
        user_reg = torch.full((n_users,), self.reg, device=device)
        item_reg = torch.full((n_items,), self.reg, device=device)

        def sweep(epoch):  # (YᵀY + Yᵀ(C_u − I)Y + reg·I) x_u = YᵀC_u p_u, by the one ALS solver
            als.solve_rows(V, by_user, U, user_reg, unobserved_weight=1.0, weights=confidence)
            als.solve_rows(U, by_item, V, item_reg, unobserved_weight=1.0, weights=confidence)

        def loss(epoch):  # mean over cells of the weighted squared error, plus the penalty per cell
            pred_obs = (U[torch.from_numpy(user_np).to(device)] * V[torch.from_numpy(item_np).to(device)]).sum(1)
            conf = torch.from_numpy(extra).float().to(device)
            all_sq = torch.trace((U.T @ U) @ (V.T @ V))
            total = all_sq + ((1 + conf) * (1 - pred_obs) ** 2 - pred_obs ** 2).sum()
            total = total + self.reg * (U.square().sum() + V.square().sum())
            return float(total) / (n_users * n_items)

        def restore(best):
            U.copy_(best[0])
            V.copy_(best[1])

        evaluate = None
        if valid is not None:
            evaluate = lambda: ranking_metrics(self, train, valid, k=k, device=device)["ndcg"]  # noqa: E731
        self.history_ = epoch_loop(sweep, self.n_epochs, evaluate=evaluate, patience=patience,
                                   snapshot=lambda: (U.clone(), V.clone()), restore=restore, measure=loss,
                                   device=device, show_progress=self.show_progress, desc="ConfidenceMF als",
                                   unit="sweep", divergence_hint="Raise reg or lower alpha.")

    def score_users(self, users) -> torch.Tensor:
        """``x_u · y_i`` for every item."""
        u = self._user_index(users)
        with torch.no_grad():
            return self.user_factors_[u] @ self.item_factors_.T


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation: sampled metrics and measures beyond accuracy
# ---------------------------------------------------------------------------------------------------------------------
def sampled_ranking_metrics(model, train: Interactions, test: Interactions, n_negatives: int = 100, k: int = 10,
                            seed: int = 0, device=None, n_draws: int = 1) -> dict:
    """Hit rate and nDCG at ``k`` when each held-out item is ranked against ``n_negatives`` sampled items only.

    The protocol of the NCF paper (He et al. 2017): for every test row ``(u, i)``, draw ``n_negatives`` items
    uniformly among those ``u`` has in neither ``train`` nor ``test``, and rank ``i`` among the ``n_negatives + 1``.
    Ties are split evenly (the positive's rank counts half of the negatives scored equal to it). Krichene & Rendle
    (2020) show this estimate is biased and can order models differently from the full ranking of
    :func:`mfkit.metrics.ranking_metrics`.

    Parameters
    ----------
    model : object with ``score_users``
    train, test : Interactions
        One index space; ``test`` usually holds one item per user (leave one out).
    n_negatives : int
        Sampled negatives per test row (NCF: 100).
    k : int
        Cut-off.
    seed : int
        Seed of the negatives (drawn on the CPU).
    device : optional
        Where scores are gathered (None: CUDA when available).
    n_draws : int
        Independent draws of the negatives (the scores are computed once); the figures are means over the draws.

    Returns
    -------
    dict
        ``{"hit_rate", "ndcg", "n_rows"}``: means over the test rows (and the draws); with ``n_draws > 1`` also
        ``"hit_rate_draws"`` and ``"ndcg_draws"``, one value per draw.
    """
    from .utils import get_device

    device = get_device(device)
    n_negatives, k = check_int("n_negatives", n_negatives, 1), check_int("k", k, 1)
    n_draws = check_int("n_draws", n_draws, 1)
    if len(test) == 0:
        raise ValueError("test has no interactions")
    if train.n_items != test.n_items or train.n_users != test.n_users:
        raise ValueError("train and test must share one index space (split one Interactions object)")
    n_items = train.n_items
    both = np.concatenate([train.user.astype(np.int64) * n_items + train.item,
                           test.user.astype(np.int64) * n_items + test.item])
    keys = torch.from_numpy(np.unique(both))
    seen = np.bincount(keys.numpy() // n_items, minlength=train.n_users)
    if (seen[test.user] + n_negatives > n_items).any():
        raise ValueError(f"n_negatives={n_negatives} is more than the unobserved items of some test user")
    gen = torch.Generator().manual_seed(int(seed))
    users = torch.from_numpy(test.user.astype(np.int64))
    distinct, inverse = torch.unique(users, return_inverse=True)
    with torch.no_grad():
        scores = model.score_users(distinct.to(device)).to(device, torch.float32)[inverse.to(device)]
    pos = scores.gather(1, torch.from_numpy(test.item.astype(np.int64)).to(device)[:, None])
    hits, ndcgs = [], []
    for _ in range(n_draws):
        neg = sample_negatives(users.repeat_interleave(n_negatives), keys, n_items, generator=gen)
        neg_scores = scores.gather(1, neg.reshape(len(users), n_negatives).to(device))
        rank = (neg_scores > pos).sum(1).double() + 0.5 * (neg_scores == pos).sum(1).double()
        hit = (rank < k).double()
        hits.append(float(hit.mean()))
        ndcgs.append(float((hit / torch.log2(rank.floor() + 2.0)).mean()))
    out = {"hit_rate": float(np.mean(hits)), "ndcg": float(np.mean(ndcgs)), "n_rows": int(len(users))}
    if n_draws > 1:
        out.update(hit_rate_draws=hits, ndcg_draws=ndcgs)
    return out


def _gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0: all equal, towards 1: concentrated on few)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def beyond_accuracy(model, train: Interactions, users=None, k: int = 10, device=None) -> dict:
    """What a model's top-``k`` lists look like beyond their accuracy.

    Parameters
    ----------
    model : fitted model with ``score_users``
    train : Interactions
        Its training data (seen items are excluded from the lists; popularity is counted here).
    users : array of dense user indices, optional
        Default: every user with a training interaction.
    k : int
        List length.

    Returns
    -------
    dict
        ``coverage``: share of the catalogue that appears in at least one list; ``mean_popularity``: mean share of
        training users who interacted with a recommended item; ``popular_overlap``: mean share of each list that is
        also in the user's most-popular-first list (1: the model recommends exactly what the popularity baseline
        does); ``gini``: Gini index of how often each item is recommended (1: all lists the same few items).
    """
    n_users, n_items = train.n_users, train.n_items
    user_np, item_np = observed_pairs(train)
    if users is None:
        users = np.unique(user_np)
    users = np.asarray(users, dtype=np.int64)
    pop = item_popularity(train).astype(np.float64)
    top, _ = top_k_items(model, train, users, k=k, device=device)
    top = top.cpu().numpy()
    pop_scores = torch.from_numpy(pop).float()
    pop_top, _ = top_k_items(lambda u: pop_scores.expand(len(u), -1), train, users, k=k, device="cpu")
    pop_top = pop_top.numpy()
    overlap = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(top, pop_top)])
    rec_counts = np.bincount(top.reshape(-1), minlength=n_items)
    return {"coverage": float((rec_counts > 0).mean()), "mean_popularity": float(pop[top].mean() / n_users),
            "popular_overlap": float(overlap), "gini": _gini(rec_counts)}


def fit_and_score(models: dict, train: Interactions, test: Interactions, k: int = 10, device=None,
                  sampled: bool = False, seed: int = 0):
    """Fit every model of ``models`` (``{name: unfitted model}``, fitted in place) on ``train`` and rank ``test``.

    Returns a DataFrame indexed by name with nDCG, precision, recall and hit rate at ``k`` over the full catalogue
    (:func:`mfkit.metrics.ranking_metrics`) and ``fit_s``; with ``sampled``, also ``sampled_hr`` and
    ``sampled_ndcg`` (:func:`sampled_ranking_metrics`, 100 negatives, ``seed``).
    """
    import time

    import pandas as pd

    rows = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - t0
        m = ranking_metrics(model, train, test, k=k, device=device)
        row = {key: m[key] for key in ("ndcg", "precision", "recall", "hit_rate")}
        if sampled:
            s = sampled_ranking_metrics(model, train, test, k=k, seed=seed, device=device)
            row.update(sampled_hr=s["hit_rate"], sampled_ndcg=s["ndcg"])
        rows[name] = {**row, "fit_s": fit_s}
    return pd.DataFrame(rows).T
