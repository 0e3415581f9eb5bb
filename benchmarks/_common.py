"""What the benchmark scripts share: the results file the book's results page reads, the machine description, the
timed fit, and the models and grids that two scripts measure (E1's rating models, I1's weighted MF grid).

The scripts import this module and never each other. Run them from the repository root with the book's environment
(``make install`` installs mfkit in editable mode, so ``import mfkit`` needs no path set-up)::

    .venv/bin/python benchmarks/explicit_ml100k.py --quick


Each script ends with ``save_results(script, records, modules, command)``, which writes
``benchmarks/results/<script>.json``::

    {"script": "explicit_ml100k",                  # the script's file name without .py
     "command": "python benchmarks/explicit_ml100k.py",   # the exact command that produced the file
     "date": "2026-01-31", "machine": {"python", "torch", "cpu_threads", "cuda", "processor", "cores"},
     "modules": ["benchmarks/explicit_ml100k.py", "mfkit/explicit.py", ...],  # the code the figures describe
     "modules_hash": "0123456789abcdef",           # sha256 over those files: tests/test_results_fresh.py recomputes it
     "records": [ ... one dict per (protocol, model) ... ]}

``modules`` are paths relative to the repository root (a folder such as ``mfkit/data`` stands for its .py files);
the script's own file and this one are added automatically, so changing a hyper-parameter in the script (or a grid
shared here) also marks its results as stale. Commit the results file with the code it measures.

Record format (checked by ``mfkit.book.record_problems``; the results page ``book/results.ipynb`` shows these keys).
Every record has

- ``protocol``: ``"E1"``, ``"I1"``, ``"N1"``, ``"N2"`` or ``"G1"`` (see book/how_we_measure.ipynb);
- ``model``: the name the table shows, e.g. ``"Biased MF (ALS), k=64"``;
- ``chapter``: the notebook that builds this model, without ``.ipynb`` (``"05_explicit_mf"``), or ``None`` for a
  baseline the script measures in the same run that no chapter builds (e.g. the seed's regex parser);

and, per protocol (numbers are finite floats: times in wall-clock seconds, metrics as fractions, not percent):

==========  ===========================================================  ======================================
protocol    required                                                     optional
==========  ===========================================================  ======================================
E1          ``rmse``, ``mae``, ``fit_s`` (means over the seeds),          ``rmse_std``, ``device``
            ``seeds`` (list of ints, e.g. ``[0, 1, 2, 3, 4]``)
I1          ``ndcg``, ``precision``, ``recall``, ``map`` (at k=10),         ``device``
            ``fit_s``
N1          ``s_per_million`` (seconds per million ratings parsed),        ``reload_s`` (cached reload of the
            ``peak_rss_gb`` (peak resident memory, GB), ``n_ratings``       same file, seconds)
N2          ``rmse`` (probe), ``total_s`` (parse + train + score)          ``device``
G1          ``s_per_epoch``                                               ``rmse`` (held-out), ``device``
S1          ``measure`` (text), ``value``                                 ``baseline``, ``ratio``, ``target``,
                                                                          ``met``
N3          ``stage`` (text), ``time_s``, ``peak_rss_gb``                  ``rmse``, ``noise_floor``, ``target``,
                                                                          ``met``, ``device``
P1          ``measure`` (text), ``value`` (mfkit), ``peer`` (the other     ``target``, ``met``, ``device``
            library), ``baseline`` (its figure), ``ratio`` (mfkit/peer)
==========  ===========================================================  ======================================

Any record may also carry ``notes`` (a short string shown in the table, e.g. ``"k=64, 15 epochs"``) and other keys
(hyper-parameters, per-seed values): they are stored but not shown. Example::

    save_results("explicit_ml100k",
                 [{"protocol": "E1", "model": "Biased MF (ALS)", "chapter": "05_explicit_mf", "rmse": 0.9101,
                   "mae": 0.7182, "fit_s": 0.41, "seeds": [0, 1, 2, 3, 4], "notes": "k=64, reg 0.05"}],
                 modules=["mfkit/explicit.py", "mfkit/metrics.py", "mfkit/data"],
                 command="python benchmarks/explicit_ml100k.py")
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mfkit.book import modules_hash as _modules_hash
from mfkit.book import payload_problems
from mfkit.explicit import BayesianMF, BiasBaseline, BiasedMF, GlobalMean
from mfkit.implicit import WeightedMF
from mfkit.training import tune

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def modules_hash(modules: list[str]) -> str:
    """sha256 over the source of the named mfkit modules (paths relative to the repository root)."""
    return _modules_hash(modules, ROOT)


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "processor": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def _plain(obj):
    """JSON fallback for numpy/torch scalars and arrays in records."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable; store numbers, strings, lists or dicts")


