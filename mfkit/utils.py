"""Small helpers every chapter uses: device choice, seeding, CPU threads, progress bars.

Used by: every chapter (``mfkit.setup`` is the first cell of each notebook).

Thread policy, in one place: :func:`setup` fixes torch's CPU thread count for a whole chapter or script (from its
``threads`` argument, else ``$MFKIT_THREADS``, else 1), and :func:`cpu_threads` changes it for one block and restores
it after (the minibatch loops of Chapters 5-7 run on one thread, see there).
"""
from __future__ import annotations

import math
import os
import random
from contextlib import contextmanager

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: they render in terminals, notebooks and the built book alike

__all__ = ["get_device", "seed_everything", "setup", "default_threads", "cpu_threads", "progress",
           "progress_enabled", "plot_style", "check_int", "check_float", "check_choice"]


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
        Seed for Python, numpy and torch; ``$MFKIT_SEED``, when set, replaces it (to measure how much a chapter's
        figures depend on the seed).
    device : str, torch.device or None
        See :func:`get_device`.
    threads : int or None
        CPU threads for torch. ``None`` uses :func:`default_threads` (``$MFKIT_THREADS`` or 1) — a fixed count keeps
        floating-point reductions, and therefore the printed figures, identical from run to run; one thread because the
        book's data are small, where a second thread costs more in synchronisation than it saves (and stalls badly on a
        busy machine). Raise it for large CPU runs.

    Returns
    -------
    torch.device
    """
    torch.set_num_threads(default_threads() if threads is None else _check_threads(threads))
    # MFKIT_SEED re-runs a whole chapter under another seed (benchmarks/notebook_spread.py measures the spread).
    seed_everything(int(os.environ.get("MFKIT_SEED", seed)))
    plot_style()
    return get_device(device)


# The book's one matplotlib style: colour-blind-safe colours (Okabe & Ito) paired with distinct line styles, so that
# curves stay apart in grey print and where they overlap; light grid, no top/right frame, legends without a box.
PLOT_STYLE = {
    "axes.prop_cycle": None,  # filled in by plot_style (needs matplotlib's cycler)
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": "medium",
    "axes.titleweight": "bold",
    "axes.labelsize": "medium",
    "legend.frameon": False,
    "legend.fontsize": "small",
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "figure.figsize": (6.5, 4.0),
    "figure.dpi": 100,
    "savefig.bbox": "tight",
}
PLOT_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"]
PLOT_LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2, 2, 2))]


def plot_style() -> None:
    """Set the book's matplotlib style (:data:`PLOT_STYLE`): one look for every figure of every chapter.

    Used by: every chapter, through :func:`setup`. A no-op when matplotlib is not installed. The colour cycle pairs
    each colour with its own line style, so a plot of several curves needs no per-curve styling to stay readable.
    """
    try:
        import matplotlib as mpl
        from cycler import cycler
    except ImportError:  # mfkit's routines do not need matplotlib
        return
    style = dict(PLOT_STYLE, **{"axes.prop_cycle": cycler(color=PLOT_COLOURS, linestyle=PLOT_LINESTYLES)})
    mpl.rcParams.update(style)


def _check_threads(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"a thread count must be a positive integer, got {n!r}")
    return int(n)


def default_threads() -> int:
    """The CPU thread count of the book: ``$MFKIT_THREADS`` when set, else 1 (see :func:`setup`).

    Raises
    ------
    ValueError
        When ``$MFKIT_THREADS`` is not a positive integer.
    """
    raw = os.environ.get("MFKIT_THREADS", "1").strip()
    try:
        return _check_threads(int(raw))
    except ValueError:
        raise ValueError(f"MFKIT_THREADS must be a positive integer, got {raw!r}") from None


@contextmanager
def cpu_threads(n: int = 1, device: str | torch.device | None = "cpu"):
    """Run a block with ``n`` torch CPU threads; the previous count is restored after, even on an error.

    Used by: the minibatch SGD and autograd loops of :mod:`mfkit.explicit` (Chapters 5-6), the training loops of
    :mod:`mfkit.neural` (Chapter 7), and Chapter 6's hand-written SGD epoch. Their epochs are thousands of small
    gathers and ``index_add_`` scatters: splitting each across OpenMP threads costs more than it saves, and on shared
    cores the threads' hand-offs made the same epoch ten to a thousand times slower in our measurements (2 threads:
    211 s wall for what 1 thread does in 20 s).

    Parameters
    ----------
    n : int
        Threads inside the block.
    device : str, torch.device or None
        The device the block computes on: only a CPU block changes the thread count (a CUDA block is left alone).
        ``None`` means the device :func:`get_device` would pick.

    Examples
    --------
    >>> with cpu_threads(1):
    ...     torch.get_num_threads()
    1
    """
    n = _check_threads(n)
    if get_device(device).type != "cpu":
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def progress_enabled() -> bool:
    """Progress bars are on unless ``$MFKIT_PROGRESS`` is ``0``/``false``/``off`` (CI and the nbval run set it)."""
    return os.environ.get("MFKIT_PROGRESS", "1").strip().lower() not in {"0", "false", "off", "no"}


def progress(iterable=None, *, enabled: bool | None = None, **kwargs):
    """A tqdm progress bar that :func:`progress_enabled` (or ``enabled=False``) turns off.

    Accepts tqdm's keyword arguments (``total``, ``desc``, ``unit``...).
    """
    if enabled is None:
        enabled = progress_enabled()
    return tqdm(iterable, disable=not enabled, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Validators of parameters (every constructor and public routine)
# ---------------------------------------------------------------------------------------------------------------------
def check_int(name: str, value, minimum: int | None = 1) -> int:
    """``int(value)``, or a ValueError naming the parameter when it is not a whole number ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or value != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value, minimum: float | None = 0.0, strict: bool = False) -> float:
    """``float(value)``, or a ValueError when it is not a finite number ``>= minimum`` (``> minimum`` if strict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices) -> object:
    """``value``, or a ValueError listing ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value
