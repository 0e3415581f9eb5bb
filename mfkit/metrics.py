"""Evaluation metrics: rating error (RMSE, MAE) and top-k ranking metrics.

Used by: Chapters 2–4 and 7 (ranking metrics, protocol I1) and Chapters 5–7 (RMSE/MAE, protocol E1).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["rmse", "mae"]


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _clipped(pred, clip):
    pred = _as_tensor(pred).double()
    if clip is not None:
        pred = pred.clamp(clip[0], clip[1])
    return pred


def rmse(pred, target, clip: tuple[float, float] | None = None) -> float:
    """Root mean squared error, ``sqrt(mean((pred - target)^2))``, optionally clipping predictions to the rating scale.

    Not ``sqrt(sum of squared errors / ||R||)`` (the seed notebook's formula), which divides by the norm of the
    rating matrix rather than by the number of ratings.
    """
    pred = _clipped(pred, clip)
    target = _as_tensor(target).to(pred.device, torch.float64)
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"pred and target must be non-empty and of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return float(torch.sqrt(torch.mean((pred - target) ** 2)))


def mae(pred, target, clip: tuple[float, float] | None = None) -> float:
    """Mean absolute error, optionally clipping predictions to the rating scale."""
    pred = _clipped(pred, clip)
    target = _as_tensor(target).to(pred.device, torch.float64)
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"pred and target must be non-empty and of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return float(torch.mean(torch.abs(pred - target)))
