"""The one ALS row solver: every model fitted by alternating least squares, and fold-in, call it.

With one side's factors ``Y`` fixed (``other``, one row ``y_j`` per column of the data), each row ``x_u`` of the
other side minimises

.. math:: \\sum_{j \\in O_u} a_{uj} (t_{uj} - x_u^\\top y_j)^2 + w_0 \\sum_{j \\notin O_u} (x_u^\\top y_j)^2
          + x_u^\\top \\Lambda_u x_u,

whose normal equations are

.. math:: \\bigl(w_0 Y^\\top Y + \\sum_{j \\in O_u} (a_{uj} - w_0)\\, y_j y_j^\\top + \\Lambda_u\\bigr) x_u
          = \\sum_{j \\in O_u} a_{uj} t_{uj}\\, y_j .

- weighted MF (Chapter 2; Hu, Koren & Volinsky 2008): ``a = 1``, ``t = 1``, ``w_0`` the unobserved weight;
- Hu et al.'s confidence weights (Chapter 9) and Spark's implicit ALS: ``a = 1 + α r``, ``t = 1``, ``w_0 = 1``;
- biased MF (Chapters 5, 8) and Spark's explicit ALS: ``a = 1``, ``t`` the residual rating, ``w_0 = 0``, the bias
  as a constant first column of ``Y``, ``Λ_u = n_u diag(λ_b, λ, ..., λ)``.

Two solvers: ``"cholesky"`` forms the ``k × k`` systems of rows of similar length in padded batches
(``O(nnz·k² + rows·k³)``); ``"cg"`` runs a few conjugate-gradient steps warm-started from the current rows, all rows
at once by sampled sparse products (``O(nnz·k)`` a step; Takács, Pilászy & Tikk 2011). The structure follows the
``implicit`` library (one solver for every factor model) and LensKit's ``als_half_epoch``.

Used by: :class:`mfkit.implicit.WeightedMF`, :class:`mfkit.implicit.ConfidenceMF`,
:class:`mfkit.explicit.BiasedMF`, fold-in (:meth:`mfkit.base.Recommender.fold_in`), the Spark reference sweep.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["Observations", "solve_rows", "same_pattern"]

SOLVERS = ("cholesky", "cg")


def _csr(indptr: np.ndarray, cols: np.ndarray, values: torch.Tensor, n_cols: int, device) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore")
        # int32 indices: what the CPU (MKL) and CUDA (cuSPARSE) kernels use natively, no conversion per call
        return torch.sparse_csr_tensor(torch.from_numpy(indptr.astype(np.int32)),
                                       torch.from_numpy(cols.astype(np.int32)), values,
                                       size=(len(indptr) - 1, n_cols)).to(device)


def same_pattern(R: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    """A CSR tensor with ``R``'s sparsity pattern (its index arrays shared, not copied) and ``values`` (default:
    uninitialised) of its own: what ``sampled_addmm(..., out=)`` writes into without a copy of the indices (1.2 GB
    at Netflix size, Chapter 8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(R.crow_indices(), R.col_indices(),
                                       torch.empty_like(R.values()) if values is None else values, size=R.shape)


class Observations:
    """The observed cells of one side, grouped by row, in the layouts the two solvers read.

    Parameters
    ----------
    rows, cols : int arrays
        One entry per observation (any order; a pair may repeat, e.g. a rating given twice).
    n_rows, n_cols : int
    method : {"cholesky", "cg"}
        ``"cholesky"``: padded batches of rows of similar length, each under ``budget`` gathered factor rows
        (padding points at an all-zero row appended to the other side); ``"cg"``: a torch CSR matrix.
    budget : int
        Gathered rows of the other side per Cholesky batch (memory ``budget × k`` floats).
    dtype, device

    Per-observation values (weights, targets) are passed to :func:`solve_rows` in the order of ``rows``/``cols``.
    """

    def __init__(self, rows, cols, n_rows: int, n_cols: int, *, method: str = "cholesky", budget: int = 2 ** 16,
                 device=None, dtype=torch.float32):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if method not in SOLVERS:
            raise ValueError(f"method must be one of {SOLVERS}, got {method!r}")
        self.method, self.n_rows, self.n_cols, self.n_obs = method, int(n_rows), int(n_cols), len(rows)
        order = np.lexsort((cols, rows)) if len(rows) else np.zeros(0, np.int64)  # by row, then column
        self.counts_np = np.bincount(rows, minlength=n_rows)
        self.counts = torch.from_numpy(self.counts_np).to(device)
        self._order = torch.from_numpy(order).to(device)
        indptr = np.concatenate([[0], np.cumsum(self.counts_np)])
        self.R = _csr(indptr, cols[order], torch.ones(len(cols), dtype=dtype), n_cols, device)
        if method == "cg":
            return
        self.chunks = self._padded_chunks(order, cols[order], device, int(budget))

    def _padded_chunks(self, order, cols, device, budget):
        """Rows sorted by length and cut into chunks whose padded size stays under ``budget`` and whose longest row
        is within 25% (+8) of the shortest; each chunk: its rows and its padded width. The padded columns and the
        observations' positions are gathered per chunk when it is solved (:meth:`gather`): kept for every chunk at
        once they would cost two padded copies of the observations (about 2 GB per side at Netflix's size)."""
        counts = self.counts_np
        self._starts = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)).to(device)
        self._cols = self.R.col_indices()  # the columns sorted by row, shared with R (no second copy)
        by_length = np.argsort(counts, kind="stable")
        sorted_counts = counts[by_length]
        chunks, start, n = [], 0, self.n_rows
        while start < n:
            span = np.arange(1, n - start + 1)
            padded = span * np.maximum(sorted_counts[start:], 1)
            end = start + max(1, int(np.searchsorted(padded, budget, side="right")))
            end = min(end, start + max(1, int(np.searchsorted(sorted_counts[start:],
                                                              1.25 * sorted_counts[start] + 8, side="right"))))
            chunks.append((torch.from_numpy(by_length[start:end].astype(np.int64)).to(device),
                           int(sorted_counts[end - 1])))
            start = end
        return chunks

    def gather(self, rows: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For a chunk's ``rows``: the padded columns (padding: ``n_cols``, the appended zero row) and the
        observations' positions in the input order (padding: ``n_obs``, an appended zero value)."""
        slot = torch.arange(width, device=rows.device)
        valid = slot[None, :] < self.counts[rows][:, None]
        pos = torch.where(valid, self._starts[rows][:, None] + slot[None, :], 0)
        if self.n_obs == 0:
            return torch.full_like(pos, self.n_cols), torch.full_like(pos, self.n_obs)
        return (torch.where(valid, self._cols[pos], self.n_cols), torch.where(valid, self._order[pos], self.n_obs))


def _padded(values: torch.Tensor) -> torch.Tensor:
    return torch.cat([values, values.new_zeros(1)])


def _rhs(weights, targets):
    """``a·t`` per observation, or None when both are 1."""
    if weights is None:
        return targets
    return weights if targets is None else weights * targets


def _cholesky_solve(A: torch.Tensor, b: torch.Tensor, definite: bool) -> torch.Tensor:
    """Batched Cholesky solves; where a system is not positive definite: a general solver (indefinite, ``w_0 > a``)
    or a tiny ridge (positive semi-definite: no penalty and fewer observations than unknowns)."""
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        if not definite:
            return torch.linalg.solve(A, b)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        L = torch.linalg.cholesky(A + (1e-4 * (A.diagonal(dim1=1, dim2=2).mean(1) + 1))[:, None, None] * eye)
    return torch.cholesky_solve(b.unsqueeze(-1), L).squeeze(-1)


def solve_rows(other: torch.Tensor, obs: Observations, out: torch.Tensor, reg: torch.Tensor, *,
               unobserved_weight: float = 0.0, weights: torch.Tensor | None = None,
               targets: torch.Tensor | None = None, cg_steps: int = 3, short_rows: bool = False) -> None:
    """One ALS half-sweep: every row of ``out`` (``(obs.n_rows, d)``, updated in place) set to the minimiser of the
    module docstring's objective given ``other`` (``(obs.n_cols, d)``).

    Parameters
    ----------
    reg : tensor of shape (n_rows,) or (n_rows, d)
        ``Λ_u``: one λ per row, or a diagonal per row.
    unobserved_weight : float
        ``w_0``.
    weights, targets : tensors of shape (n_obs,), optional
        ``a`` and ``t`` per observation (default 1), in the order the observations were given.
    cg_steps : int
        Conjugate-gradient steps (``obs.method == "cg"``), warm-started from ``out``.
    short_rows : bool
        Solve batches of rows with fewer than ``d / 2`` observations through the Woodbury identity (an ``n × n``
        system per row, ``n`` its observations, instead of a ``d × d`` one), when the penalty is one λ per row, the
        weights are 1 and ``0 < w_0 < 1``; the same minimiser up to rounding. Used by fold-in (Chapter 10), where a
        new user brings a handful of interactions; training keeps the plain Cholesky path.

    Rows without observations and without unobserved weight solve to zero.
    """
    if obs.method == "cg":
        _cg(other, obs, out, reg, unobserved_weight, weights, targets, cg_steps)
    else:
        _cholesky(other, obs, out, reg, unobserved_weight, weights, targets, short_rows)


def _woodbury(eig, P, lam, w) -> torch.Tensor:
    """Rows of ``(w·G + λ_u I + (1 − w)·PᵀP)⁻¹ Pᵀ1`` through the Woodbury identity: with ``G = Q diag(e) Qᵀ`` the
    shared part ``M_u = w·G + λ_u I`` inverts as ``Q diag(1 / (w·e + λ_u)) Qᵀ``, and only an ``n × n`` system
    ``diag(1 / (1 − w)) + P M_u⁻¹ Pᵀ`` per row is factorised (padding slots: zero rows of ``P``, identity there)."""
    Q, e = eig
    D = 1.0 / (w * e[None, :] + lam)                                   # (rows, k): M_u⁻¹ in Q's basis
    Pq = P @ Q                                                        # (rows, n, k)
    y = D * (P.sum(1) @ Q)                                            # M_u⁻¹ b in Q's basis, b = Pᵀ1
    S = torch.bmm(Pq * D[:, None, :], Pq.transpose(1, 2))
    valid = P.abs().sum(2) > 0
    S.diagonal(dim1=1, dim2=2).add_(torch.where(valid, 1.0 / (1.0 - w), 1.0).to(S.dtype))
    z = torch.cholesky_solve(torch.bmm(Pq, y.unsqueeze(-1)), torch.linalg.cholesky(S))
    return (y - D * torch.bmm(Pq.transpose(1, 2), z).squeeze(-1)) @ Q.T


def _cholesky(other, obs, out, reg, w, weights, targets, short_rows=False) -> None:
    k = other.shape[1]
    gram = w * (other.T @ other)
    eig = None
    if short_rows and weights is None and targets is None and reg.dim() == 1 and 0 < w < 1:
        e, Q = torch.linalg.eigh((other.T @ other).double())
        eig = (Q.to(other.dtype), e.clamp_min(0).to(other.dtype))
    padded_other = torch.cat([other, other.new_zeros(1, k)])
    unit = weights is None and targets is None
    if weights is not None:
        coef = _padded(weights - w)
    if not unit:  # b = Σ a·t·y for all rows in one sparse product
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b_all = same_pattern(obs.R, _rhs(weights, targets)[obs._order].to(other.dtype)) @ other
    definite = w <= 1.0 if weights is None else bool((weights >= w).all())  # no negative a − w
    empty = None if w > 0 else obs.counts == 0
    lam = reg[:, None] if reg.dim() == 1 else reg
    max_rows = max(1, 2 ** 26 // (k * k))  # the (rows, k, k) systems of one batch stay within 256 MB (float32)
    for rows_all, width in obs.chunks:
        for s in range(0, len(rows_all), max_rows):
            rows = rows_all[s:s + max_rows]
            idx, where = obs.gather(rows, width)
            P = padded_other[idx]                                      # (rows, width, k), zero rows in the padding
            if eig is not None and 2 * idx.shape[1] < k and bool((lam[rows] > 0).all()):
                out[rows] = _woodbury(eig, P, lam[rows], w)
                continue
            # A = w·G + (1 − w)·PᵀP + λ_u I (or Pᵀ diag(a − w) P), one fused pass plus an in-place diagonal update
            if weights is None:
                A = torch.baddbmm(gram.expand(len(rows), k, k), P.transpose(1, 2), P, alpha=1.0 - w)
            else:
                A = torch.baddbmm(gram.expand(len(rows), k, k), (P * coef[where][:, :, None]).transpose(1, 2), P)
            b = P.sum(1) if unit else b_all[rows]
            A.diagonal(dim1=1, dim2=2).add_(lam[rows])
            if empty is not None:
                A.diagonal(dim1=1, dim2=2).add_(empty[rows, None].to(A.dtype))  # no data: a zero row, solvable
            out[rows] = _cholesky_solve(A, b, definite)


def _cg(other, obs, X, reg, w, weights, targets, steps) -> None:
    """``steps`` conjugate-gradient steps for all rows at once, without forming the ``k × k`` matrices: the product
    ``A_u p_u = w·Gp_u + Σ_{j∈O_u} (a − w) y_j (y_jᵀ p_u) + Λ_u p_u`` comes from a sampled dense-dense product (the
    ``y_jᵀ p_u`` on the observed cells only) and a sparse-dense product (the ``implicit`` library's default ALS).

    Every step is a few whole-matrix operations, each one pass over memory, and every sampled product writes into
    the values of one tensor that shares ``R``'s index arrays (a fresh result would copy them each time). Solving
    blocks of rows in Python threads was measured and was slower on two cores.
    """
    R = obs.R
    gram = w * (other.T @ other)
    lam = reg[:, None] if reg.dim() == 1 else reg
    if reg.dim() == 1 and len(reg) and bool(reg.min() == reg.max()):
        gram.diagonal().add_(reg[0])  # one λ for every row: λI joins the Gram matrix
        lam = None
    other_t = other.T.contiguous()
    order = obs._order
    if weights is None:  # a = 1: one scale (1 − w) for every observed cell
        other_scaled = other * (1.0 - w)
    else:
        coef = (weights - w)[order]
    rhs = _rhs(weights, targets)
    rhs = None if rhs is None else rhs[order]
    dots = torch.sparse.sampled_addmm(R, X, other_t, beta=0.0, out=same_pattern(R))  # y_jᵀ x_u, observed cells
    # the residual b − A x in ONE sparse product: its values are a·t − (a − w)·y_jᵀx_u on the observed cells
    dots.values().mul_(-(1.0 - w) if weights is None else -coef).add_(1.0 if rhs is None else rhs)
    residual = torch.mm(dots, other).addmm_(X, gram, alpha=-1.0)
    if lam is not None:
        residual.addcmul_(lam, X, value=-1.0)
    direction = residual.clone()
    rs = torch.linalg.vecdot(residual, residual)
    for step in range(steps):
        torch.sparse.sampled_addmm(R, direction, other_t, beta=0.0, out=dots)   # y_jᵀ p_u
        if weights is None:
            Ap = torch.mm(dots, other_scaled).addmm_(direction, gram)
        else:
            dots.values().mul_(coef)
            Ap = torch.mm(dots, other).addmm_(direction, gram)
        if lam is not None:
            Ap.addcmul_(lam, direction)
        pAp = torch.linalg.vecdot(direction, Ap)
        alpha = torch.where(pAp > 0, rs / pAp, 0.0)   # pAp ≤ 0 only where the direction vanished (or A is indefinite)
        X.addcmul_(alpha[:, None], direction)
        if step == steps - 1:  # the last step needs no new residual or direction
            break
        residual.addcmul_(alpha[:, None], Ap, value=-1.0)
        rs_new = torch.linalg.vecdot(residual, residual)
        beta = torch.where(rs > 0, rs_new / rs, 0.0)
        torch.addcmul(residual, direction, beta[:, None], out=direction)
        rs = rs_new
