"""How every mfkit model trains and is tuned: one epoch loop, the torch-optimizer loop on top of it, one tuner.

* :func:`epoch_loop`: per-epoch records (loss, cumulative seconds, validation metric), early stopping with the best
  epoch restored, and divergence detection (a NaN/inf loss, or one that grew by orders of magnitude, with a message
  naming the likely cause). Weighted and biased ALS, Funk SGD and the Gibbs sampler run through it directly.
* :func:`train_loop`: any torch optimizer by name (:data:`OPTIMIZERS`) over minibatches, as epochs of
  :func:`epoch_loop`; the gradient solvers of weighted MF, autograd biased MF, NCF and the two-tower model use it.
* :func:`tune`: hyperparameters of any model on a validation part of the training data (grid or list of settings,
  metric, protocol, refit).

Used by: Chapter 2 (dense and Gram weighted MF, tuning), Chapter 3 (sigmoid and logistic variants), Chapter 4 (the
optimizer comparison: :func:`lr_sweep`, :func:`row_update_counts`, :func:`effective_learning_rate`), Chapters 5–6
(biased MF, tuning) and Chapter 7 (neural models), through the models of :mod:`mfkit.implicit`,
:mod:`mfkit.explicit` and :mod:`mfkit.neural`.
"""
from __future__ import annotations

import copy
import inspect
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from .data.splits import train_validation_split
from .base import rating_errors
from .metrics import NonFiniteError, ranking_metrics
from .utils import get_device, progress

__all__ = ["DivergenceError", "History", "OPTIMIZERS", "LRSweep", "check_optimizer", "effective_learning_rate", "epoch_loop", "lr_sweep",
           "make_optimizer", "minibatches", "row_update_counts", "train_loop", "tune", "TuneResult", "grid_points"]


class DivergenceError(FloatingPointError):
    """The loss became NaN or infinite, or grew by orders of magnitude (see :func:`epoch_loop`)."""


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


def check_optimizer(name) -> str:
    """The key of :data:`OPTIMIZERS` that ``name`` means (case, ``-``, ``_``, ``+`` and spaces ignored), or a
    ValueError listing the names; an optimizer instance passes as is. Models call it in ``__init__``."""
    if isinstance(name, torch.optim.Optimizer):
        return name
    if not isinstance(name, str):
        raise ValueError(f"optimizer must be a name or a torch.optim.Optimizer, got {type(name).__name__}")
    key = name.lower().replace("_", "").replace("-", "").replace("+", "").replace(" ", "")
    if key in ("sgdmomentum", "sgdm"):
        key = "momentum"
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return key


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
    key = check_optimizer(name)
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


def _check_loss(loss: float, reference: float | None, epoch: int, unit: str, explode_factor: float | None,
                context: str, hint: str) -> None:
    """Raise :class:`DivergenceError` for a non-finite loss, or one ``explode_factor`` times the reference."""
    if not math.isfinite(loss):
        raise DivergenceError(f"the loss became {loss} at {unit} {epoch + 1}{context}. {hint}")
    if explode_factor is not None and reference is not None and math.isfinite(reference) \
            and abs(loss) > explode_factor * max(abs(reference), 1e-12):
        raise DivergenceError(f"the loss exploded from {reference:.4g} to {loss:.4g} (more than {explode_factor:g} "
                              f"times) by {unit} {epoch + 1}{context}. {hint}")


