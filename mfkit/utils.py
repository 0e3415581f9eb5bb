"""Small helpers every chapter uses: device choice, seeding, progress bars.

Used by: every chapter (``mfkit.setup`` is the first cell of each notebook).
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "setup", "progress", "progress_enabled", "available_devices"]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Return the torch device to compute on.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` picks ``$MFKIT_DEVICE`` when set, else CUDA when available, else the CPU.

    Raises
    ------
    RuntimeError
        When CUDA is asked for but not available (rather than failing later inside a kernel).
    """
    if device is None:
        device = os.environ.get("MFKIT_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device} was asked for but torch.cuda.is_available() is False; "
            "install a CUDA build of torch or use device='cpu'"
        )
    return device


def available_devices() -> list[torch.device]:
    """CPU, plus the first CUDA device when there is one (what the tests parametrize over)."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, numpy and torch (CPU and CUDA) in one call and return a numpy Generator.

    Used by: every chapter, through :func:`setup`.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def setup(seed: int = 0, device: str | torch.device | None = None, threads: int | None = None) -> torch.device:
    """One call at the top of each chapter: seed everything, fix the CPU thread count, pick the device.

    Parameters
    ----------
    seed : int
        Seed for Python, numpy and torch.
    device : str, torch.device or None
        See :func:`get_device`.
    threads : int or None
        CPU threads for torch. ``None`` uses ``$MFKIT_THREADS`` or 1 — a fixed count keeps floating-point
        reductions, and therefore the printed figures, identical from run to run; one thread because the book's
        data are small, where a second thread costs more in synchronisation than it saves (and stalls badly on a
        busy machine). Raise it for large CPU runs.

    Returns
    -------
    torch.device
    """
    if threads is None:
        threads = int(os.environ.get("MFKIT_THREADS", "1"))
    torch.set_num_threads(threads)
    seed_everything(seed)
    return get_device(device)


def progress_enabled() -> bool:
    """Progress bars are on unless ``$MFKIT_PROGRESS`` is ``0``/``false``/``off`` (CI and the nbval run set it)."""
    return os.environ.get("MFKIT_PROGRESS", "1").strip().lower() not in {"0", "false", "off", "no"}


def progress(iterable=None, *, enabled: bool | None = None, **kwargs):
    """A tqdm progress bar that :func:`progress_enabled` (or ``enabled=False``) turns off.

    Accepts tqdm's keyword arguments (``total``, ``desc``, ``unit``...).
    """
    from tqdm import tqdm  # plain text bars: they render in terminals, notebooks and the built book alike

    if enabled is None:
        enabled = progress_enabled()
    return tqdm(iterable, disable=not enabled, **kwargs)