def save_results(script: str, records: list[dict], modules: list[str], command: str | None = None,
                 extra: dict | None = None) -> Path:
    """Write the records of one benchmark run to ``benchmarks/results/<script>.json`` (format: module docstring).

    ``command`` defaults to ``python`` followed by the script's own command line. Records that do not follow the
    format are still written (a long run is not lost) but a warning lists what is wrong; the unit tests fail on them.
    """
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{script}.json"
    modules = list(modules)
    for own in (f"benchmarks/{script}.py", "benchmarks/_common.py"):  # the script and the settings it shares
        if (ROOT / own).is_file() and own not in modules:
            modules.append(own)
    if command is None:
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    payload = {"script": script, "command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "modules": sorted(modules), "modules_hash": modules_hash(modules), "records": records}
    if extra:
        payload.update(extra)
    text = json.dumps(payload, indent=1, default=_plain) + "\n"
    out.write_text(text)
    problems = payload_problems(json.loads(text))
    if problems:
        warnings.warn(f"{out} does not follow the record format of benchmarks/_common.py: " + "; ".join(problems),
                      stacklevel=2)
    return out


def timed_fit(model, train):
    """Fit ``model`` on ``train``; returns the model and the wall-clock seconds (CUDA work finished included)."""
    t0 = time.perf_counter()
    model.fit(train)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return model, time.perf_counter() - t0


def netflix_shaped(n_users: int, n_items: int, n_interactions: int, seed: int = 0):
    """A random implicit matrix shaped like Netflix: log-normal activity per user, Zipf-like item popularity.

    Pairs are drawn independently (user by activity, item by popularity), then de-duplicated, vectorised. Used by
    ``implicit_ml100k.py --scale``, ``speed_vs_peers.py`` and ``spark_vs_mfkit.py`` (1% and 10% of Netflix's users
    and ratings, all 17,770 items).
    """
    from mfkit.data import Interactions

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = rng.permutation(popularity)
    user = rng.choice(n_users, size=n_interactions, p=activity / activity.sum()).astype(np.int64)
    item = rng.choice(n_items, size=n_interactions, p=popularity / popularity.sum()).astype(np.int64)
    key = np.unique(user * n_items + item)
    return Interactions((key // n_items).astype(np.int32), (key % n_items).astype(np.int32), None,
                        np.arange(n_users), np.arange(n_items), name="netflix-shaped")


#: Netflix Prize shape: users, movies, ratings (Bennett & Lanning 2007).
NETFLIX_USERS, NETFLIX_ITEMS, NETFLIX_RATINGS = 480_189, 17_770, 100_480_507


# -- I1: top-10 ranking ------------------------------------------------------------------------------------------------

def i1_line(name: str, m: dict, fit_s: float) -> str:
    """The line every I1 script prints per model (``m``: the dict of ``mfkit.metrics.ranking_metrics``)."""
    return (f"I1 model={name} ndcg@10={m['ndcg']:.4f} p@10={m['precision']:.4f} r@10={m['recall']:.4f} "
            f"map@10={m['map']:.4f} fit_s={fit_s:.3f}")


def i1_record(name: str, m: dict, fit_s: float, chapter: str, device, notes: str, params, **extra) -> dict:
    """One I1 record for :func:`save_results` (``extra``: keys stored but not shown, e.g. the split seeds)."""
    return {"protocol": "I1", "model": name, "chapter": chapter, "ndcg": m["ndcg"], "precision": m["precision"],
            "recall": m["recall"], "map": m["map"], "fit_s": fit_s, "device": str(device), "notes": notes,
            "params": params, **extra}


# Weighted MF by ALS (Chapter 2), measured by implicit_ml100k.py and, as the dot-product reference, by
# neural_ml100k.py. The grid: the unobserved weight, the regularisation (plain, or scaled by each row's total loss
# weight as in Rendle et al. 2021) and the dimension. n_epochs is the most sweeps tried; the best sweep on validation
# is kept.
ALS_GRID = [
    *({"reg_scaling": None, "unobserved_weight": w, "reg": r} for w in (0.3, 0.5) for r in (7, 10, 14)),
    *({"reg_scaling": 1.0, "unobserved_weight": w, "reg": r} for w in (0.1, 0.2) for r in (0.02, 0.03, 0.04)),
]
ALS_GRID_QUICK = [{"reg_scaling": None, "unobserved_weight": 0.3, "reg": 10},
                  {"reg_scaling": 1.0, "unobserved_weight": 0.1, "reg": 0.03}]
# conjugate-gradient half-sweeps (3 steps, warm-started) reach the exact ALS fixed point at a fraction of the cost of
# k × k Cholesky solves on a CPU; implicit_ml100k.py times the exact solver too, with the same hyperparameters.
ALS_BASE = {"solver": "als", "als_method": "cg", "cg_steps": 3, "n_factors": 64}
ALS_SWEEPS = 15


def select_weighted_mf(train, grid, base: dict, seed: int, device, patience: int | None = None):
    """Weighted MF's settings chosen by validation nDCG@10 on the I1 validation part of ``train`` (``seed``):
    ``(best constructor arguments without the runtime settings device/show_progress, selection table)``."""
    result = tune(WeightedMF, train, grid, base_params={**base, "device": device, "show_progress": False},
                  metric="ndcg", seed=seed, patience=patience)
    return {k: v for k, v in result.best_params.items() if k not in ("device", "show_progress")}, result.table


# -- E1: rating prediction ---------------------------------------------------------------------------------------------

# The chapter that builds each model (the results page links it); the global mean is the bar every model must clear.
E1_CHAPTERS = {"global_mean": "05_explicit_mf", "bias_baseline": "05_explicit_mf", "biased_mf_sgd": "06_svd_sgd",
               "biased_mf_autograd": "05_explicit_mf", "biased_mf_als": "05_explicit_mf",
               "bayesian_mf": "05_explicit_mf"}


def e1_model_specs(device, quick: bool = False) -> list[dict]:
    """name, factory, grid and early-stopping patience of each rating model of the E1 table.

    explicit_ml100k.py measures all of them; neural_ml100k.py measures ``biased_mf_als`` and ``bayesian_mf`` as the
    references of its E1 lines.
    """
    max_epochs = 8 if quick else 40
    return [
        {"name": "global_mean", "make": lambda: GlobalMean(device=device), "grid": [{}]},
        {"name": "bias_baseline", "make": lambda **kw: BiasBaseline(device=device, **kw),
         "grid": {"reg_user": [2.0, 5.0, 15.0], "reg_item": [2.0, 5.0, 25.0], "n_iter": [10]}},
        {"name": "biased_mf_sgd",
         "make": lambda **kw: BiasedMF(n_factors=50, lr=0.01, batch_size=256, n_epochs=max_epochs, method="sgd",
                                       device=device, **kw),
         "grid": {"reg": [0.05, 0.1]}, "patience": 3},
        {"name": "biased_mf_autograd",
         "make": lambda **kw: BiasedMF(n_factors=50, lr=0.005, batch_size=1024, n_epochs=max_epochs,
                                       method="autograd", optimizer="adam", device=device, **kw),
         "grid": {"reg": [0.05, 0.1]}, "patience": 3},
        {"name": "biased_mf_als",
         "make": lambda **kw: BiasedMF(n_epochs=6 if quick else 15, method="als", device=device, **kw),
         "grid": {"n_factors": [20, 50], "reg": [0.15, 0.25]}, "patience": 2},
        {"name": "bayesian_mf",
         "make": lambda **kw: BayesianMF(n_factors=10, n_samples=10 if quick else 40, burn_in=5 if quick else 20,
                                         device=device, **kw),
         "grid": {"alpha": [1.25, 1.5]}},
    ]


def e1_record(name: str, chapter: str | None, runs: list[dict], seeds: list[int], **extra) -> dict:
    """One E1 record from the per-seed ``runs`` (dicts with ``rmse``, ``mae``, ``fit_s``): means, and the RMSE's
    standard deviation over the seeds; ``extra`` keys are stored too."""
    return {"protocol": "E1", "model": name, "chapter": chapter, "rmse": float(np.mean([r["rmse"] for r in runs])),
            "mae": float(np.mean([r["mae"] for r in runs])), "fit_s": float(np.mean([r["fit_s"] for r in runs])),
            "rmse_std": float(np.std([r["rmse"] for r in runs])), "seeds": seeds, **extra, "runs": runs}


def e1_select_and_fit(spec: dict, train, seed: int):
    """Choose ``spec``'s hyperparameters (and epochs) on a validation part of ``train`` carved with ``seed``, then
    refit the choice on all of ``train``; returns ``(model, fit seconds, chosen settings, selection table)``."""
    patience = spec.get("patience")
    result = tune(spec["make"], train, spec["grid"], metric="rmse", seed=seed, per_epoch=patience is not None,
                  patience=patience, select_epochs=False)
    best, table = result.best_params, result.table
    model = spec["make"](**{k: v for k, v in best.items() if k != "n_epochs"})
    if "n_epochs" in best:
        model.n_epochs = best["n_epochs"]
    model, fit_s = timed_fit(model, train)
    return model, fit_s, best, table