def epoch_loop(epoch_fn: Callable[[int], float | dict | None], n_epochs: int, *,
               evaluate: Callable[[], float | None] | None = None, higher_is_better: bool = True,
               patience: int | None = None, eval_every: int = 1, snapshot: Callable[[], object] | None = None,
               restore: Callable[[object], None] | None = None, measure: Callable[[int], float] | None = None,
               on_epoch_end: Callable[[int], None] | None = None, device=None, show_progress: bool | None = None,
               desc: str = "training", unit: str = "epoch", context: str = "",
               divergence_hint: str = "Lower the learning rate or raise the regularisation.",
               explode_factor: float | None = 1e4, reference_loss: Callable[[], float] | None = None) -> History:
    """The one epoch loop of mfkit: timing, history, validation, early stopping, best-epoch restore, divergence.

    Every model trains through it: the gradient models through :func:`train_loop` (which makes ``epoch_fn`` a pass
    of optimizer steps), the closed-form and hand-written ones (weighted and biased ALS, Funk SGD, the Gibbs
    sampler) directly.

    Parameters
    ----------
    epoch_fn : callable
        ``epoch_fn(epoch)`` runs one epoch (0-based) and returns its training loss, or a dict of record fields
        with a ``"loss"`` key (and e.g. ``"steps"``), or None when ``measure`` gives the loss.
    n_epochs : int
        Maximum number of epochs (0 runs none and returns an empty history).
    evaluate : callable, optional
        Held-out metric, called without gradients every ``eval_every`` epochs and after the last; its time is not
        counted in ``seconds``. It may return None (nothing to evaluate yet, e.g. during a burn-in).
    higher_is_better : bool
        Direction of the metric.
    patience : int, optional
        Stop after this many evaluations in a row without a better metric.
    snapshot, restore : callables, optional
        ``snapshot()`` copies the parameters at each new best evaluation, ``restore(copy)`` puts the best back at
        the end (both needed for best-epoch restore).
    measure : callable, optional
        ``measure(epoch)`` computes the training loss after the clock stops (a separate pass of a closed-form
        method whose loss is not part of its update).
    on_epoch_end : callable, optional
        Called with the epoch after the divergence check, before evaluation.
    device : torch.device, optional
        CUDA devices are synchronised before the clock stops, so ``seconds`` is the true time.
    show_progress, desc, unit : progress bar settings (``unit`` also names the epochs in error messages).
    context : str
        Appended to the epoch in error messages (e.g. ``" (optimizer adam, lr 0.01)"``).
    divergence_hint : str
        The likely cause and remedy, appended to the :class:`DivergenceError` message.
    explode_factor : float or None
        Raise :class:`DivergenceError` when the loss exceeds this many times the reference loss (a loss that grows
        by orders of magnitude has diverged even while it is finite, e.g. Adam with a learning rate of 1e6).
        None: only NaN/inf count.
    reference_loss : callable, optional
        The reference for ``explode_factor`` (read after the first epoch); default: the first epoch's loss.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        A NaN/inf loss, or one that exploded.
    ValueError
        ``n_epochs < 0``, ``eval_every < 1`` or ``patience < 1``.
    """
    if int(n_epochs) < 0:
        raise ValueError(f"n_epochs must be >= 0, got {n_epochs}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 (or None), got {patience}")
    cuda = device is not None and torch.device(device).type == "cuda"
    history = History()
    best_state, since_best, elapsed, reference = None, 0, 0.0, None
    bar = progress(range(int(n_epochs)), enabled=show_progress, desc=desc, unit=unit)
    for epoch in bar:
        t0 = time.perf_counter()
        out = epoch_fn(epoch)
        if cuda:
            torch.cuda.synchronize(device)
        elapsed += time.perf_counter() - t0
        record = {"epoch": epoch + 1}
        if measure is not None:
            record["loss"] = float(measure(epoch))
        elif isinstance(out, dict):
            record.update(out)
            record["loss"] = float(record["loss"])
        else:
            record["loss"] = float(out)
        record["seconds"] = elapsed
        loss = record["loss"]
        if reference is None and math.isfinite(loss):
            reference = float(reference_loss()) if reference_loss is not None else loss
        _check_loss(loss, reference, epoch, unit, explode_factor, context, divergence_hint)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        metric = None
        if evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch == n_epochs - 1):
            with torch.no_grad():
                try:
                    metric = evaluate()
                except NonFiniteError as e:  # NaN/inf predictions after a finite loss: the step diverged
                    raise DivergenceError(f"the model's predictions became non-finite at {unit} {epoch + 1}"
                                          f"{context} ({e}). {divergence_hint}") from e
        if metric is not None:
            metric = float(metric)
            record["metric"] = metric
            if _is_better(metric, history.best_metric, higher_is_better):
                history.best_metric, history.best_epoch, since_best = metric, epoch + 1, 0
                if snapshot is not None:
                    best_state = snapshot()
            else:
                since_best += 1
            bar.set_postfix(loss=f"{loss:.4g}", metric=f"{metric:.4f}")
        else:
            bar.set_postfix(loss=f"{loss:.4g}")
        history.records.append(record)
        if patience is not None and evaluate is not None and since_best >= patience:
            history.stopped_early = True
            break
    if restore is not None and best_state is not None:
        with torch.no_grad():
            restore(best_state)
    return history


