"""Peers on the project's own MovieLens 100k splits: the reference figures of protocols E1 and I1, measured here.

The chapters and the results page compare mfkit's models with other libraries. Published figures use other splits
(Surprise's README: 5-fold cross-validation; MS Recommenders: its own split), so this script runs the peers on
exactly the splits mfkit's records use, and stores one value per split seed, so that a chapter can pair them seed
by seed with :func:`mfkit.metrics.paired_comparison`.

- E1 (``random_split(data, 0.2, seed)``, seeds 0-4; RMSE and MAE of predictions clipped to 1-5): Surprise's
  ``SVD``, ``SVDpp`` and ``BaselineOnly`` with their default settings (Surprise's own benchmark uses its defaults;
  ``SVD``: k = 100, 20 epochs, lr 0.005, reg 0.02; ``SVDpp``: k = 20, 20 epochs, lr 0.007, reg 0.02;
  ``BaselineOnly``: 10 ALS sweeps, reg_u 15, reg_i 10), ``random_state=0``.
- I1 (``stratified_item_split(data, 0.75, seed)``, split seeds 42, 0, 1, 2, 3; top 10 excluding train items):
  ``implicit``'s CPU ALS (``implicit.cpu.als.AlternatingLeastSquares``, k = 64, 15 sweeps, one thread) with its
  ``alpha`` (0.3-10) and ``regularization`` (1-100) chosen on a validation part of the train part
  (``train_validation_split(train, "I1", 0)``, nDCG@10) from a small grid, then refitted on all of train; and
  mfkit's EASE (Steck 2019; Chapter 9) with its ``reg`` chosen the same way (the grid of ranking_ml100k.py).

Usage::

    .venv/bin/python benchmarks/peers_ml100k.py            # everything; writes benchmarks/results/peers_ml100k.json
    .venv/bin/python benchmarks/peers_ml100k.py --quick    # one seed each, SVD++ skipped, no record (smoke run)

Prints one ``E1`` or ``I1`` line per model and seed, then the means. Needs the benchmark extra
(``pip install -e .[bench]``: ``implicit``, ``scikit-surprise``); the book never imports them, it reads the record.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from _common import i1_line, save_results, timed_fit

import mfkit
from mfkit.data import load_movielens_100k, random_split, stratified_item_split, train_validation_split
from mfkit.metrics import ranking_metrics
from mfkit.ranking import EASE

MODULES = ["mfkit/data/splits.py", "mfkit/metrics.py", "mfkit/ranking.py"]
E1_SEEDS = [0, 1, 2, 3, 4]
I1_SEEDS = [42, 0, 1, 2, 3]
METRICS = ("ndcg", "precision", "recall", "map")
SURPRISE_MODELS = {"SVD": "Surprise SVD (defaults)", "SVDpp": "Surprise SVD++ (defaults)",
                   "BaselineOnly": "Surprise BaselineOnly (defaults)"}
ALS_GRID = [{"alpha": a, "regularization": r} for a in (0.3, 1.0, 3.0, 10.0) for r in (1.0, 10.0, 30.0, 100.0)]
ALS_FIXED = {"factors": 64, "iterations": 15}
EASE_GRID = [300.0, 600.0, 1200.0, 2400.0]  # ranking_ml100k.py chose 600, at its edge


def _version(module: str) -> str:
    from importlib.metadata import version
    return version({"surprise": "scikit-surprise"}.get(module, module))


# -- E1: Surprise --------------------------------------------------------------------------------------------------

def surprise_runs(data, seeds: list[int], names: list[str]) -> dict[str, list[dict]]:
    import surprise
    from surprise import Dataset, Reader

    runs = {name: [] for name in names}
    for seed in seeds:
        train, test = random_split(data, 0.2, seed)
        frame = pd.DataFrame({"u": train.user, "i": train.item, "r": train.rating})
        trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
        rows = list(zip(test.user.tolist(), test.item.tolist(), test.rating.tolist()))
        for name in names:
            algo = getattr(surprise, name)(random_state=0) if name != "BaselineOnly" else surprise.BaselineOnly(
                verbose=False)
            t0 = time.perf_counter()
            algo.fit(trainset)
            fit_s = time.perf_counter() - t0
            pred = np.array([p.est for p in algo.test(rows)])  # clipped to the rating scale, as mfkit's
            err = pred - test.rating
            run = {"seed": seed, "rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
                   "fit_s": fit_s}
            runs[name].append(run)
            print(f"E1 model={SURPRISE_MODELS[name]} seed={seed} rmse={run['rmse']:.4f} mae={run['mae']:.4f} "
                  f"fit_s={fit_s:.2f}", flush=True)
    return runs


# -- I1: implicit's ALS and EASE -------------------------------------------------------------------------------------

def _csr(part, shape) -> sp.csr_matrix:
    pairs = np.unique(part.user.astype(np.int64) * shape[1] + part.item)
    return sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (pairs // shape[1], pairs % shape[1])), shape=shape)


def implicit_als(train, params: dict):
    """Fit implicit's CPU ALS on ``train`` (binary interactions); returns a scorer for ranking_metrics."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # as implicit advises
        model = AlternatingLeastSquares(**ALS_FIXED, **params, use_cg=True, calculate_training_loss=False,
                                        num_threads=1, random_state=0)
        model.fit(_csr(train, (train.n_users, train.n_items)), show_progress=False)
    U, V = torch.from_numpy(np.asarray(model.user_factors)), torch.from_numpy(np.asarray(model.item_factors))
    return lambda users: U[users.cpu()] @ V.T


