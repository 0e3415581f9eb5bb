"""Weighted matrix factorization for implicit feedback: the seeds' loss, computed three ways, and its variants.

The seed notebooks factorised a dense 0/1 users × items matrix ``R`` (1 = the user rated the movie) by minimising

.. math::

    J(U, V) = \\sum_{(u,i) \\in O} (1 - u_u^\\top v_i)^2 + w \\sum_{(u,i) \\notin O} (u_u^\\top v_i)^2
              + \\lambda \\Big(\\sum_u r_u \\lVert u_u \\rVert^2 + \\sum_i r_i \\lVert v_i \\rVert^2\\Big)

with ``O`` the observed pairs, ``w`` the (small) weight of the unobserved ones and ``r_u = r_i = 1`` unless the
regularisation is scaled by frequency. This is the weighted loss of one-class / implicit-feedback MF (Hu, Koren &
Volinsky 2008, "Collaborative Filtering for Implicit Feedback Datasets"; Pan et al. 2008, "One-Class Collaborative
Filtering"), with confidence ``1`` on observed and ``w`` on unobserved cells — Hu et al.'s ``c = 1 + alpha`` divided
through by ``1 + alpha``.

Three ways to minimise it:

* ``solver="dense"``: materialise ``R`` and let autograd + a torch optimizer do the rest (the seeds' way; memory
  ``users × items``).
* ``solver="gram"``: the same value without ``R``, because the sum over *all* cells of ``(u·v)^2`` is
  ``trace((UᵀU)(VᵀV))``: ``O(nnz·k + (users + items)·k²)`` time and memory.
* ``solver="als"``: the loss is quadratic in ``U`` for fixed ``V`` (and vice versa), so each half-sweep is a batch of
  ``k × k`` linear systems solved in closed form (weighted ALS / iALS: Hu et al. 2008; Rendle et al. 2021, "Revisiting
  the Performance of iALS on Item Recommendation Benchmarks").

Normalisation. ``reg`` (``λ``) is in the units of the *summed* objective ``J`` (Hu et al.'s ``λ``), so the closed-form
ALS solution and the gradient solvers minimise the same function. The loss functions return ``J`` divided by the number
of cells ``users × items`` (``reduction="mean"``, what the gradient solvers optimise and the histories report; the
minimiser is the same) or ``J`` itself (``reduction="sum"``).

Used by: Chapter 2 (dense, Gram and ALS), Chapter 3 (the sigmoid and logistic variants, dense solver), Chapter 4 (the
optimizers, through ``solver="gram"``/``"dense"``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import als
from .base import FactorMixin, Recommender, check_choice, check_float, check_int
from .data import Interactions
from .metrics import ranking_metrics
from .observed import item_popularity, observed_pairs
from .training import check_optimizer, epoch_loop, train_loop

__all__ = ["weighted_loss_dense", "weighted_loss_gram", "row_regularisation", "WeightedMF", "Popularity",
           "autograd_saved_bytes", "SOLVERS", "LOSSES"]

SOLVERS = ("dense", "gram", "als")
LOSSES = ("squared", "sigmoid", "logistic")


# ---------------------------------------------------------------------------------------------------------------------
# The loss, two ways
# ---------------------------------------------------------------------------------------------------------------------
def _regulariser(U, V, reg, user_reg, item_reg) -> torch.Tensor:
    """``reg · (Σ_u r_u ||u_u||² + Σ_i r_i ||v_i||²)``; ``r = 1`` when no per-row weights are given."""
    user_sq, item_sq = (U * U).sum(1), (V * V).sum(1)
    if user_reg is not None:
        user_sq = user_sq * user_reg
    if item_reg is not None:
        item_sq = item_sq * item_reg
    return reg * (user_sq.sum() + item_sq.sum())


def _reduce(total: torch.Tensor, n_users: int, n_items: int, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return total / (n_users * n_items)
    if reduction == "sum":
        return total
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _check_weight(unobserved_weight: float) -> None:
    if not (isinstance(unobserved_weight, (int, float)) and math.isfinite(unobserved_weight)
            and unobserved_weight >= 0):
        raise ValueError(f"unobserved_weight must be a finite number >= 0, got {unobserved_weight!r}")


def weighted_loss_dense(U: torch.Tensor, V: torch.Tensor, R: torch.Tensor, unobserved_weight: float, reg: float, *,
                        user_reg: torch.Tensor | None = None, item_reg: torch.Tensor | None = None,
                        loss: str = "squared", reduction: str = "mean") -> torch.Tensor:
    """The seeds' weighted loss on a dense 0/1 matrix (memory ``users × items``).

    Parameters
    ----------
    U : (n_users, k) tensor
    V : (n_items, k) tensor
    R : (n_users, n_items) tensor
        1 where the user interacted with the item, 0 elsewhere.
    unobserved_weight : float
        Weight ``w`` of the squared error on the zeros (the seeds used 0.005); observed cells weigh 1.
    reg : float
        ``λ``, in the units of the summed loss (see the module docstring).
    user_reg, item_reg : (n_users,) / (n_items,) tensors, optional
        Per-row multipliers of ``λ`` (frequency-scaled regularisation, :func:`row_regularisation`).
    loss : {"squared", "sigmoid", "logistic"}
        ``"squared"``: ``(R - u·v)²`` (the seeds'); ``"sigmoid"``: ``(R - σ(u·v))²`` (the seeds' sigmoid variant,
        Chapter 3); ``"logistic"``: binary cross-entropy of ``σ(u·v)`` against ``R`` (Johnson 2014, "Logistic Matrix
        Factorization for Implicit Feedback Data"), each weighted 1 on observed and ``w`` on unobserved cells.
    reduction : {"mean", "sum"}
        Divide by ``n_users × n_items`` or not.

    Returns
    -------
    scalar tensor

    Used by: Chapter 2 (the seeds' formulation), Chapter 3 (sigmoid and logistic).
    """
    _check_weight(unobserved_weight)
    if R.shape != (U.shape[0], V.shape[0]):
        raise ValueError(f"R must be (n_users, n_items) = ({U.shape[0]}, {V.shape[0]}), got {tuple(R.shape)}")
    X = U @ V.T
    observed = R > 0
    if loss == "squared":
        err_observed, err_unobserved = (R - X) ** 2, X ** 2
    elif loss == "sigmoid":
        P = torch.sigmoid(X)
        err_observed, err_unobserved = (R - P) ** 2, P ** 2
    elif loss == "logistic":
        # -log σ(x) = softplus(-x) and -log(1 - σ(x)) = softplus(x), stable for large |x|
        err_observed, err_unobserved = torch.nn.functional.softplus(-X), torch.nn.functional.softplus(X)
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    data_term = torch.where(observed, err_observed, unobserved_weight * err_unobserved).sum()
    total = data_term + _regulariser(U, V, reg, user_reg, item_reg)
    return _reduce(total, U.shape[0], V.shape[0], reduction)


class _ObservedTerm(torch.autograd.Function):
    """``Σ_O [(1 − x)² − w x²]`` with ``x = u·v``, its gradient accumulated chunk by chunk in the forward pass.

    Plain autograd keeps ``U[user]`` and ``V[item]`` (``nnz × k`` each) for the backward pass: 51 GB for Netflix at
    k = 64. Here only ``chunk × k`` floats are alive at a time and the saved state is two gradients of the size of
    ``U`` and ``V``.
    """

    @staticmethod
    def forward(ctx, U, V, user, item, unobserved_weight, chunk_size):
        grad_U, grad_V = torch.zeros_like(U), torch.zeros_like(V)
        total = U.new_zeros(())
        for start in range(0, len(user), chunk_size):
            u, i = user[start:start + chunk_size], item[start:start + chunk_size]
            Uu, Vi = U[u], V[i]
            x = (Uu * Vi).sum(1)
            total += ((1.0 - x) ** 2 - unobserved_weight * x ** 2).sum()
            dx = -2.0 * (1.0 - x) - 2.0 * unobserved_weight * x  # d/dx of the summand
            grad_U.index_add_(0, u, dx[:, None] * Vi)
            grad_V.index_add_(0, i, dx[:, None] * Uu)
        ctx.save_for_backward(grad_U, grad_V)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_U, grad_V = ctx.saved_tensors
        return grad_out * grad_U, grad_out * grad_V, None, None, None, None


def weighted_loss_gram(U: torch.Tensor, V: torch.Tensor, user: torch.Tensor, item: torch.Tensor,
                       unobserved_weight: float, reg: float, *, user_reg: torch.Tensor | None = None,
                       item_reg: torch.Tensor | None = None, reduction: str = "mean",
                       chunk_size: int | None = None) -> torch.Tensor:
    """The same value as :func:`weighted_loss_dense` (``loss="squared"``) without the dense matrix.

    Split the unobserved sum as "all cells minus observed cells":

    .. math::

        J = \\sum_{(u,i) \\in O} \\big[(1 - x_{ui})^2 - w\\, x_{ui}^2\\big] + w \\sum_{u,i} x_{ui}^2 + \\text{reg},
        \\qquad \\sum_{u,i} (u_u^\\top v_i)^2 = \\operatorname{trace}\\big((U^\\top U)(V^\\top V)\\big)
        = \\langle U^\\top U, V^\\top V \\rangle_F,

    which costs ``O(nnz·k + (n_users + n_items)·k²)``; autograd differentiates it exactly (the gradient equals the
    dense version's). The idea is the one behind implicit ALS (Hu et al. 2008) and its gradient form (Rendle et al.
    2021; Bayer et al. 2017, "A Generic Coordinate Descent Framework for Learning from Implicit Feedback").

    Parameters
    ----------
    user, item : (nnz,) int64 tensors
        The observed pairs, each pair once (duplicates would be counted twice).
    chunk_size : int, optional
        Process the observed pairs this many at a time, with the gradient accumulated during the forward pass
        (memory ``chunk_size × k`` instead of ``nnz × k``; first derivatives only). None: plain autograd.
    Other parameters as :func:`weighted_loss_dense`.

    Used by: Chapter 2 (``solver="gram"``), Chapter 4 (optimizer comparison).
    """
    _check_weight(unobserved_weight)
    if user.shape != item.shape or user.ndim != 1:
        raise ValueError(f"user and item must be 1-D index tensors of one length, got {tuple(user.shape)} and "
                         f"{tuple(item.shape)}")
    if chunk_size is None:
        x = (U[user] * V[item]).sum(1)
        observed_term = ((1.0 - x) ** 2 - unobserved_weight * x ** 2).sum()
    else:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        observed_term = _ObservedTerm.apply(U, V, user, item, float(unobserved_weight), int(chunk_size))
    all_cells_term = unobserved_weight * ((U.T @ U) * (V.T @ V)).sum()
    total = observed_term + all_cells_term + _regulariser(U, V, reg, user_reg, item_reg)
    return _reduce(total, U.shape[0], V.shape[0], reduction)


def row_regularisation(counts: np.ndarray, n_cols: int, unobserved_weight: float, reg_scaling) -> np.ndarray:
    """Per-row multipliers ``r`` of ``λ`` (``λ_row = λ · r_row``).

    Parameters
    ----------
    counts : (n_rows,) array
        Observed cells per row (a user's items, or an item's users).
    n_cols : int
        Cells per row (items for a user row, users for an item row).
    reg_scaling : None, "count" or float
        ``None``: ``r = 1`` (plain L2). ``"count"``: ``r = max(n, 1)``, the weighted-λ regularisation of ALS-WR (Zhou
        et al. 2008, "Large-Scale Parallel Collaborative Filtering for the Netflix Prize"). A number ``ν``:
        ``r = (n + w·(n_cols − n))^ν``, the row's total loss weight raised to ``ν`` — Rendle et al. (2021)'s
        ``(|I_u| + α₀|I|)^ν`` adapted to the seeds' loss where ``w`` weighs only the unobserved cells; ``ν = 0`` is
        plain L2, ``ν = 1`` scales with the row's weight.

    Used by: Chapter 2 (tuning the regularisation).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if reg_scaling is None:
        return np.ones_like(counts)
    if isinstance(reg_scaling, str):
        if reg_scaling == "count":
            return np.maximum(counts, 1.0)
        raise ValueError(f"reg_scaling must be None, 'count' or a number (Rendle's exponent nu), got {reg_scaling!r}")
    if not isinstance(reg_scaling, (int, float)) or not math.isfinite(reg_scaling):
        raise ValueError(f"reg_scaling must be None, 'count' or a finite number, got {reg_scaling!r}")
    weight = counts + unobserved_weight * (n_cols - counts)
    return np.maximum(weight, 1e-12) ** float(reg_scaling)


def _sparse_gram_loss(U, V, R, unobserved_weight, reg, user_reg, item_reg, out=None) -> float:
    """:func:`weighted_loss_gram` (mean) as a float, the ``u·v`` of observed cells by a sampled product (no gather).

    ``out``: a sparse tensor of ``R``'s pattern to write the products into (no new index arrays each call).
    """
    with torch.no_grad():
        if out is None:
            x = torch.sparse.sampled_addmm(R, U, V.T.contiguous(), beta=0.0).values()
        else:
            x = torch.sparse.sampled_addmm(R, U, V.T.contiguous(), beta=0.0, out=out).values()
        total = (((1.0 - x) ** 2 - unobserved_weight * x ** 2).sum()
                 + unobserved_weight * ((U.T @ U) * (V.T @ V)).sum() + _regulariser(U, V, reg, user_reg, item_reg))
        return float(total) / (U.shape[0] * V.shape[0])


# ---------------------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------------------
class WeightedMF(FactorMixin, Recommender):
    """Weighted matrix factorization for implicit feedback (the seeds' model, trained and evaluated properly).

    Parameters
    ----------
    n_factors : int
        Latent dimension ``k``.
    unobserved_weight : float
        ``w``, the weight of the squared error on unobserved cells (observed cells weigh 1). The seeds used 0.005;
        the best value depends on the data and is worth tuning (Rendle et al. 2021): on ML-100k (protocol I1)
        validation picks ``w ≈ 0.3`` with ``reg ≈ 10``.
    reg : float
        ``λ`` in the units of the summed loss (see the module docstring), times the per-row multipliers of
        ``reg_scaling``. The default 0.01 barely regularises; see :func:`mfkit.training.tune`.
    solver : {"als", "gram", "dense"}
        ``"als"``: closed-form weighted alternating least squares, one batch of ``k × k`` solves per half-sweep.
        ``"gram"``: a torch optimizer on the exact loss computed through Gram matrices (no dense matrix).
        ``"dense"``: a torch optimizer on the dense ``users × items`` matrix (the seeds' approach).
    loss : {"squared", "sigmoid", "logistic"}
        ``"sigmoid"`` and ``"logistic"`` are not quadratic, so only ``solver="dense"`` trains them (Chapter 3).
    optimizer : str
        A name of :data:`mfkit.training.OPTIMIZERS` (gradient solvers).
    lr : float
        Learning rate (gradient solvers).
    n_epochs : int
        Full-batch steps (gradient solvers) or ALS sweeps (one sweep = users, then items).
    init_scale : float or "auto"
        Standard deviation of the normal initialisation; ``"auto"``: ``0.1/sqrt(n_factors)``, the small start of
        Rendle et al. (2021)'s iALS revisit, which keeps large ``n_factors`` from starting with large scores.
    reg_scaling : None, "count" or float
        Frequency scaling of ``λ`` per row, see :func:`row_regularisation`.
    max_dense_bytes : int
        ``solver="dense"`` refuses matrices larger than this (4 bytes a cell) instead of running out of memory.
    device : str, torch.device or None
        None: CUDA when available.
    random_state : int
        Seed of the initialisation (drawn on the CPU, so CPU and CUDA start from the same factors).
    show_progress : bool or None
        Progress bar over epochs/sweeps; default follows ``$MFKIT_PROGRESS``.
    als_chunk : int
        Memory budget, in floats, of the gathered factor rows of observed cells: ALS gathers at most this many at a
        time, and the Gram solver switches to its chunked observed term when ``nnz × n_factors`` exceeds it.
    als_method : {"cholesky", "cg"}
        ALS half-sweeps by exact batched Cholesky solves of the ``k × k`` normal equations (``O(nnz·k² + rows·k³)``),
        or by ``cg_steps`` conjugate-gradient steps warm-started from the current factors (``O(nnz·k)`` a step;
        Takács et al. 2011), much cheaper for large ``k`` and converging to the same fixed point.
    cg_steps : int
        Conjugate-gradient steps per half-sweep (``als_method="cg"``).
    reg_normalised : bool
        ``reg`` on the normalised scale of the iALS revisit: the per-row multipliers of ``reg_scaling`` are divided by
        their mean over all user and item rows, so that one ``reg`` regularises about as much at every exponent
        ``ν`` and ``reg`` and ``ν`` can be tuned one after the other (Chapter 11). At ``ν = 0`` it changes nothing.

    Attributes
    ----------
    user_factors_, item_factors_ : tensors on the device
        Set by :meth:`fit`, as are the attributes below.
    history_ : mfkit.training.History
        One record per epoch/sweep: ``loss`` (the mean-reduced objective), ``metric`` (validation nDCG@k when
        ``valid`` is given), ``seconds`` (cumulative training time, evaluation excluded).
    train_ : Interactions
        The training data (id maps, titles, items to exclude when recommending).

    Used by: Chapter 2 (all three solvers), Chapter 3 (sigmoid/logistic), Chapter 4 (optimizers), Chapter 11 (iALS:
    ``reg_scaling``, ``reg_normalised``, ``init_scale="auto"``), the I1 benchmarks.
    """

    fitted_attributes = ("user_factors_", "item_factors_")

    def __init__(self, n_factors: int = 64, unobserved_weight: float = 0.005, reg: float = 0.01, solver: str = "als",
                 loss: str = "squared", optimizer: str = "adam", lr: float = 0.05, n_epochs: int = 20,
                 init_scale: float = 0.1, reg_scaling=None, max_dense_bytes: int = 2 ** 30, device=None,
                 random_state: int = 0, show_progress: bool | None = None, als_chunk: int = 2 ** 22,
                 als_method: str = "cholesky", cg_steps: int = 3, reg_normalised: bool = False):
        check_choice("solver", solver, SOLVERS)
        check_choice("loss", loss, LOSSES)
        if loss != "squared" and solver != "dense":
            raise ValueError(f"loss={loss!r} is not quadratic in the factors: neither the Gram identity nor the "
                             f"closed-form ALS step applies; use solver='dense' (got solver={solver!r})")
        _check_weight(unobserved_weight)
        row_regularisation(np.ones(1), 1, unobserved_weight, reg_scaling)  # validates reg_scaling early
        check_choice("als_method", als_method, ("cholesky", "cg"))
        check_optimizer(optimizer)
        self.n_factors, self.unobserved_weight = check_int("n_factors", n_factors), float(unobserved_weight)
        self.reg, self.lr = check_float("reg", reg), check_float("lr", lr, strict=True)
        self.solver, self.loss, self.optimizer = solver, loss, optimizer
        self.n_epochs = check_int("n_epochs", n_epochs)
        self.init_scale = init_scale if init_scale == "auto" else check_float("init_scale", init_scale)
        self.reg_scaling, self.max_dense_bytes = reg_scaling, check_int("max_dense_bytes", max_dense_bytes)
        self.device, self.random_state = device, check_int("random_state", random_state, None)
        self.show_progress, self.als_chunk = show_progress, check_int("als_chunk", als_chunk)
        self.als_method, self.cg_steps = als_method, check_int("cg_steps", cg_steps)
        if isinstance(init_scale, str) and init_scale != "auto":
            raise ValueError(f"init_scale must be a number or 'auto' (0.1/sqrt(n_factors)), got {init_scale!r}")
        self.reg_normalised = bool(reg_normalised)

    # -- fitting -------------------------------------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, k: int = 10, patience: int | None = None) -> None:
        n_users, n_items, dim = train.n_users, train.n_items, self.n_factors
        if self.solver == "dense" and n_users * n_items * 4 > self.max_dense_bytes:
            raise ValueError(
                f"solver='dense' would materialise a {n_users:,} × {n_items:,} float32 matrix "
                f"({n_users * n_items * 4 / 2**30:.2f} GiB > max_dense_bytes={self.max_dense_bytes / 2**30:.2f} GiB); "
                "use solver='gram' (same loss, no dense matrix) or solver='als'")
        device = self.device_
        user_np, item_np = observed_pairs(train)
        user = torch.from_numpy(user_np).to(device)
        item = torch.from_numpy(item_np).to(device)
        w = self.unobserved_weight
        user_reg = torch.from_numpy(row_regularisation(np.bincount(user_np, minlength=n_users), n_items, w,
                                                       self.reg_scaling)).float().to(device)
        item_reg = torch.from_numpy(row_regularisation(np.bincount(item_np, minlength=n_items), n_users, w,
                                                       self.reg_scaling)).float().to(device)
        if self.reg_normalised:  # λ on the normalised scale: the multipliers' mean over all rows is 1
            scale = torch.cat([user_reg, item_reg]).mean()
            user_reg, item_reg = user_reg / scale, item_reg / scale
        sigma = 0.1 / math.sqrt(dim) if self.init_scale == "auto" else self.init_scale
        gen = torch.Generator().manual_seed(int(self.random_state))
        U = (torch.randn(n_users, dim, generator=gen) * sigma).to(device)
        V = (torch.randn(n_items, dim, generator=gen) * sigma).to(device)
        evaluate = None
        if valid is not None:
            evaluate = lambda: ranking_metrics(self, train, valid, k=k, device=device)["ndcg"]  # noqa: E731
        if self.solver == "als":
            self._fit_als(U, V, user, item, user_reg, item_reg, evaluate, patience)
        else:
            self._fit_gradient(U, V, user, item, user_reg, item_reg, evaluate, patience)

    def _fit_gradient(self, U, V, user, item, user_reg, item_reg, evaluate, patience) -> None:
        U = U.requires_grad_(True)
        V = V.requires_grad_(True)
        self.user_factors_, self.item_factors_ = U, V  # evaluate() scores through these during training
        w, reg = self.unobserved_weight, self.reg
        if self.solver == "dense":
            R = torch.zeros(U.shape[0], V.shape[0], device=U.device)
            R[user, item] = 1.0
            loss_fn = lambda _: weighted_loss_dense(U, V, R, w, reg, user_reg=user_reg, item_reg=item_reg,  # noqa
                                                    loss=self.loss)
        else:
            # plain autograd while U[user] and V[item] fit in the chunk budget, chunked beyond
            chunk = None if len(user) * self.n_factors <= self.als_chunk else max(1, self.als_chunk // self.n_factors)
            loss_fn = lambda _: weighted_loss_gram(U, V, user, item, w, reg, user_reg=user_reg,  # noqa: E731
                                                   item_reg=item_reg, chunk_size=chunk)
        self.history_ = train_loop(
            loss_fn, [U, V], optimizer=self.optimizer, lr=self.lr, n_epochs=self.n_epochs, evaluate=evaluate,
            patience=patience, show_progress=self.show_progress, desc=f"WeightedMF {self.solver}",
            divergence_hint="Lower the learning rate, raise reg, or use solver='als' (no learning rate).")
        self.user_factors_, self.item_factors_ = U.detach(), V.detach()

    def _fit_als(self, U, V, user, item, user_reg, item_reg, evaluate, patience) -> None:
        n_users, n_items = U.shape[0], V.shape[0]
        user_np, item_np = user.cpu().numpy(), item.cpu().numpy()
        user_lambda, item_lambda = self.reg * user_reg, self.reg * item_reg
        w = self.unobserved_weight
        layout = dict(method=self.als_method, budget=max(1, self.als_chunk // self.n_factors), device=U.device,
                      dtype=U.dtype)
        by_user = als.Observations(user_np, item_np, n_users, n_items, **layout)
        by_item = als.Observations(item_np, user_np, n_items, n_users, **layout)
        R = by_user.R if self.als_method == "cg" else als.Observations(user_np, item_np, n_users, n_items,
                                                                        method="cg", device=U.device, dtype=U.dtype).R
        self.user_factors_, self.item_factors_ = U, V
        loss_dots = als.same_pattern(R)  # the training loss's products, written in place after every sweep

        def sweep(epoch):
            als.solve_rows(V, by_user, U, user_lambda, unobserved_weight=w, cg_steps=self.cg_steps)
            als.solve_rows(U, by_item, V, item_lambda, unobserved_weight=w, cg_steps=self.cg_steps)

        def restore(best):
            U.copy_(best[0])
            V.copy_(best[1])

        self.history_ = epoch_loop(
            sweep, self.n_epochs, evaluate=evaluate, patience=patience, snapshot=lambda: (U.clone(), V.clone()),
            restore=restore,
            measure=lambda epoch: _sparse_gram_loss(U, V, R, w, self.reg, user_reg, item_reg, loss_dots),
            device=U.device, show_progress=self.show_progress, desc="WeightedMF als", unit="sweep",
            divergence_hint="Raise reg (the k × k systems may be near-singular) or check unobserved_weight.")

    # -- scoring -------------------------------------------------------------------------------------------------------
    def _link(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) if self.loss in ("sigmoid", "logistic") else x

    def score_users(self, users) -> torch.Tensor:
        """Scores of every item for dense user indices: ``(len(users), n_items)`` on the model's device.

        ``u·v`` for the squared loss, ``σ(u·v)`` for the sigmoid and logistic losses.
        """
        idx = self._user_index(users)
        with torch.no_grad():
            return self._link(self.user_factors_[idx] @ self.item_factors_.T)

    def predict(self, users, items) -> torch.Tensor:
        """Scores of (dense user index, dense item index) pairs."""
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have one length, got {u.numel()} and {i.numel()}")
        with torch.no_grad():
            return self._link((self.user_factors_[u] * self.item_factors_[i]).sum(-1))

    # -- hooks: fold-in (the vectors come from FactorMixin: σ is monotone, the ranking is u·v's) ----------------
    def _lambda(self, counts: np.ndarray, reg: float | None) -> np.ndarray:
        return (self.reg if reg is None else reg) * row_regularisation(counts, self.train_.n_items,
                                                                       self.unobserved_weight, self.reg_scaling)

    def fold_in(self, item, owner, n_users, rating=None, *, reg=None):
        """One ALS user step (Hu et al. 2008) against the fixed item factors, with the model's ``reg`` and
        ``reg_scaling``: :func:`mfkit.als.solve_rows`. Only the squared loss has one (``NotImplementedError``)."""
        if self.loss != "squared":
            raise NotImplementedError(f"loss={self.loss!r} has no closed-form user step")
        V = self.item_factors_.detach()
        counts = np.bincount(owner, minlength=n_users)
        obs = als.Observations(owner, item, n_users, len(V), device=V.device, dtype=V.dtype)
        x = V.new_zeros(n_users, V.shape[1])
        lam = torch.as_tensor(self._lambda(counts, reg), dtype=V.dtype, device=V.device)
        als.solve_rows(V, obs, x, lam, unobserved_weight=self.unobserved_weight, short_rows=True)
        x[torch.from_numpy(counts == 0).to(V.device)] = 0.0
        return x, None

    def fold_in_loss(self, x, bias, rows, cols, counts, rating, reg):
        """The model's loss (summed, its ``loss`` and ``reg_scaling``) of the new users' rows."""
        V = self.item_factors_.detach().to(x.dtype)
        R = torch.zeros(len(x), len(V), dtype=x.dtype, device=x.device)
        R[rows, cols] = 1.0
        user_reg = torch.as_tensor(self._lambda(counts.cpu().numpy(), 1.0), dtype=x.dtype, device=x.device)
        lam = self.reg if reg is None else reg
        return weighted_loss_dense(x, V, R, self.unobserved_weight, lam, user_reg=user_reg,
                                   item_reg=torch.zeros(len(V), dtype=x.dtype, device=x.device), loss=self.loss,
                                   reduction="sum")

    def score_folded(self, x, bias=None):
        with torch.no_grad():
            return self._link(x @ self.item_factors_.T)


class Popularity(Recommender):
    """The popularity baseline: every user gets the items with the most training interactions.

    The bar every personalised model must clear on protocol I1. Used by: Chapters 2–4 and 7, the I1 benchmark.

    Parameters
    ----------
    device : str, torch.device or None
        None: CUDA when available.

    Attributes
    ----------
    item_scores_ : (n_items,) tensor
        Distinct training users of each item (duplicates once).
    """

    fitted_attributes = ("item_scores_",)

    def __init__(self, device=None):
        self.device = device

    def _fit(self, train: Interactions, valid: Interactions | None = None) -> None:
        self.item_scores_ = torch.from_numpy(item_popularity(train).astype(np.float32)).to(self.device_)

    def score_users(self, users) -> torch.Tensor:
        """The item counts, the same row for every user: ``(len(users), n_items)`` (a broadcast view)."""
        n = len(self._user_index(users))
        return self.item_scores_.unsqueeze(0).expand(n, -1)


# ---------------------------------------------------------------------------------------------------------------------
# Memory of a loss formulation
# ---------------------------------------------------------------------------------------------------------------------
def autograd_saved_bytes(loss_fn) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of ``loss_fn()`` (each storage counted once).

    A platform-independent measure of what a formulation holds in memory: the dense loss saves several
    ``users × items`` tensors, the Gram loss only ``nnz``-long vectors and ``k × k`` matrices. (On CUDA,
    ``torch.cuda.max_memory_allocated`` measures the peak directly.)

    Used by: Chapter 2 (dense vs Gram memory).
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    del loss
    return int(sum(seen.values()))