def train_loop(loss_fn: Callable, parameters, *, optimizer: str | torch.optim.Optimizer = "adam", lr: float = 0.01,
               n_epochs: int = 10, batches: Callable[[int], Iterable] | None = None,
               evaluate: Callable[[], float] | None = None, higher_is_better: bool = True, patience: int | None = None,
               restore_best: bool = True, eval_every: int = 1, optimizer_kwargs: dict | None = None,
               show_progress: bool | None = None, desc: str = "training",
               divergence_hint: str = "Lower the learning rate or raise the regularisation.",
               on_epoch_end: Callable[[int], None] | None = None, explode_factor: float | None = 1e4) -> History:
    """Minimise ``loss_fn`` with a torch optimizer, recording loss, held-out metric and wall time per epoch.

    The epochs run through :func:`epoch_loop`; an epoch here is one optimizer step per batch.

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
    explode_factor : float or None
        An epoch's mean loss above this many times the loss of the very first batch (the loss at the starting
        point) raises :class:`DivergenceError`, as a NaN does (see :func:`epoch_loop`).

    Returns
    -------
    History
        With ``steps``, the cumulative number of optimizer steps, in each record.

    Raises
    ------
    DivergenceError
        When the loss becomes NaN or infinite, or explodes; the message carries ``divergence_hint``. The check
        runs once per epoch on a loss summed on the device, so a GPU is not synchronised after every batch.
    ValueError
        For ``n_epochs < 1``, ``eval_every < 1`` or ``patience < 1``.
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    module = parameters if isinstance(parameters, torch.nn.Module) else None
    params = list(module.parameters() if module is not None else parameters)
    opt = make_optimizer(optimizer, params, lr, **(optimizer_kwargs or {}))
    opt_name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
    counters = {"steps": 0, "first": None}

    def one_epoch(epoch):
        total, count = None, 0
        for batch in (batches(epoch) if batches is not None else [None]):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            loss.backward()
            opt.step()
            # Summed on the device: one host sync per epoch, not per batch.
            total = loss.detach() if total is None else total + loss.detach()
            if counters["first"] is None:
                counters["first"] = total
            count += 1
        if count == 0:
            raise ValueError(f"batches({epoch}) yielded no batch")
        counters["steps"] += count
        return {"steps": counters["steps"], "loss": float(total) / count}

    def snapshot():
        return copy.deepcopy(module.state_dict()) if module is not None else [p.detach().clone() for p in params]

    def restore(state):
        if module is not None:
            module.load_state_dict(state)
        else:
            for p, b in zip(params, state):
                p.copy_(b)

    return epoch_loop(one_epoch, n_epochs, evaluate=evaluate, higher_is_better=higher_is_better, patience=patience,
                      eval_every=eval_every, snapshot=snapshot if restore_best else None,
                      restore=restore if restore_best else None, on_epoch_end=on_epoch_end,
                      device=params[0].device if params else None, show_progress=show_progress, desc=desc,
                      context=f" (optimizer {opt_name}, lr {opt.param_groups[0]['lr']:g})",
                      divergence_hint=divergence_hint, explode_factor=explode_factor,
                      reference_loss=lambda: float(counters["first"]))


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


# -- One tuner for every model ------------------------------------------------------------------------------------

_LOWER_IS_BETTER = ("rmse", "mae")
_RANKING = ("ndcg", "precision", "recall", "map", "hit_rate")


def grid_points(grid) -> list[dict]:
    """The candidates of a grid: the Cartesian product of a dict's values (a scalar counts as a one-value list),
    or the dicts of a list, in order. ValueError when empty or malformed."""
    if isinstance(grid, dict):
        keys = list(grid)
        values = [v if isinstance(v, (list, tuple)) else [v] for v in grid.values()]
        points = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    else:
        points = [dict(p) if isinstance(p, dict) else p for p in grid]
        if not all(isinstance(p, dict) for p in points):
            raise ValueError("grid must be a dict of lists (its Cartesian product is searched) or a list of dicts")
    if not points:
        raise ValueError("grid is empty: give at least one candidate")
    return points


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    best_params : dict
        Constructor arguments of the best candidate (``base_params`` included; ``n_epochs`` set to its best
        epoch when epochs were selected).
    table : pandas.DataFrame
        One row per candidate, best first: its parameters (tuples as strings), the validation metric (a column
        named after it), ``best_epoch`` (models trained by epochs) and ``fit_s`` (wall seconds of the fit).
    model : fitted model or None
        The best candidate refitted on all of ``train`` (``refit=True``).
    metric : str
        The metric that chose.
    """

    best_params: dict
    table: pd.DataFrame
    model: object | None = None
    metric: str = "ndcg"


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def validation_score(model, train, valid, metric: str, k: int = 10, clip=(1, 5)) -> float:
    """``metric`` of a fitted model on ``valid``: RMSE/MAE of its predictions (clipped to ``clip``), or a top-``k``
    ranking metric with ``train``'s items excluded (protocol I1). Used by :func:`tune`."""
    if metric in _LOWER_IS_BETTER:
        return rating_errors(model, valid, clip)[metric]
    return float(ranking_metrics(model, train, valid, k=k, device=getattr(model, "device_", None))[metric])


