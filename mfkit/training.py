"""The training loop the chapters share: any torch optimizer by name, per-epoch records, early stopping, progress bars.

Used by: Chapter 2 (dense and Gram weighted MF), Chapter 3 (sigmoid and logistic variants), Chapter 4 (the optimizer
comparison: :func:`lr_sweep`, :func:`row_update_counts`, :func:`effective_learning_rate`), Chapter 5 (autograd biased
MF) and Chapter 7 (neural models).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch

from .utils import progress

__all__ = ["DivergenceError", "History", "OPTIMIZERS", "LRSweep", "effective_learning_rate", "lr_sweep",
           "make_optimizer", "minibatches", "row_update_counts", "train_loop"]


class DivergenceError(FloatingPointError):
    """The loss became NaN or infinite."""


def _sgd_momentum(params, lr, **kw):
    return torch.optim.SGD(params, lr=lr, momentum=kw.pop("momentum", 0.9), **kw)


# name -> factory(params, lr, **kwargs). Names are lower case; "momentum" is SGD with momentum 0.9.
OPTIMIZERS: dict[str, Callable] = {
    "sgd": lambda p, lr, **kw: torch.optim.SGD(p, lr=lr, **kw),
    "momentum": _sgd_momentum,
    "adagrad": lambda p, lr, **kw: torch.optim.Adagrad(p, lr=lr, **kw),
    "rmsprop": lambda p, lr, **kw: torch.optim.RMSprop(p, lr=lr, **kw),
    "adam": lambda p, lr, **kw: torch.optim.Adam(p, lr=lr, **kw),
    "adamw": lambda p, lr, **kw: torch.optim.AdamW(p, lr=lr, **kw),
    "sparseadam": lambda p, lr, **kw: torch.optim.SparseAdam(p, lr=lr, **kw),  # needs sparse gradients
}


def make_optimizer(name: str | torch.optim.Optimizer, params, lr: float, **kwargs) -> torch.optim.Optimizer:
    """Build a torch optimizer from a name in :data:`OPTIMIZERS` (an optimizer instance is returned unchanged).

    Parameters
    ----------
    name : str or torch.optim.Optimizer
        ``"sgd"``, ``"momentum"`` (also ``"sgd+momentum"``, ``"sgdm"``), ``"adagrad"``, ``"rmsprop"``, ``"adam"``,
        ``"adamw"`` or ``"sparseadam"``; case, ``-``, ``_`` and ``+`` are ignored.
    params : iterable of tensors
        What to optimise.
    lr : float
        Learning rate (must be positive).
    **kwargs
        Passed to the torch optimizer (``weight_decay``, ``betas``...).

    Raises
    ------
    ValueError
        For an unknown name or a learning rate that is not positive.
    """
    if isinstance(name, torch.optim.Optimizer):
        return name
    if not isinstance(name, str):
        raise ValueError(f"optimizer must be a name or a torch.optim.Optimizer, got {type(name).__name__}")
    key = name.lower().replace("_", "").replace("-", "").replace("+", "").replace(" ", "")
    if key in ("sgdmomentum", "sgdm"):
        key = "momentum"
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return OPTIMIZERS[key](list(params), lr, **kwargs)


def minibatches(n: int, batch_size: int, device="cpu", generator: torch.Generator | None = None,
                shuffle: bool = True) -> Iterable[torch.Tensor]:
    """Index tensors of a (shuffled) pass over ``n`` rows, made on ``device`` — no DataLoader, no per-row Python.

    Every index in ``0..n-1`` appears in exactly one batch; all batches have ``batch_size`` rows but the last.
    The permutation is drawn on the CPU (with ``generator`` when given), so a seed gives the same batches on every
    device.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    if n == 0:
        return ()
    order = (torch.randperm(n, generator=generator, device="cpu").to(device) if shuffle
             else torch.arange(n, device=device))
    return order.split(batch_size)


@dataclass
class History:
    """What :func:`train_loop` recorded: one row per epoch (``epoch``, ``steps``, ``loss``, ``seconds``, ``metric``).

    ``steps`` is the cumulative number of optimizer steps, ``seconds`` the cumulative training time (evaluation
    excluded), ``metric`` the held-out metric (absent for epochs that were not evaluated).
    """

    records: list = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)

    @property
    def loss(self) -> list[float]:
        return [r["loss"] for r in self.records]

    @property
    def metric(self) -> list[float]:
        return [r.get("metric") for r in self.records]

    @property
    def steps(self) -> list[int]:
        return [r.get("steps") for r in self.records]

    @property
    def seconds(self) -> list[float]:
        return [r["seconds"] for r in self.records]


