"""Explicit-rating models: baselines, bias-centred matrix factorization (three ways to fit) and Bayesian MF.

Every model predicts a rating as

.. math:: \\hat r_{ui} = \\mu + b_u + b_i + p_u^\\top q_i

with the global mean :math:`\\mu`, user and item biases and (for the factor models) user and item factors. Tables are
sized by the number of distinct ids of the data (``Interactions.n_users``/``n_items``), not by the largest raw id.
Splits keep the full data's index maps, so a model fitted on a training part knows users and items without a single
training rating: their biases and factors are exactly zero, and their predictions fall back to the global mean plus
whatever bias is known (protocol E1).

Used by: Chapter 5 (baselines, :class:`BiasedMF` with autograd and ALS, :class:`BayesianMF`), Chapter 6 (the
SVD-style SGD of :class:`BiasedMF`, :func:`netflix_probe_rmse`), and ``benchmarks/explicit_ml100k.py`` (protocol E1).

References
----------
- Y. Koren, "Factorization meets the neighborhood", KDD 2008 (baseline predictors, SVD++).
- Y. Koren, "Factor in the neighbors: scalable and accurate collaborative filtering", ACM TKDD 4(1), 2010
  (damped-mean baseline predictors).
- S. Funk, "Netflix update: try this at home", 2006, and Y. Koren, R. Bell, C. Volinsky, "Matrix factorization
  techniques for recommender systems", IEEE Computer 42(8), 2009 (the SGD rule).
- Y. Zhou, D. Wilkinson, R. Schreiber, R. Pan, "Large-scale parallel collaborative filtering for the Netflix
  Prize", AAIM 2008 (ALS with per-rating weighted regularisation).
- R. Salakhutdinov, A. Mnih, "Bayesian probabilistic matrix factorization using Markov chain Monte Carlo", ICML
  2008 (BPMF).
- S. Rendle, L. Zhang, Y. Koren, "On the difficulty of evaluating baselines", arXiv:1905.01395, 2019 (Bayesian
  SVD++ and the flipped model: ``BayesianMF(implicit=...)``, Chapter 11).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import als
from .base import (RatingMixin, Recommender, check_choice, check_float, check_int, check_interactions,
                   rating_errors)
from .data import Interactions, load_netflix, netflix_sample_dir, probe_split, read_probe
from .training import DivergenceError, check_optimizer, epoch_loop, minibatches, train_loop
from .utils import cpu_threads, get_device

__all__ = ["GlobalMean", "BiasBaseline", "BiasedMF", "BayesianMF", "evaluate",
           "netflix_probe_rmse", "default_netflix_model", "DivergenceError"]

_DIVERGENCE_HINT = "Lower the learning rate (lr) or raise the regularisation (reg)."


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


evaluate = rating_errors  # RMSE and MAE on a test part: the name Chapters 5-6 and the benchmarks use


def _zeros_like_model(model: RatingMixin, train: Interactions, device, dtype=torch.float32, k: int = 0) -> None:
    model.user_bias_ = torch.zeros(train.n_users, dtype=dtype, device=device)
    model.item_bias_ = torch.zeros(train.n_items, dtype=dtype, device=device)
    model.user_factors_ = torch.zeros(train.n_users, k, dtype=dtype, device=device)
    model.item_factors_ = torch.zeros(train.n_items, k, dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------------------------
class GlobalMean(RatingMixin, Recommender):
    """Predict the mean training rating for every pair: the first rung of Chapter 5's ladder.

    Used by: Chapter 5, ``benchmarks/explicit_ml100k.py``.
    """

    def __init__(self, device=None):
        self.device = device

    def _fit(self, train: Interactions, valid: Interactions | None = None) -> None:
        self.global_mean_ = float(np.mean(train.rating, dtype=np.float64))
        _zeros_like_model(self, train, self.device_)


class BiasBaseline(RatingMixin, Recommender):
    """Baseline predictor :math:`\\mu + b_u + b_i` with damped (shrunk) means (Koren 2008; Koren 2010, Sec. 2.1).

    Item biases first, then user biases from the residuals:

    .. math:: b_i = \\frac{\\sum_{u \\in R(i)} (r_{ui} - \\mu)}{\\lambda_i + |R(i)|}, \\qquad
              b_u = \\frac{\\sum_{i \\in R(u)} (r_{ui} - \\mu - b_i)}{\\lambda_u + |R(u)|}.

    The damping term pulls the bias of an item with few ratings towards zero (the global mean). With ``n_iter > 1``
    the two steps alternate, each recomputing one side from the residuals of the other (coordinate descent on the
    regularised least-squares objective, as Surprise's ``BaselineOnly`` does with ALS).

    Used by: Chapter 5, ``benchmarks/explicit_ml100k.py``.

    Parameters
    ----------
    reg_user, reg_item : float
        Damping terms :math:`\\lambda_u`, :math:`\\lambda_i`. Koren (2010) uses 10 and 25 on Netflix; on ML-100k the
        E1 validation part prefers less damping, and 5 and 5 are within 0.0001 of its best.
    n_iter : int
        Alternations; 1 is the one-pass formula above.
    device : str, torch.device or None
    """

    def __init__(self, reg_user: float = 5.0, reg_item: float = 5.0, n_iter: int = 1, device=None):
        self.reg_user, self.reg_item = check_float("reg_user", reg_user), check_float("reg_item", reg_item)
        self.n_iter, self.device = check_int("n_iter", n_iter), device

    def _fit(self, train: Interactions, valid: Interactions | None = None) -> None:
        dev = self.device_
        u, i, r = train.to_tensors(dev)
        r = r.double()
        mu = r.mean()
        n_u = torch.bincount(u, minlength=train.n_users).double()
        n_i = torch.bincount(i, minlength=train.n_items).double()
        b_u = torch.zeros(train.n_users, dtype=torch.float64, device=dev)
        b_i = torch.zeros(train.n_items, dtype=torch.float64, device=dev)
        for _ in range(int(self.n_iter)):
            # each side from the residual of everything else: never from ratings already centred twice
            b_i = torch.zeros_like(b_i).index_add_(0, i, r - mu - b_u[u]) / (self.reg_item + n_i).clamp(min=1e-12)
            b_u = torch.zeros_like(b_u).index_add_(0, u, r - mu - b_i[i]) / (self.reg_user + n_u).clamp(min=1e-12)
        self.global_mean_ = float(mu)
        _zeros_like_model(self, train, dev)
        self.user_bias_, self.item_bias_ = b_u.float(), b_i.float()


# ---------------------------------------------------------------------------------------------------------------------
# row-wise least squares shared by ALS and the Gibbs sampler
# ---------------------------------------------------------------------------------------------------------------------
class _RowGroups:
    """Ratings grouped by one side (users or items), for batched per-row normal equations without a Python loop.

    For every row ``a`` (a user, say) it computes ``sum_j w_aj x_j x_j^T`` and ``sum_j w_aj x_j y_aj`` over the
    row's ratings with sparse × dense products, in chunks of rows so that the ``(rows, d, d)`` Gram stack stays
    within a memory budget (Netflix has 480k users).
    """

    def __init__(self, row: torch.Tensor, col: torch.Tensor, n_rows: int, n_cols: int,
                 max_elements: int = 2 ** 26):
        order = torch.argsort(row, stable=True)
        # int32 positions and indices where they fit: half the memory of int64 at Netflix size (Chapter 8); the
        # sparse CSR products take int32 indices natively
        small = len(order) < 2 ** 31 and n_cols < 2 ** 31
        index_dtype = torch.int32 if small else torch.long
        self.col = col[order].to(index_dtype)  # (the sorted rows are not kept: indptr says where each row starts)
        self.order = order.to(index_dtype)
        del order
        self.n_rows, self.n_cols = n_rows, n_cols
        self.counts = torch.bincount(row, minlength=n_rows)
        self.indptr = torch.zeros(n_rows + 1, dtype=index_dtype, device=row.device)
        self.indptr[1:] = torch.cumsum(self.counts, 0)
        self.max_elements = max_elements

    def chunks(self, d: int):
        step = max(1, self.max_elements // max(1, d * d))
        for a in range(0, self.n_rows, step):
            yield a, min(a + step, self.n_rows)

    def _sparse(self, a: int, b: int, values: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Rows ``a..b`` as a CSR matrix with ``values`` (in this object's order), or ones when ``values`` is None."""
        lo, hi = int(self.indptr[a]), int(self.indptr[b])
        vals = torch.ones(hi - lo, dtype=like.dtype, device=like.device) if values is None else values[lo:hi]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch flags sparse CSR as beta; the products used here are stable
            return torch.sparse_csr_tensor(self.indptr[a:b + 1] - lo, self.col[lo:hi], vals,
                                           size=(b - a, self.n_cols))

    def normal_equations(self, a: int, b: int, x: torch.Tensor, y: torch.Tensor,
                         outer: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Gram ``(b-a, d, d)`` and right-hand side ``(b-a, d)`` of rows ``a..b``; ``y`` in this object's order."""
        d = x.shape[1]
        if outer is None:
            outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), d * d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gram = (self._sparse(a, b, None, x) @ outer).reshape(b - a, d, d)
            rhs = self._sparse(a, b, y, x) @ x
        return gram, rhs


# ---------------------------------------------------------------------------------------------------------------------
# bias-centred matrix factorization
# ---------------------------------------------------------------------------------------------------------------------
class BiasedMF(RatingMixin, Recommender):
    """Bias-centred matrix factorization :math:`\\mu + b_u + b_i + p_u^\\top q_i`, fitted three ways.

    All three minimise the same objective, the sum over training ratings of

    .. math:: (r_{ui} - \\hat r_{ui})^2 + \\lambda (\\lVert p_u\\rVert^2 + \\lVert q_i\\rVert^2)
              + \\lambda_b (b_u^2 + b_i^2),

    i.e. regularisation counted once per rating, as the per-rating SGD rule implies (for ALS this is the weighted-
    lambda regularisation of Zhou et al. 2008). :math:`\\mu` is the training mean and stays fixed.

    - ``method="sgd"``: the SVD-style rule of Funk (2006) and Koren, Bell & Volinsky (2009), without autograd. For each
      rating, with :math:`e = r - \\hat r` computed from the current values,
      ``b_u += lr (e - reg_bias b_u)``, ``b_i += lr (e - reg_bias b_i)``, ``p_u += lr (e q_i - reg p_u)``,
      ``q_i += lr (e p_u - reg q_i)`` (``p_u`` and ``q_i`` updated simultaneously, from their old values, as in
      Surprise). A minibatch of ``batch_size`` ratings computes all its updates from the same values and adds them
      per row (scatter); with ``batch_size=1`` this is exactly the per-rating loop (one rating at a time, in the
      shuffled order). That is also the slowest setting — thousands of tiny tensor operations per epoch — so on
      real data use ``batch_size`` of 256 or more (the updates of one item within a batch then add up, so very large
      batches need a smaller ``lr``).
    - ``method="autograd"``: minibatches of the mean of the per-rating objective above, minimised by any torch
      optimizer by name (``optimizer``) through :func:`mfkit.training.train_loop`; index tensors live on the device
      and batches are index slices (:func:`mfkit.training.minibatches`), no DataLoader. Regularisation touches the
      rows in the batch only.
    - ``method="als"``: alternating least squares with biases. With items fixed, each user's ``[b_u, p_u]`` solves
      a ``(k+1)``-dimensional ridge regression on ``[1, q_i]``; all users are solved at once by
      :func:`mfkit.als.solve_rows` (batched Cholesky, or ``cg_steps`` conjugate-gradient steps with
      ``als_method="cg"``), then the items likewise. ``lr``, ``batch_size`` and ``optimizer`` are unused.

    On the CPU, ``sgd`` and ``autograd`` run with one torch thread (restored afterwards): their epochs are thousands
    of small gathers and scatters, which extra threads only slow down.

    Used by: Chapter 5 (all three methods), Chapter 6 (``method="sgd"``), ``benchmarks/explicit_ml100k.py``.

    Parameters
    ----------
    n_factors : int
        Latent dimension ``k``.
    reg : float
        :math:`\\lambda` on the factors.
    reg_bias : float or None
        :math:`\\lambda_b` on the biases; ``None`` uses ``reg``.
    lr : float
        Learning rate (``sgd`` and ``autograd``).
    n_epochs : int
        Passes over the training ratings (``sgd``/``autograd``) or ALS sweeps (one sweep solves users then items).
    method : {"sgd", "autograd", "als"}
    batch_size : int
        Ratings per update (``sgd``/``autograd``).
    optimizer : str
        Name of a torch optimizer for ``autograd`` (see :data:`mfkit.training.OPTIMIZERS`).
    init_scale : float
        Factors start as ``init_scale * N(0, 1)``; biases start at zero.
    device : str, torch.device or None
        ``None`` picks CUDA when available.
    random_state : int
        Seeds the initialisation and the shuffling.
    show_progress : bool or None
        Progress bar over epochs; ``None`` follows ``$MFKIT_PROGRESS``.
    dtype : torch.dtype
        Floating type of the parameters (float64 is used by the exactness test).
    shuffle : bool
        Visit ratings in a fresh random order each epoch (``sgd``/``autograd``); ``False`` keeps the data order.
    als_method : {"cholesky", "cg"}
        The solver of ``method="als"`` (see :mod:`mfkit.als`): exact batched Cholesky, or ``cg_steps``
        conjugate-gradient steps warm-started from the current values (``O(nnz·k)`` a step).
    cg_steps : int
        Conjugate-gradient steps per half-sweep (``als_method="cg"``).

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : torch.Tensor of shape (n_users,), (n_items,)
    user_factors_, item_factors_ : torch.Tensor of shape (n_users, k), (n_items, k)
        Rows of users/items without training ratings are exactly zero.
    history_ : mfkit.training.History
        Per epoch: ``loss`` (training RMSE), ``metric`` (validation RMSE, clipped to the training rating range, when
        ``valid`` is given) and cumulative ``seconds`` of training.
    """

    METHODS = ("sgd", "autograd", "als")

    def __init__(self, n_factors: int = 50, reg: float = 0.05, reg_bias: float | None = None, lr: float = 0.01,
                 n_epochs: int = 20, method: str = "sgd", batch_size: int = 1, optimizer: str = "adam",
                 init_scale: float = 0.1, device=None, random_state: int = 0, show_progress: bool | None = None,
                 dtype: torch.dtype = torch.float32, shuffle: bool = True, als_method: str = "cholesky",
                 cg_steps: int = 3):
        self.method = check_choice("method", method, self.METHODS)
        self.als_method = check_choice("als_method", als_method, als.SOLVERS)
        self.cg_steps = check_int("cg_steps", cg_steps)
        self.n_factors, self.n_epochs = check_int("n_factors", n_factors, 0), check_int("n_epochs", n_epochs, 0)
        self.reg = check_float("reg", reg)
        self.reg_bias = None if reg_bias is None else check_float("reg_bias", reg_bias)
        self.lr, self.batch_size = check_float("lr", lr, strict=True), check_int("batch_size", batch_size)
        check_optimizer(optimizer)
        self.optimizer, self.init_scale = optimizer, check_float("init_scale", init_scale)
        self.device, self.random_state = device, check_int("random_state", random_state, None)
        self.show_progress, self.dtype, self.shuffle = show_progress, dtype, bool(shuffle)

    # -- fitting --------------------------------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, patience: int | None = None) -> None:
        dev = self.device_
        u, i, r = train.to_tensors(dev)
        r = r.to(self.dtype)
        self.global_mean_ = float(np.mean(train.rating, dtype=np.float64))
        self._rating_range = (float(train.rating.min()), float(train.rating.max()))
        k = int(self.n_factors)
        # initial values drawn on the CPU so that a seed gives the same start on every device
        gen = torch.Generator().manual_seed(int(self.random_state))
        p = (torch.randn(train.n_users, k, generator=gen, dtype=torch.float64) * self.init_scale).to(dev, self.dtype)
        q = (torch.randn(train.n_items, k, generator=gen, dtype=torch.float64) * self.init_scale).to(dev, self.dtype)
        seen_u = torch.bincount(u, minlength=train.n_users) > 0
        seen_i = torch.bincount(i, minlength=train.n_items) > 0
        p[~seen_u] = 0  # no training rating: exactly zero, so predictions fall back to the known parts
        q[~seen_i] = 0
        self.user_factors_, self.item_factors_ = p, q
        self.user_bias_ = torch.zeros(train.n_users, dtype=self.dtype, device=dev)
        self.item_bias_ = torch.zeros(train.n_items, dtype=self.dtype, device=dev)
        self._shuffle_gen = torch.Generator().manual_seed(int(self.random_state) + 1)
        valid_t = None
        if valid is not None:
            vu, vi, vr = valid.to_tensors(dev)
            valid_t = (vu, vi, vr.double())
        if self.method == "autograd":
            with cpu_threads(1, dev):  # thousands of small scatters: one thread is fastest
                self._fit_autograd(u, i, r, valid_t, patience, dev)
        elif self.method == "sgd":
            with cpu_threads(1, dev):  # thousands of small scatters: one thread is fastest
                self._run_epochs(lambda epoch: self._sgd_epoch(u, i, r, dev), valid_t, patience, dev,
                                 "biased MF (SGD)")
        else:
            sides = self._als_setup(train, dev)
            self._run_epochs(lambda epoch: self._als_sweep(u, i, r, sides), valid_t, patience, dev,
                             "biased MF (ALS)", measure=lambda epoch: self._train_rmse(u, i, r))

    def _valid_rmse(self, valid_t) -> float:
        vu, vi, vr = valid_t
        pred = self.predict(vu, vi).double().clamp(*self._rating_range)
        return float(torch.sqrt(torch.mean((pred - vr) ** 2)))

    def _train_rmse(self, u, i, r, block: int = 1 << 22) -> float:
        # in blocks: at 100M ratings one gather of (n, k) factors would take gigabytes (Chapter 8)
        squared = sum(float(((self.predict(u[s:s + block], i[s:s + block]).double() - r[s:s + block].double())
                             ** 2).sum()) for s in range(0, len(r), block))
        return (squared / max(len(r), 1)) ** 0.5

    def _params(self) -> list[torch.Tensor]:
        return [self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_]

    def _run_epochs(self, epoch_fn: Callable[[int], float], valid_t, patience, dev, desc: str,
                    measure: Callable[[int], float] | None = None) -> None:
        """The hand-written methods (sgd, als) through :func:`mfkit.training.epoch_loop`."""

        def restore(best):
            self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_ = best

        self.history_ = epoch_loop(
            epoch_fn, self.n_epochs, evaluate=None if valid_t is None else lambda: self._valid_rmse(valid_t),
            higher_is_better=False, patience=patience, snapshot=lambda: [t.clone() for t in self._params()],
            restore=restore, measure=measure, device=dev, show_progress=self.show_progress, desc=desc,
            context=f" of {desc} (lr={self.lr}, reg={self.reg})", divergence_hint=_DIVERGENCE_HINT)

    # -- method="sgd" ------------------------------------------------------------------------------------------------
    def _sgd_epoch(self, u, i, r, dev) -> float:
        lr, reg = self.lr, self.reg
        reg_b = self.reg if self.reg_bias is None else self.reg_bias
        bu, bi, p, q = self._params()
        n, size = len(r), int(self.batch_size)
        # One gather of the epoch's order, then every batch is a slice (a view): the per-batch Python and kernel
        # launches are what an epoch of small batches costs, so each batch runs as few operations as possible.
        order = minibatches(n, n, dev, generator=self._shuffle_gen, shuffle=self.shuffle)
        if n and self.shuffle:
            u, i, r = u[order[0]], i[order[0]], r[order[0]]
        centred = r - self.global_mean_
        errors = torch.empty_like(centred)
        k = p.shape[1]
        for start in range(0, n, size):
            uu, ii = u[start:start + size], i[start:start + size]
            # index_select and scatter_add_ rather than p[uu] and index_add_: the same values, several times
            # faster on a CPU for rows of k floats (index_add_ adds row by row)
            bu_b, bi_b = bu.index_select(0, uu), bi.index_select(0, ii)
            pu, qi = p.index_select(0, uu), q.index_select(0, ii)
            # e = r − (μ + b_u + b_i + p_u·q_i)
            err = torch.sub(centred[start:start + size], torch.linalg.vecdot(pu, qi)).sub_(bu_b).sub_(bi_b)
            errors[start:start + size] = err
            # all updates of the batch come from the values before the batch, then add up per row:
            # b += lr (e − λ_b b), p_u += lr e q_i − lr λ p_u, q_i += lr e p_u − lr λ q_i
            bu.index_add_(0, uu, torch.add(err, bu_b, alpha=-reg_b), alpha=lr)
            bi.index_add_(0, ii, torch.add(err, bi_b, alpha=-reg_b), alpha=lr)
            step = err.mul_(lr)[:, None]
            p.scatter_add_(0, uu[:, None].expand(-1, k), torch.mul(qi, step).add_(pu, alpha=-lr * reg))
            q.scatter_add_(0, ii[:, None].expand(-1, k), pu.mul_(step).add_(qi, alpha=-lr * reg))
        # RMSE of the errors met during the pass (before each update): free, and NaN as soon as anything diverges
        return float(torch.sqrt((errors.double() ** 2).sum() / n))

    # -- method="als" ------------------------------------------------------------------------------------------------
    def _penalty(self, reg: float | None, dtype, dev) -> torch.Tensor:
        """``diag(reg_bias, reg, ..., reg)``, per rating (weighted lambda, Zhou et al. 2008)."""
        penalty = torch.full((int(self.n_factors) + 1,), float(self.reg if reg is None else reg), dtype=dtype,
                             device=dev)
        penalty[0] = self.reg if self.reg_bias is None else self.reg_bias
        return penalty

    def _als_setup(self, train: Interactions, dev) -> tuple:
        """Each side's observations for :func:`mfkit.als.solve_rows` and its penalty ``n_u · diag(...)``."""
        penalty = self._penalty(None, self.dtype, dev)
        layout = dict(method=self.als_method, budget=max(1, 2 ** 22 // len(penalty)), device=dev, dtype=self.dtype)
        sides = []
        for rows, cols, n_rows, n_cols in ((train.user, train.item, train.n_users, train.n_items),
                                           (train.item, train.user, train.n_items, train.n_users)):
            obs = als.Observations(rows, cols, n_rows, n_cols, **layout)
            sides.append((obs, obs.counts.to(self.dtype)[:, None] * penalty))
        return tuple(sides)

    def _solve_side(self, obs, lam, col_idx, r, theta, other_bias, other_factors) -> None:
        """Every row's ``theta = [bias, factors]`` (updated in place; the warm start of CG) with the other side
        fixed: a ridge regression of ``r - μ - b_j`` on ``[1, q_j]``, by the one ALS solver."""
        x = torch.cat([torch.ones(len(other_bias), 1, dtype=other_factors.dtype, device=other_factors.device),
                       other_factors], 1)
        y = other_bias[col_idx].neg_().add_(r).sub_(self.global_mean_)
        als.solve_rows(x, obs, theta, lam, targets=y, cg_steps=self.cg_steps)

    def _als_half(self, side, col_idx, r, own_bias, own_factors, other_bias, other_factors):
        """One half of an ALS sweep: every row's [bias, factors] with the other side fixed."""
        theta = torch.cat([own_bias[:, None], own_factors], 1)
        self._solve_side(*side, col_idx, r, theta, other_bias, other_factors)
        own_bias.copy_(theta[:, 0])
        own_factors.copy_(theta[:, 1:])

    def fold_in(self, item, owner, n_users, rating=None, *, reg=None):
        """The ALS user step of this model (in float64) for new users: ridge regression of their ratings
        ``r - μ - b_i`` on ``[1, q_i]`` with the per-rating penalty ``n_u · diag(reg_bias, reg, ..., reg)``."""
        if rating is None:
            raise ValueError("BiasedMF predicts ratings: fold-in needs the new users' ratings")
        Q, bi = self.item_factors_.detach().double(), self.item_bias_.detach().double()
        obs = als.Observations(owner, item, n_users, len(Q), device=Q.device, dtype=Q.dtype)
        theta = Q.new_zeros(n_users, Q.shape[1] + 1)
        lam = obs.counts.double()[:, None] * self._penalty(reg, Q.dtype, Q.device)
        self._solve_side(obs, lam, torch.from_numpy(item).to(Q.device), torch.as_tensor(rating, device=Q.device),
                         theta, bi, Q)
        dt = self.item_factors_.dtype
        return theta[:, 1:].to(dt), theta[:, 0].to(dt)

    def _als_sweep(self, u, i, r, sides) -> None:
        bu, bi, p, q = self._params()
        self._als_half(sides[0], i, r, bu, p, bi, q)
        self._als_half(sides[1], u, r, bi, q, bu, p)

    # -- method="autograd" --------------------------------------------------------------------------------------------
    def _fit_autograd(self, u, i, r, valid_t, patience, dev) -> None:
        reg = self.reg
        reg_b = self.reg if self.reg_bias is None else self.reg_bias
        mu = self.global_mean_
        params = [torch.nn.Parameter(t) for t in self._params()]
        bu, bi, p, q = params
        squared = []

        def loss_fn(idx):
            uu, ii = u[idx], i[idx]
            pu, qi, bu_b, bi_b = p[uu], q[ii], bu[uu], bi[ii]
            err = r[idx] - (mu + bu_b + bi_b + (pu * qi).sum(1))
            squared.append((err.detach().double() ** 2).sum())
            # the mean over the batch of the per-rating objective: regularisation of the rows in the batch only
            return ((err ** 2).mean() + reg * ((pu ** 2).sum(1) + (qi ** 2).sum(1)).mean()
                    + reg_b * (bu_b ** 2 + bi_b ** 2).mean())

        epoch_rmse = []

        def on_epoch_end(epoch):
            epoch_rmse.append(float(torch.sqrt(torch.stack(squared).sum() / len(r))))
            squared.clear()

        def batches(epoch):
            return minibatches(len(r), int(self.batch_size), dev, generator=self._shuffle_gen, shuffle=self.shuffle)

        def current_valid():
            self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_ = [t.detach() for t in params]
            return self._valid_rmse(valid_t)

        history = train_loop(loss_fn, params, optimizer=self.optimizer, lr=self.lr, n_epochs=int(self.n_epochs),
                             batches=batches, evaluate=current_valid if valid_t is not None else None,
                             higher_is_better=False, patience=patience, show_progress=self.show_progress,
                             desc="biased MF (autograd)", divergence_hint=_DIVERGENCE_HINT,
                             on_epoch_end=on_epoch_end)
        for rec, value in zip(history.records, epoch_rmse):
            rec["loss"] = value  # training RMSE of the pass, comparable with the other methods
        self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_ = [t.detach() for t in params]
        self.history_ = history


# ---------------------------------------------------------------------------------------------------------------------
# Bayesian MF by Gibbs sampling
# ---------------------------------------------------------------------------------------------------------------------
def _sample_normal_wishart(theta: np.ndarray, rng: np.random.Generator, beta0: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw (mean, precision) from the Normal-Wishart posterior given the rows of ``theta`` (BPMF eqs. 13-14).

    Prior: mu0 = 0, beta0, W0 = I, nu0 = d. The Wishart draw uses the Bartlett decomposition.
    """
    n, d = theta.shape
    mean = theta.mean(0)
    centred = theta - mean
    scatter = centred.T @ centred  # = N * S_bar
    beta_n, nu_n = beta0 + n, d + n
    mu_n = n * mean / beta_n
    w_inv = np.eye(d) + scatter + (beta0 * n / beta_n) * np.outer(mean, mean)
    w_n = np.linalg.inv(w_inv)
    w_n = (w_n + w_n.T) / 2
    chol_w = np.linalg.cholesky(w_n)
    bartlett = np.tril(rng.standard_normal((d, d)), -1)
    bartlett[np.diag_indices(d)] = np.sqrt(rng.chisquare(nu_n - np.arange(d)))
    la = chol_w @ bartlett
    precision = la @ la.T
    cov_mean = np.linalg.inv(beta_n * precision)
    mu = rng.multivariate_normal(mu_n, (cov_mean + cov_mean.T) / 2)
    return mu, precision


IMPLICIT = ("none", "user", "item", "both")


class _ImplicitLinks:
    """Implicit sets (SVD++'s N(u): the items a user rated, ratings ignored) and their vectors' links, on a device.

    ``sums(vectors)`` is every row's ``|N(r)|^{-1/2} sum_{j in N(r)} y_j`` (one sparse product); for the Gibbs scan
    over the vectors, ``indptr``/``rows``/``w`` list, per vector ``j``, the rows whose set holds ``j`` and their
    weights ``|N(r)|^{-1/2}`` (numpy), ``weights_sq`` the same as a sparse ``(n_cols, n_rows)`` matrix of ``w^2``, and
    ``used`` the vectors in at least one set.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int, device, dtype):
        key = np.unique(np.asarray(rows, dtype=np.int64) * n_cols + np.asarray(cols, dtype=np.int64))
        r, c = key // n_cols, key % n_cols  # distinct pairs, sorted by row
        size = np.bincount(r, minlength=n_rows)
        w_row = 1.0 / np.sqrt(np.maximum(size, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch flags sparse CSR as beta
            self.sum_matrix = torch.sparse_csr_tensor(
                torch.as_tensor(np.r_[0, np.cumsum(size)]), torch.as_tensor(c), torch.as_tensor(w_row[r], dtype=dtype),
                size=(n_rows, n_cols)).to(device)
            order = np.argsort(c, kind="stable")
            count = np.bincount(c, minlength=n_cols)
            self.indptr, self.rows = np.r_[0, np.cumsum(count)], r[order]
            self.w = w_row[self.rows].astype(np.float32)
            self.weights_sq = torch.sparse_csr_tensor(
                torch.as_tensor(self.indptr), torch.as_tensor(self.rows), torch.as_tensor(self.w ** 2, dtype=dtype),
                size=(n_cols, n_rows)).to(device)
        self.used = torch.as_tensor(count > 0, device=device)

    def sums(self, vectors: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.sum_matrix @ vectors


class BayesianMF(RatingMixin, Recommender):
    """Bayesian matrix factorization with biases, fitted by Gibbs sampling (BPMF; Salakhutdinov & Mnih 2008).

    Each user carries :math:`\\theta_u = [b_u, p_u]` and each item :math:`\\phi_i = [b_i, q_i]`; a rating is
    :math:`r_{ui} \\sim N(\\mu + [1, q_i]^\\top \\theta_u + b_i, \\alpha^{-1})` (equivalently
    :math:`\\mu + b_u + b_i + p_u^\\top q_i`). Users' vectors share a Gaussian prior whose mean and precision have a
    Normal-Wishart hyperprior, and likewise items'. One Gibbs sweep draws the users' hyperparameters, then every
    user's vector from its Gaussian conditional (a batched ``(k+1) x (k+1)`` Cholesky solve over all users, no
    Python loop over rows), then the same for items. Predictions average :math:`\\mu + b_u + b_i + p_u^\\top q_i`
    over the samples kept after ``burn_in``: averaging over the posterior, rather than committing to one point
    estimate, is what lets a Bayesian model use many factors on ML-100k without overfitting.

    The averaged prediction is stored in the same shape as :class:`BiasedMF`: biases are the sample means, and
    ``user_factors_``/``item_factors_`` concatenate the kept samples scaled by ``1/sqrt(S)``, so that
    ``p_u . q_i`` is the mean of the per-sample dot products (shape ``(n, S * k)``).

    On protocol E1 (ML-100k, seeds 0–4) the defaults, with ``alpha`` chosen on validation, reach a mean test RMSE
    of 0.8946 (``benchmarks/explicit_ml100k.py``); a fit is 63 sweeps of two batched solves.

    Used by: Chapter 5 (the E1 model), Chapter 11 (the ladder), ``benchmarks/explicit_ml100k.py``,
    ``benchmarks/bayesian_ml100k.py``.

    Parameters
    ----------
    n_factors : int
        Latent dimension ``k``.
    n_samples : int
        Gibbs sweeps whose samples are averaged.
    burn_in : int
        Sweeps discarded first.
    alpha : float
        Observation precision (1 / noise variance). The paper uses 2; on ML-100k the residual variance is about 0.8,
        and 1.25 (chosen on the E1 validation part) avoids the over-confident fit that 2 gives.
    beta0 : float
        Prior strength of the Normal-Wishart hypermean.
    init_sweeps : int
        Ridge-regression (ALS) sweeps with ``init_reg`` before sampling, the MAP-like start that shortens the
        burn-in (the paper starts from a PMF solution).
    init_reg : float
        Regularisation of those ALS sweeps.
    device, random_state, show_progress
        As in :class:`BiasedMF`.
    dtype : torch.dtype
        Floating type of the sweeps (float32 is enough for the ``(k+1) x (k+1)`` Cholesky factorizations).
    implicit : {"none", "user", "item", "both"}
        The rungs of Rendle, Zhang & Koren (2019)'s ladder, one sampler: ``"user"`` is Bayesian SVD++ (Koren 2008),
        the user's factor plus ``|N(u)|^-1/2 sum_{j in N(u)} y_j`` over the items ``N(u)`` the user rated, each
        ``y_j`` with its own Normal-Wishart prior and drawn from its Gaussian conditional (a scan over the items);
        ``"item"`` adds the same on the item side over the users who rated the item, ``"both"`` is the "flipped"
        model with both. The sets come from ``train``, plus ``fit(..., implicit_pairs=...)`` when given
        (transductive). Each scan holds a ``k x k`` Gram matrix per user (or item): sized for ML-100k-like data.

    Attributes
    ----------
    history_ : mfkit.training.History
        Per sweep: ``loss`` (training RMSE of the current sample), ``metric`` (validation RMSE of the running
        average, when ``valid`` is given), ``seconds``.
    """

    def __init__(self, n_factors: int = 10, n_samples: int = 40, burn_in: int = 20, alpha: float = 1.25,
                 beta0: float = 2.0, init_sweeps: int = 3, init_reg: float = 0.1, device=None,
                 random_state: int = 0, show_progress: bool | None = None, dtype: torch.dtype = torch.float32,
                 implicit: str = "none"):
        self.n_factors, self.n_samples = check_int("n_factors", n_factors), check_int("n_samples", n_samples)
        self.burn_in, self.alpha = check_int("burn_in", burn_in, 0), check_float("alpha", alpha, strict=True)
        self.beta0 = check_float("beta0", beta0, strict=True)
        self.init_sweeps, self.init_reg = check_int("init_sweeps", init_sweeps, 0), check_float("init_reg", init_reg)
        self.device, self.random_state = device, check_int("random_state", random_state, None)
        self.show_progress, self.dtype = show_progress, dtype
        self.implicit = check_choice("implicit", implicit, IMPLICIT)

    def _sample_side(self, groups: _RowGroups, col_idx, r, own, other, seen, rng, gen, offset=None,
                     keep_grams: bool = False):
        """Draw every row's [bias, factors] from its Gaussian conditional given the other side and the hyperprior.

        ``other`` holds the other side's [bias, effective factors]. With ``offset`` (the rows' implicit sums, SVD++),
        a row's effective factor is ``p + offset``: it is drawn with the prior mean shifted by ``offset`` and
        ``p`` is what remains. Returns the new rows, the training sum of squared errors with them (from the normal
        equations, ``sum y^2 - 2 theta.h + theta^T G theta`` per row, which spares a pass over the ratings) and, with
        ``keep_grams``, every row's factor Gram ``sum_j q_j q_j^T`` and residual correlation ``sum_j q_j e_j``
        (what the implicit vectors' conditionals need).
        """
        dev, dt = own.device, own.dtype
        d = own.shape[1]
        mu_h, lam_h = _sample_normal_wishart(own[seen].double().cpu().numpy(), rng, self.beta0)
        mu_h = torch.as_tensor(mu_h, dtype=dt, device=dev)
        lam_h = torch.as_tensor(lam_h, dtype=dt, device=dev)
        x = torch.cat([torch.ones(len(other), 1, dtype=dt, device=dev), other[:, 1:]], 1)  # [1, q_j]
        y = (r - self.global_mean_ - other[col_idx, 0])[groups.order]
        outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)
        prior_rhs = lam_h @ mu_h
        new = torch.empty_like(own)
        grams = torch.zeros(len(own), d - 1, d - 1, dtype=dt, device=dev) if keep_grams else None
        resid = torch.zeros(len(own), d - 1, dtype=dt, device=dev) if keep_grams else None
        sse = (y.double() ** 2).sum()
        for a, b in groups.chunks(d):
            gram, rhs = groups.normal_equations(a, b, x, y, outer)
            precision = lam_h + self.alpha * gram
            chol = torch.linalg.cholesky(precision)
            shift = None if offset is None else torch.nn.functional.pad(offset[a:b], (1, 0))  # no bias shift
            prior = prior_rhs if shift is None else prior_rhs + shift @ lam_h
            mean = torch.cholesky_solve((self.alpha * rhs + prior)[:, :, None], chol)
            z = torch.randn(b - a, d, 1, generator=gen, dtype=dt, device="cpu").to(dev)
            # theta = mean + L^{-T} z has covariance (L L^T)^{-1} = precision^{-1}
            noise = torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)
            theta = (mean + noise)[:, :, 0] * seen[a:b, None]  # rows without ratings stay exactly zero
            new[a:b] = theta if shift is None else theta - shift * seen[a:b, None]
            sse += (-2 * (theta * rhs).sum() + torch.einsum("nd,nde,ne->", theta, gram, theta)).double()
            if keep_grams:
                grams[a:b] = gram[:, 1:, 1:]
                resid[a:b] = rhs[:, 1:] - torch.einsum("nij,nj->ni", gram[:, 1:, :], theta)
        return new, sse, grams, resid

    def _sample_implicit(self, vectors, links: "_ImplicitLinks", grams, resid, rng, gen):
        """Draw every implicit vector (SVD++'s ``y_j``) from its Gaussian conditional, one at a time.

        ``y_j`` enters the prediction of every rating of every row (user) whose implicit set holds ``j``, with weight
        ``|N(u)|^{-1/2}``; two vectors that share a user are coupled, so they are drawn in turn (a Gibbs scan), each
        given the current others. The conditional's precision does not depend on the other vectors, so its Cholesky
        factor, inverse and noise are computed for all vectors at once; the scan only updates the rows' residual
        correlations ``resid`` (``sum_i q_i e_ui``) after each draw, with the rows' Grams.
        """
        dev, dt = vectors.device, vectors.dtype
        used = links.used
        mu_h, lam_h = _sample_normal_wishart(vectors[used].double().cpu().numpy(), rng, self.beta0)
        k = vectors.shape[1]
        lam_t = torch.as_tensor(lam_h, dtype=dt, device=dev)
        data_prec = (links.weights_sq @ grams.reshape(len(grams), -1)).reshape(-1, k, k)  # sum_u w_u^2 G_u
        chol = torch.linalg.cholesky(lam_t + self.alpha * data_prec)
        cov = torch.cholesky_inverse(chol)
        z = torch.randn(len(vectors), k, 1, generator=gen, dtype=dt, device="cpu").to(dev)
        noise = torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)[:, :, 0]
        # the part of each mean that the scan does not change: y_j itself is only redrawn at its own turn, so the
        # prior's pull and the current y_j's share can be computed for all j before the scan
        fixed = (cov @ torch.as_tensor(lam_h @ mu_h, dtype=dt, device=dev) + noise
                 + torch.einsum("njk,nk->nj", self.alpha * cov @ data_prec, vectors)).cpu().numpy()
        gain = (self.alpha * cov).cpu().numpy()
        g, c, y = grams.cpu().numpy(), resid.cpu().numpy(), vectors.cpu().numpy()
        new = np.zeros_like(y)
        indptr, rows, w = links.indptr, links.rows, links.w
        for j in np.flatnonzero(used.cpu().numpy()):
            rj, wj = rows[indptr[j]:indptr[j + 1]], w[indptr[j]:indptr[j + 1]]
            new[j] = gain[j] @ (wj @ c[rj]) + fixed[j]
            c[rj] -= wj[:, None] * (g[rj] @ (new[j] - y[j]))  # the rows' residuals change by w_u (y_j' - y_j).q_i
        return torch.as_tensor(new, device=dev)

    def fit(self, train: Interactions, valid: Interactions | None = None, patience: int | None = None,
            implicit_pairs: Interactions | None = None) -> "BayesianMF":
        """Run ``init_sweeps`` ALS sweeps, ``burn_in`` discarded Gibbs sweeps and ``n_samples`` kept ones.

        ``valid`` (optional) is only monitored: the validation RMSE of the running average is recorded per kept
        sweep; ``patience`` stops sampling after that many kept sweeps without improvement. ``implicit_pairs``
        (with ``implicit`` other than ``"none"``): more (user, item) pairs, in ``train``'s index space, whose ratings
        are NOT used, added to the implicit sets — the pairs to be predicted, as in the Netflix Prize (transductive).
        Without them the sets come from ``train`` alone (inductive).
        """
        if implicit_pairs is not None:
            check_interactions(implicit_pairs, "implicit_pairs", False, like=train)
        return super().fit(train, valid, patience=patience, implicit_pairs=implicit_pairs)

    def _fit(self, train: Interactions, valid: Interactions | None, patience: int | None = None,
             implicit_pairs: Interactions | None = None) -> None:
        dev = self.device_
        k, dt = int(self.n_factors), self.dtype
        rng = np.random.default_rng(int(self.random_state))
        gen = torch.Generator().manual_seed(int(self.random_state))
        t0 = time.perf_counter()

        # MAP-like start: a few ALS sweeps of biased MF
        start = BiasedMF(n_factors=k, reg=self.init_reg, method="als", n_epochs=int(self.init_sweeps), device=dev,
                         random_state=int(self.random_state), show_progress=False, dtype=dt).fit(train)
        self.global_mean_ = start.global_mean_
        state = {"users": torch.cat([start.user_bias_[:, None], start.user_factors_], 1),
                 "items": torch.cat([start.item_bias_[:, None], start.item_factors_], 1)}
        u, i, r = train.to_tensors(dev)
        r = r.to(dt)
        seen_u = torch.bincount(u, minlength=train.n_users) > 0
        seen_i = torch.bincount(i, minlength=train.n_items) > 0
        groups_u = _RowGroups(u, i, train.n_users, train.n_items)
        groups_i = _RowGroups(i, u, train.n_items, train.n_users)
        low, high = float(train.rating.min()), float(train.rating.max())
        # SVD++ (Koren 2008) in Bayesian form: a user's factor is p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j over the items
        # the user rated ("user"); the flipped model adds the same on the item side over the users who rated the
        # item ("item"/"both"; Rendle, Zhang & Koren 2019). The y vectors have their own Normal-Wishart prior.
        pairs_u, pairs_i = train.user, train.item
        if implicit_pairs is not None:
            pairs_u, pairs_i = np.r_[pairs_u, implicit_pairs.user], np.r_[pairs_i, implicit_pairs.item]
        links_u = (_ImplicitLinks(pairs_u, pairs_i, train.n_users, train.n_items, dev, dt)
                   if self.implicit in ("user", "both") else None)
        links_i = (_ImplicitLinks(pairs_i, pairs_u, train.n_items, train.n_users, dev, dt)
                   if self.implicit in ("item", "both") else None)
        state["y"] = torch.zeros(train.n_items, k, dtype=dt, device=dev)  # implicit vectors of the items (N(u))
        state["z"] = torch.zeros(train.n_users, k, dtype=dt, device=dev)  # implicit vectors of the users (flipped)
        pad = lambda sums: torch.nn.functional.pad(sums, (1, 0))  # noqa: E731  (no implicit part in the bias)
        state["users_eff"], state["items_eff"] = state["users"], state["items"]
        _sync(dev)
        setup_s = time.perf_counter() - t0
        kept_u, kept_i = [], []

        def sweep(epoch):
            ybar = None if links_u is None else links_u.sums(state["y"])
            zbar = None if links_i is None else links_i.sums(state["z"])
            items_eff = state["items"] if zbar is None else state["items"] + pad(zbar)
            users, _, grams, resid = self._sample_side(groups_u, i, r, state["users"], items_eff, seen_u, rng, gen,
                                                       offset=ybar, keep_grams=links_u is not None)
            if links_u is not None:
                state["y"] = self._sample_implicit(state["y"], links_u, grams, resid, rng, gen)
                ybar = links_u.sums(state["y"])
            users_eff = users if ybar is None else users + pad(ybar)
            items, sse, grams, resid = self._sample_side(groups_i, u, r, state["items"], users_eff, seen_i, rng, gen,
                                                         offset=zbar, keep_grams=links_i is not None)
            if links_i is not None:
                state["z"] = self._sample_implicit(state["z"], links_i, grams, resid, rng, gen)
                zbar = links_i.sums(state["z"])
            items_eff = items if zbar is None else items + pad(zbar)
            state.update(users=users, items=items, users_eff=users_eff, items_eff=items_eff)
            if epoch >= self.burn_in:
                kept_u.append(users_eff)
                kept_i.append(items_eff)
            return float(torch.sqrt(sse.clamp(min=0) / len(r)))  # training RMSE of the current sample

        evaluate = None
        if valid is not None:
            vu, vi, vr = valid.to_tensors(dev)
            vr = vr.double()
            valid_sum = torch.zeros(len(vr), dtype=torch.float64, device=dev)

            def evaluate():  # validation RMSE of the running average; nothing during the burn-in
                nonlocal valid_sum
                if len(kept_u) == 0:
                    return None
                users, items = state["users_eff"], state["items_eff"]
                valid_sum += (self.global_mean_ + users[vu, 0] + items[vi, 0]
                              + (users[vu, 1:] * items[vi, 1:]).sum(1)).double()
                return float(torch.sqrt(torch.mean(((valid_sum / len(kept_u)).clamp(low, high) - vr) ** 2)))

        history = epoch_loop(sweep, int(self.burn_in) + int(self.n_samples), evaluate=evaluate,
                             higher_is_better=False, patience=patience, device=dev, show_progress=self.show_progress,
                             desc="Bayesian MF (Gibbs)", unit="sweep",
                             divergence_hint="Lower alpha (more observation noise) or use float64.")
        for record in history.records:
            record["seconds"] += setup_s  # the ALS start counts as training time
        users, items = state["users_eff"], state["items_eff"]
        if not kept_u:  # stopped before the burn-in ended: keep the last sample
            kept_u, kept_i = [users], [items]
        s = len(kept_u)
        stack_u, stack_i = torch.stack(kept_u), torch.stack(kept_i)  # (S, n, k+1)
        self.user_bias_ = stack_u[:, :, 0].mean(0).float()
        self.item_bias_ = stack_i[:, :, 0].mean(0).float()
        # concatenated samples / sqrt(S): one dot product gives the mean of the S per-sample dot products
        self.user_factors_ = (stack_u[:, :, 1:].permute(1, 0, 2).reshape(train.n_users, s * k) / math.sqrt(s)).float()
        self.item_factors_ = (stack_i[:, :, 1:].permute(1, 0, 2).reshape(train.n_items, s * k) / math.sqrt(s)).float()
        self.n_kept_ = s
        self.history_ = history


# ---------------------------------------------------------------------------------------------------------------------
# protocol N2: Netflix probe RMSE
# ---------------------------------------------------------------------------------------------------------------------
def default_netflix_model(device=None, show_progress=None) -> BiasedMF:
    """The N2 default: minibatch SVD-style SGD, sized for the full Netflix data on one GPU (see the docstring of
    :func:`netflix_probe_rmse`)."""
    return BiasedMF(n_factors=128, reg=0.02, reg_bias=0.005, lr=0.005, n_epochs=25, method="sgd", batch_size=32768,
                    init_scale=0.05, device=device, random_state=0, show_progress=show_progress)


def netflix_probe_rmse(folder=None, model=None, device=None, show_progress: bool | None = None) -> dict:
    """Protocol N2: train on the Netflix ratings minus the probe pairs and report RMSE on the probe pairs.

    Reads the folder with :func:`mfkit.data.load_netflix` and :func:`mfkit.data.read_probe`, splits with
    :func:`mfkit.data.probe_split`, fits ``model`` and scores it (predictions clipped to [1, 5]).

    Used by: Chapter 6, ``benchmarks/netflix_probe.py``.

    Parameters
    ----------
    folder : path or None
        A Netflix Prize folder (``training_set/`` or ``combined_data_*.txt``, and ``probe.txt``). ``None`` uses
        ``$MFKIT_NETFLIX_DIR``, else the small generated sample of :func:`mfkit.data.netflix_sample_dir`.
    model : unfitted model or None
        Anything with ``fit(train)``/``predict``; ``None`` builds :func:`default_netflix_model`: biased MF with
        k = 128 by minibatch SGD (batch 32768, lr 0.005, reg 0.02, reg_bias 0.005, 25 epochs). Those follow the
        tuned SVD settings reported for Netflix (Koren 2008: about 0.90 probe RMSE at k = 100–200; lr ≈ 0.005–0.007,
        reg ≈ 0.015–0.02). The batch keeps a GPU busy (about 3,000 steps per epoch) while staying stable: the
        summed updates of the most popular movie (about 0.2% of the ratings, so some 75 per batch) make an
        effective step near 0.4, well below the ``lr * count ≈ 2`` where the bias update would oscillate (a 1M
        batch at lr 0.01 diverges, protocol G1). Budget: parse ≈ 25 s (about 2 s from the cache), 25 epochs of a
        few seconds each; target probe RMSE ≤ 0.905 end to end in ≤ 5 minutes on one H100. These defaults have not
        been run on the real data here (no GPU, no Netflix data); ``benchmarks/netflix_probe.py --epochs N``
        changes the epoch count. On a CPU the full data takes hours: use the generated sample.
    device : str, torch.device or None
    show_progress : bool or None

    Returns
    -------
    dict
        ``folder``, ``n_train``, ``n_probe``, ``probe_rmse``, ``probe_mae``, ``parse_s``, ``fit_s``, ``score_s``,
        ``total_s``, ``model`` (its repr).
    """
    if folder is None:
        folder = os.environ.get("MFKIT_NETFLIX_DIR") or netflix_sample_dir()
    dev = get_device(device)
    t0 = time.perf_counter()
    data = load_netflix(folder)
    probe_path = Path(folder).expanduser() / "probe.txt"
    if not probe_path.exists():
        raise FileNotFoundError(f"no probe.txt in {folder}: protocol N2 needs the Netflix Prize probe list")
    probe = read_probe(probe_path)
    train, test = probe_split(data, probe["user"].to_numpy(), probe["movie"].to_numpy())
    t1 = time.perf_counter()
    if model is None:
        model = default_netflix_model(dev, show_progress)
    model.fit(train)
    _sync(dev)
    t2 = time.perf_counter()
    scores = evaluate(model, test, clip=(1, 5))
    t3 = time.perf_counter()
    return {"folder": str(folder), "n_train": len(train), "n_probe": len(test), "probe_rmse": scores["rmse"],
            "probe_mae": scores["mae"], "parse_s": t1 - t0, "fit_s": t2 - t1, "score_s": t3 - t2,
            "total_s": t3 - t0, "model": repr(model)}