def tune(model, train, grid, *, base_params: dict | None = None, metric: str | None = None, k: int = 10,
         protocol: str | None = None, seed=0, valid_split=None, per_epoch: bool = True, patience: int | None = None,
         select_epochs: bool | None = None, refit: bool = False, clip=(1, 5),
         show_progress: bool | None = None) -> TuneResult:
    """Choose hyperparameters of any mfkit model on a validation part carved from ``train`` (never the test part).

    ``train`` is split with :func:`mfkit.data.train_validation_split` (``protocol``, ``seed``); every candidate is
    fitted on the inner part and scored on the validation part; the best is optionally refitted on all of ``train``.

    Used by: Chapters 2, 5, 6 and 7 and the benchmarks (the one tuner: every model, one return shape).

    Parameters
    ----------
    model : model class or callable
        ``model(**params)`` returns an unfitted model (a class such as ``WeightedMF``, or a factory such as
        ``lambda **kw: BiasedMF(n_factors=20, **kw)``).
    train : Interactions
        The training part of a protocol's split.
    grid : dict of lists or list of dicts
        Candidates (:func:`grid_points`).
    base_params : dict, optional
        Constructor arguments shared by every candidate (``n_epochs`` is then the most epochs tried).
    metric : str, optional
        ``"rmse"``, ``"mae"`` (lower is better) or ``"ndcg"``, ``"precision"``, ``"recall"``, ``"map"``,
        ``"hit_rate"`` (at ``k``); default: the model's ``default_metric`` (RMSE for rating models, nDCG@k else).
    k : int
        Cut-off of the ranking metrics.
    protocol : str, optional
        How the validation part is carved: default ``"E1"`` for RMSE/MAE, ``"I1"`` for ranking metrics.
    seed : int
        Seed of the validation split.
    valid_split : (inner, valid), optional
        A ready-made split (to share one across calls).
    per_epoch : bool
        Fit each candidate with ``valid`` so that models trained by epochs record the metric per epoch and keep
        their best epoch (models without epochs ignore it). False: fit on ``inner`` alone and score the end result.
    patience : int, optional
        Early stopping of each candidate (needs ``per_epoch``).
    select_epochs : bool, optional
        Set ``n_epochs`` of the best parameters to the best candidate's best epoch (default: ``per_epoch``).
    refit : bool
        Refit the best parameters on all of ``train`` (``TuneResult.model``).
    clip : (low, high) or None
        Rating scale for RMSE/MAE.
    show_progress : bool, optional
        Progress bar over the candidates.

    Returns
    -------
    TuneResult
    """
    base = dict(base_params or {})
    points = grid_points(grid)
    if patience is not None and not per_epoch:
        raise ValueError("patience needs per_epoch=True (early stopping watches the per-epoch validation metric)")
    select_epochs = per_epoch if select_epochs is None else select_epochs
    rows, best_epochs = [], []
    for j, point in enumerate(progress(points, enabled=show_progress, desc="tuning", unit="candidate")):
        candidate = model(**{**base, **point})
        if metric is None:
            metric = getattr(candidate, "default_metric", "ndcg")
        if metric not in _LOWER_IS_BETTER + _RANKING:
            raise ValueError(f"metric must be one of {_LOWER_IS_BETTER + _RANKING}, got {metric!r}")
        if j == 0:
            if valid_split is None:
                valid_split = train_validation_split(
                    train, protocol or ("E1" if metric in _LOWER_IS_BETTER else "I1"), seed)
            inner, valid = valid_split
        kwargs = {}
        if per_epoch:
            if patience is not None:
                kwargs["patience"] = patience
            if metric in _RANKING and _accepts(candidate._fit if hasattr(candidate, "_fit") else candidate.fit, "k"):
                kwargs["k"] = k
        t0 = time.perf_counter()
        candidate.fit(inner, valid, **kwargs) if per_epoch else candidate.fit(inner)
        fit_s = time.perf_counter() - t0
        history = getattr(candidate, "history_", None) if per_epoch else None
        # a ranking metric the fit already recorded at the kept epoch is reused (an RMSE is one cheap pass)
        watched = (history is not None and history.best_metric is not None and metric == "ndcg"
                   and getattr(candidate, "default_metric", None) == "ndcg" and ("k" in kwargs or k == 10))
        value = history.best_metric if watched else validation_score(candidate, inner, valid, metric, k, clip)
        best_epoch = history.best_epoch if history is not None else None
        best_epochs.append(best_epoch)
        rows.append({**{key: (str(v) if isinstance(v, tuple) else v) for key, v in point.items()}, metric: value,
                     "best_epoch": best_epoch, "fit_s": fit_s})
    table = pd.DataFrame(rows)
    if all(b is None for b in best_epochs):
        table = table.drop(columns="best_epoch")
    values = table[metric].to_numpy(dtype=float)
    if np.isnan(values).all():
        raise ValueError(f"no candidate has a finite validation {metric}")
    lower = metric in _LOWER_IS_BETTER
    pick = int(np.nanargmin(values) if lower else np.nanargmax(values))
    best_params = {**base, **points[pick]}
    if select_epochs and best_epochs[pick] is not None and hasattr(candidate, "n_epochs"):  # not a sampler's sweeps
        best_params["n_epochs"] = int(best_epochs[pick])
    table = table.sort_values(metric, ascending=lower, kind="stable").reset_index(drop=True)
    fitted = None
    if refit:
        fitted = model(**{**base, **points[pick]})
        if "n_epochs" in best_params and best_params["n_epochs"] != getattr(fitted, "n_epochs", None):
            fitted = fitted.clone(n_epochs=best_params["n_epochs"])  # a factory may fix n_epochs itself
        fitted.fit(train)
    return TuneResult(best_params, table, fitted, metric)