def i1_seed(data, seed: int, valid_seed: int, grid_als, grid_ease) -> dict:
    train, test = stratified_item_split(data, train_frac=0.75, seed=seed)
    inner_train, inner_valid = train_validation_split(train, "I1", valid_seed)
    out = {}
    # implicit's ALS: choose alpha and regularization on validation
    t0 = time.perf_counter()
    scores = [(ranking_metrics(implicit_als(inner_train, p), inner_train, inner_valid, k=10, device="cpu")["ndcg"],
               p) for p in grid_als]
    valid_ndcg, best = max(scores, key=lambda s: s[0])
    tune_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scorer = implicit_als(train, best)
    fit_s = time.perf_counter() - t0
    m = ranking_metrics(scorer, train, test, k=10, device="cpu")
    out["implicit ALS"] = {"seed": seed, **{k: m[k] for k in METRICS}, "fit_s": fit_s, "tune_s": tune_s,
                           "params": {**ALS_FIXED, **best}, "valid_ndcg": valid_ndcg}
    # EASE: choose reg on validation
    t0 = time.perf_counter()
    scores = [(ranking_metrics(EASE(reg=r, device="cpu").fit(inner_train), inner_train, inner_valid, k=10,
                               device="cpu")["ndcg"], r) for r in grid_ease]
    valid_ndcg, reg = max(scores, key=lambda s: s[0])
    tune_s = time.perf_counter() - t0
    model, fit_s = timed_fit(EASE(reg=reg, device="cpu"), train)
    m = ranking_metrics(model, train, test, k=10, device="cpu")
    out["EASE"] = {"seed": seed, **{k: m[k] for k in METRICS}, "fit_s": fit_s, "tune_s": tune_s,
                   "params": {"reg": reg}, "valid_ndcg": valid_ndcg}
    for name, r in out.items():
        print(i1_line(f"{name} (split seed {seed})", r, r["fit_s"]) + f" params={r['params']}", flush=True)
    return out


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed each, SVD++ skipped, small grids, no record")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--valid-seed", type=int, default=0, help="seed of the validation split carved from train")
    args = parser.parse_args(argv)
    mfkit.setup(seed=0, device="cpu", threads=1)
    data = load_movielens_100k()
    e1_seeds, i1_seeds = (E1_SEEDS[:1], I1_SEEDS[:1]) if args.quick else (E1_SEEDS, I1_SEEDS)
    names = ["SVD", "BaselineOnly"] if args.quick else list(SURPRISE_MODELS)
    records = []

    runs = surprise_runs(data, e1_seeds, names)
    for name in names:
        rs = runs[name]
        rmse = np.array([r["rmse"] for r in rs])
        rec = {"protocol": "E1", "model": SURPRISE_MODELS[name], "chapter": None, "rmse": float(rmse.mean()),
               "mae": float(np.mean([r["mae"] for r in rs])), "fit_s": float(np.mean([r["fit_s"] for r in rs])),
               "rmse_std": float(rmse.std()), "seeds": e1_seeds, "device": "cpu",
               "notes": f"scikit-surprise {_version('surprise')}, default settings", "runs": rs}
        records.append(rec)
        print(f"E1 mean model={rec['model']} rmse={rec['rmse']:.4f}±{rec['rmse_std']:.4f} mae={rec['mae']:.4f}")

    grid_als = ALS_GRID[:2] if args.quick else ALS_GRID
    grid_ease = EASE_GRID[1:2] if args.quick else EASE_GRID
    per_seed = [i1_seed(data, seed, args.valid_seed, grid_als, grid_ease) for seed in i1_seeds]
    for name, chapter, notes in (
            ("implicit ALS", None, f"implicit {_version('implicit')}, k = 64, 15 sweeps, alpha and reg chosen on "
                                   "validation"),
            ("EASE", "09_ranking", "reg chosen on validation")):
        rs = [s[name] for s in per_seed]
        first = rs[0]
        rec = {"protocol": "I1", "model": name, "chapter": chapter, **{k: first[k] for k in METRICS},
               "fit_s": first["fit_s"], "device": "cpu", "notes": notes, "params": first["params"],
               "split_seed": i1_seeds[0], "valid_seed": args.valid_seed, "split_seeds": i1_seeds, "runs": rs}
        for k in METRICS:
            values = np.array([r[k] for r in rs])
            rec[f"{k}_mean"], rec[f"{k}_std"] = float(values.mean()), float(values.std())
        records.append(rec)
        print(f"I1 spread model={name} seeds={i1_seeds} ndcg@10={rec['ndcg_mean']:.4f}±{rec['ndcg_std']:.4f} "
              f"p@10={rec['precision_mean']:.4f}±{rec['precision_std']:.4f}", flush=True)

    if not (args.quick or args.no_save):
        path = save_results("peers_ml100k", records, MODULES, command="python benchmarks/peers_ml100k.py")
        print(f"wrote {path}")
    return records


if __name__ == "__main__":
    main()