def _is_better(metric: float, best: float | None, higher_is_better: bool) -> bool:
    if math.isnan(metric):
        return False
    if best is None or math.isnan(best):
        return True
    return metric > best if higher_is_better else metric < best


def train_loop(loss_fn: Callable, parameters, *, optimizer: str | torch.optim.Optimizer = "adam", lr: float = 0.01,
               n_epochs: int = 10, batches: Callable[[int], Iterable] | None = None,
               evaluate: Callable[[], float] | None = None, higher_is_better: bool = True, patience: int | None = None,
               restore_best: bool = True, eval_every: int = 1, optimizer_kwargs: dict | None = None,
               show_progress: bool | None = None, desc: str = "training",
               divergence_hint: str = "Lower the learning rate or raise the regularisation.",
               on_epoch_end: Callable[[int], None] | None = None) -> History:
    """Minimise ``loss_fn`` with a torch optimizer, recording loss, held-out metric and wall time per epoch.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(batch) -> scalar tensor``; ``batch`` is whatever ``batches(epoch)`` yields (``None`` when
        ``batches`` is None: one full-batch step per epoch).
    parameters : torch.nn.Module or iterable of tensors
        What the optimizer updates (and what early stopping restores).
    optimizer : str or torch.optim.Optimizer
        A name from :data:`OPTIMIZERS` ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "sparseadam"), or
        an optimizer built beforehand (to inspect its state afterwards, as Chapter 4 does); ``lr`` and
        ``optimizer_kwargs`` are then ignored.
    lr : float
        Learning rate.
    n_epochs : int
        Maximum number of epochs.
    batches : callable, optional
        ``batches(epoch)`` yields the batches of one epoch (e.g. ``lambda e: minibatches(n, 1024, device)``).
    evaluate : callable, optional
        Returns the held-out metric (nDCG, RMSE...). Its time is not counted in ``seconds``.
    higher_is_better : bool
        Direction of the metric (False for RMSE).
    patience : int, optional
        Stop after this many evaluations in a row without improvement of the metric.
    restore_best : bool
        With ``evaluate``, put back the parameters of the best evaluated epoch at the end.
    eval_every : int
        Evaluate every ``eval_every`` epochs (and after the last one); cheap full-batch steps need not pay for a
        ranking evaluation each time.
    optimizer_kwargs : dict, optional
        Passed to the optimizer (``weight_decay``, ``momentum``, ``betas``...).
    show_progress : bool, optional
        Progress bar; default follows :func:`mfkit.utils.progress_enabled`.
    divergence_hint : str
        Appended to the :class:`DivergenceError` message.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch)`` after each epoch (before evaluation).

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When the loss becomes NaN or infinite; the message carries ``divergence_hint``. The check runs once per
        epoch on a loss summed on the device, so a GPU is not synchronised after every batch.
    ValueError
        For ``n_epochs < 1``, ``eval_every < 1`` or ``patience < 1``.
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 (or None), got {patience}")
    module = parameters if isinstance(parameters, torch.nn.Module) else None
    params = list(module.parameters() if module is not None else parameters)
    opt = make_optimizer(optimizer, params, lr, **(optimizer_kwargs or {}))
    opt_name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
    history = History()
    best_state, since_best, elapsed, steps = None, 0, 0.0, 0
    bar = progress(range(n_epochs), enabled=show_progress, desc=desc, unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        total, count = None, 0
        for batch in (batches(epoch) if batches is not None else [None]):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            loss.backward()
            opt.step()
            # Summed on the device: one host sync per epoch, not per batch.
            total = loss.detach() if total is None else total + loss.detach()
            count += 1
        if count == 0:
            raise ValueError(f"batches({epoch}) yielded no batch")
        mean_loss = float(total) / count
        steps += count
        if not math.isfinite(mean_loss):
            raise DivergenceError(f"the loss became {mean_loss} at epoch {epoch + 1} (optimizer {opt_name}, "
                                  f"lr {opt.param_groups[0]['lr']:g}). {divergence_hint}")
        if params and params[0].is_cuda:
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        record = {"epoch": epoch + 1, "steps": steps, "loss": mean_loss, "seconds": elapsed}
        last = epoch == n_epochs - 1
        if evaluate is not None and ((epoch + 1) % eval_every == 0 or last):
            with torch.no_grad():
                metric = float(evaluate())
            record["metric"] = metric
            if _is_better(metric, history.best_metric, higher_is_better):
                history.best_metric, history.best_epoch, since_best = metric, epoch + 1, 0
                if restore_best:
                    best_state = (copy.deepcopy(module.state_dict()) if module is not None
                                  else [p.detach().clone() for p in params])
            else:
                since_best += 1
            bar.set_postfix(loss=f"{mean_loss:.4g}", metric=f"{metric:.4f}")
        else:
            bar.set_postfix(loss=f"{mean_loss:.4g}")
        history.records.append(record)
        if patience is not None and evaluate is not None and since_best >= patience:
            history.stopped_early = True
            break
    if restore_best and best_state is not None:
        with torch.no_grad():
            if module is not None:
                module.load_state_dict(best_state)
            else:
                for p, b in zip(params, best_state):
                    p.copy_(b)
    return history


# -- Chapter 4: why per-parameter learning rates suit embeddings -------------------------------------------------

def row_update_counts(rows, n_rows: int, batch_size: int, n_epochs: int = 1, generator: torch.Generator | None = None,
                      device=None) -> torch.Tensor:
    """How many minibatch steps give each embedding row a nonzero data gradient.

    With minibatches of observed interactions (what :func:`minibatches` makes), a row (an item, say) gets a gradient
    from the data only in the steps whose batch contains one of its interactions: a popular item in nearly every step,
    a rare one in a handful. Chapter 4 uses this long tail to motivate per-parameter learning rates (Adagrad, Duchi,
    Hazan & Singer 2011; Adam, Kingma & Ba 2015).

    Parameters
    ----------
    rows : array-like or tensor of int
        The row (e.g. item index) of each interaction.
    n_rows : int
        Number of rows of the embedding table (rows that never appear count 0).
    batch_size : int
        Interactions per step.
    n_epochs : int
        Shuffled passes to count over.
    generator : torch.Generator, optional
        For the shuffles (same batches as :func:`minibatches` with this generator).
    device : str or torch.device, optional
        Where to count (None: :func:`mfkit.utils.get_device`).

    Returns
    -------
    torch.Tensor
        int64 counts of shape ``(n_rows,)``, each between 0 and the number of steps.
    """
    from .utils import get_device

    device = get_device(device)
    rows = torch.as_tensor(rows, device=device).long().reshape(-1)
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= n_rows):
        raise ValueError(f"rows must lie in [0, {n_rows}), got values in [{int(rows.min())}, {int(rows.max())}]")
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    counts = torch.zeros(n_rows, dtype=torch.long, device=device)
    for _ in range(n_epochs):
        order = torch.cat(list(minibatches(len(rows), batch_size, device, generator))) if len(rows) else rows
        step = torch.arange(len(rows), device=device) // batch_size
        # One (step, row) pair counts once however many interactions of the row the batch holds.
        pairs = torch.unique(step * n_rows + rows[order])
        counts += torch.bincount(pairs % n_rows, minlength=n_rows)
    return counts


def effective_learning_rate(optimizer: torch.optim.Optimizer, param: torch.Tensor,
                            per_row: bool = True) -> torch.Tensor:
    """The step size an optimizer currently applies to each entry (or row) of ``param``.

    The factor the (momentum-averaged) gradient is multiplied by in the next step: ``lr`` for SGD (with or without
    momentum); ``lr / (sqrt(G) + eps)`` for Adagrad (``G`` the sum of squared gradients; Duchi, Hazan & Singer
    2011); ``lr / (sqrt(v) + eps)`` for RMSprop (``v`` the running mean of squared gradients; Tieleman & Hinton 2012);
    ``lr / (sqrt(v / (1 - beta2^t)) + eps)`` for Adam, AdamW and SparseAdam (Kingma & Ba 2015). Entries that have
    not received a gradient yet have ``G = v = 0`` and so a huge factor: their first step is about ``lr`` in size
    whatever the gradient's scale.

    Used by: Chapter 4 (the per-row steps of Adagrad and Adam against SGD, by item popularity).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        An SGD, Adagrad, RMSprop, Adam, AdamW or SparseAdam optimizer that holds ``param``.
    param : torch.Tensor
        One of its parameters (an embedding table).
    per_row : bool
        Average over all dimensions but the first (one value per embedding row).

    Returns
    -------
    torch.Tensor
        On ``param``'s device; shape ``param.shape`` or ``(param.shape[0],)``.
    """
    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    if group is None:
        raise ValueError("param is not one of the optimizer's parameters")
    lr = float(group["lr"])
    state = optimizer.state.get(param, {})
    p = param.detach()
    if isinstance(optimizer, torch.optim.SGD):
        rate = torch.full_like(p, lr)
    elif isinstance(optimizer, torch.optim.Adagrad):
        step = float(state.get("step", 0))
        clr = lr / (1 + max(step - 1, 0) * group["lr_decay"])
        accumulated = state.get("sum", torch.full_like(p, group["initial_accumulator_value"]))
        rate = clr / (accumulated.sqrt() + group["eps"])
    elif isinstance(optimizer, torch.optim.RMSprop):
        square_avg = state.get("square_avg", torch.zeros_like(p))
        if group.get("centered") and "grad_avg" in state:
            square_avg = square_avg - state["grad_avg"] ** 2
        rate = lr / (square_avg.sqrt() + group["eps"])
    elif isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SparseAdam)):
        step = float(state.get("step", 0))
        beta2 = group["betas"][1]
        exp_avg_sq = state.get("exp_avg_sq", torch.zeros_like(p))
        correction = 1 - beta2 ** step if step > 0 else 1.0
        rate = lr / ((exp_avg_sq / correction).sqrt() + group["eps"])
    else:
        raise ValueError(f"no effective learning rate known for {type(optimizer).__name__}; expected SGD, Adagrad, "
                         "RMSprop, Adam, AdamW or SparseAdam")
    rate = rate.to_dense() if rate.is_sparse else rate
    if per_row and rate.dim() > 1:
        rate = rate.reshape(rate.shape[0], -1).mean(dim=1)
    return rate


@dataclass
class LRSweep:
    """Result of :func:`lr_sweep`: a table with one row per (optimizer, lr) and the histories behind it."""

    frame: pd.DataFrame
    histories: dict
    higher_is_better: bool = True

    def best(self) -> pd.DataFrame:
        """One row per optimizer: the learning rate with the best held-out metric (diverged runs never win)."""
        ok = self.frame[~self.frame["diverged"] & self.frame["best_metric"].notna()]
        if ok.empty:
            raise ValueError("every run of the sweep diverged or had no metric")
        idx = (ok.groupby("optimizer", sort=False)["best_metric"].idxmax() if self.higher_is_better
               else ok.groupby("optimizer", sort=False)["best_metric"].idxmin())
        return ok.loc[idx.values].reset_index(drop=True)

    def best_lr(self) -> dict:
        """``{optimizer: lr}`` chosen by :meth:`best`."""
        b = self.best()
        return dict(zip(b["optimizer"], b["lr"]))


def lr_sweep(run: Callable[[str, float], History], learning_rates: dict | Sequence[float],
             optimizers: Sequence[str] | None = None, higher_is_better: bool = True,
             show_progress: bool | None = None) -> LRSweep:
    """Train once per (optimizer, learning rate) and tabulate the held-out metric of each run.

    An optimizer compared at one untuned learning rate is mostly a comparison of how well that rate suits it (Wilson
    et al. 2017, "The marginal value of adaptive gradient methods"; Choi et al. 2019, "On empirical comparisons of
    optimizers for deep learning"): Chapter 4 tunes each optimizer's rate on the validation part first.

    Parameters
    ----------
    run : callable
        ``run(optimizer_name, lr) -> History`` with a validation metric (e.g. a :func:`train_loop` call). A run that
        raises :class:`DivergenceError` is recorded as diverged.
    learning_rates : dict or sequence of float
        ``{optimizer: [lr, ...]}`` (each optimizer its own grid), or one grid for every name in ``optimizers``.
    optimizers : sequence of str, optional
        Needed when ``learning_rates`` is a plain grid.
    higher_is_better : bool
        Direction of the metric.
    show_progress : bool, optional
        Progress bar over the runs.

    Returns
    -------
    LRSweep
        ``frame`` columns: ``optimizer``, ``lr``, ``best_metric``, ``best_epoch``, ``final_metric``, ``final_loss``,
        ``seconds``, ``diverged``; ``histories[(optimizer, lr)]`` (None for diverged runs).
    """
    if not isinstance(learning_rates, dict):
        if optimizers is None:
            raise ValueError("give optimizers, or learning_rates as a dict {optimizer: [lr, ...]}")
        learning_rates = {name: list(learning_rates) for name in optimizers}
    jobs = [(name, float(lr)) for name, grid in learning_rates.items() for lr in grid]
    if not jobs:
        raise ValueError("the sweep is empty: give at least one learning rate")
    rows, histories = [], {}
    for name, lr in progress(jobs, enabled=show_progress, desc="lr sweep", unit="run"):
        try:
            hist = run(name, lr)
        except DivergenceError:
            hist = None
        histories[(name, lr)] = hist
        metrics = [] if hist is None else [m for m in hist.metric if m is not None]
        diverged = hist is None or any(not math.isfinite(m) for m in metrics)
        rows.append({"optimizer": name, "lr": lr,
                     "best_metric": float("nan") if hist is None or hist.best_metric is None else hist.best_metric,
                     "best_epoch": None if hist is None else hist.best_epoch,
                     "final_metric": metrics[-1] if metrics else float("nan"),
                     "final_loss": float("nan") if hist is None else hist.loss[-1],
                     "seconds": float("nan") if hist is None else hist.seconds[-1],
                     "diverged": diverged})
    return LRSweep(pd.DataFrame(rows), histories, higher_is_better)
