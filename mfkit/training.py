"""The training loop the chapters share: any torch optimizer by name, per-epoch records, early stopping, progress bars.

Used by: Chapter 2 (dense and Gram weighted MF), Chapter 3 (sigmoid and logistic variants), Chapter 4 (the optimizer
comparison), Chapter 5 (autograd biased MF) and Chapter 7 (neural models).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import pandas as pd
import torch

from .utils import progress

__all__ = ["DivergenceError", "History", "OPTIMIZERS", "make_optimizer", "minibatches", "train_loop"]


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
    """Build a torch optimizer from a name in :data:`OPTIMIZERS` (an optimizer instance is returned unchanged)."""
    if isinstance(name, torch.optim.Optimizer):
        return name
    key = name.lower().replace("_", "").replace("-", "").replace("+", "")
    if key in ("sgdmomentum", "sgdm"):
        key = "momentum"
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](list(params), lr, **kwargs)


def minibatches(n: int, batch_size: int, device="cpu", generator: torch.Generator | None = None,
                shuffle: bool = True) -> Iterable[torch.Tensor]:
    """Index tensors of a (shuffled) pass over ``n`` rows, made on ``device`` — no DataLoader, no per-row Python."""
    device = torch.device(device)
    order = (torch.randperm(n, generator=generator, device="cpu").to(device) if shuffle
             else torch.arange(n, device=device))
    return order.split(batch_size)


@dataclass
class History:
    """What :func:`train_loop` recorded: one row per epoch (``epoch``, ``loss``, ``metric``, ``seconds``)."""

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


def _check_finite(loss: torch.Tensor, epoch: int, hint: str) -> None:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise DivergenceError(f"the loss became {value} at epoch {epoch}. {hint}")


def train_loop(loss_fn: Callable, parameters, *, optimizer: str | torch.optim.Optimizer = "adam", lr: float = 0.01,
               n_epochs: int = 10, batches: Callable[[int], Iterable] | None = None,
               evaluate: Callable[[], float] | None = None, higher_is_better: bool = True, patience: int | None = None,
               restore_best: bool = True, optimizer_kwargs: dict | None = None, show_progress: bool | None = None,
               desc: str = "training", divergence_hint: str = "Lower the learning rate or raise the regularisation.",
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
        A name from :data:`OPTIMIZERS` ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "sparseadam").
    evaluate : callable, optional
        Returns the held-out metric after each epoch (nDCG, RMSE...). Its time is not counted in ``seconds``.
    higher_is_better : bool
        Direction of the metric (False for RMSE).
    patience : int, optional
        Stop after this many epochs without improvement of the metric.
    restore_best : bool
        With ``evaluate``, put back the parameters of the best epoch at the end.
    show_progress : bool, optional
        Progress bar; default follows :func:`mfkit.utils.progress_enabled`.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When the loss becomes NaN or infinite; the message carries ``divergence_hint``.
    """
    module = parameters if isinstance(parameters, torch.nn.Module) else None
    params = list(module.parameters() if module is not None else parameters)
    opt = make_optimizer(optimizer, params, lr, **(optimizer_kwargs or {}))
    history = History()
    best_state, since_best, elapsed = None, 0, 0.0
    bar = progress(range(n_epochs), enabled=show_progress, desc=desc, unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for batch in (batches(epoch) if batches is not None else [None]):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            _check_finite(loss, epoch, divergence_hint)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            count += 1
        if params and params[0].is_cuda:
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        record = {"epoch": epoch + 1, "loss": total / count, "seconds": elapsed}
        if evaluate is not None:
            with torch.no_grad():
                metric = float(evaluate())
            record["metric"] = metric
            better = (history.best_metric is None
                      or (metric > history.best_metric if higher_is_better else metric < history.best_metric))
            if better:
                history.best_metric, history.best_epoch, since_best = metric, epoch + 1, 0
                if restore_best:
                    best_state = (copy.deepcopy(module.state_dict()) if module is not None
                                  else [p.detach().clone() for p in params])
            else:
                since_best += 1
            bar.set_postfix(loss=f"{record['loss']:.4g}", metric=f"{metric:.4f}")
        else:
            bar.set_postfix(loss=f"{record['loss']:.4g}")
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
