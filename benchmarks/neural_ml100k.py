"""Neural models on MovieLens 100k: NCF (GMF, MLP, NeuMF) and the two-tower model, next to the best matrix factorization.

Protocols (book/how_we_measure.ipynb):

* I1 (top-10 ranking): ``stratified_item_split(data, 0.75, seed=42)``. Every model's hyperparameters (and its number
  of epochs) are chosen on a validation part carved from the train part (``train_validation_split(train, "I1",
  --valid-seed)``), then it is refitted on the whole train part and scored on the test part. NeuMF starts from GMF and
  MLP networks pretrained with their chosen settings (He et al. 2017): on the inner part while selecting, on the whole
  train part for the final fit; its ``fit_s`` includes the two pretraining fits. The dot-product reference is
  ``mfkit.implicit.WeightedMF`` (ALS) selected with the same grid as ``benchmarks/implicit_ml100k.py``.
* E1 (ratings): ``random_split(data, 0.2, seed)`` for seeds 0-4. NCF networks are selected once, on the validation
  part of seed 0's train part (to keep the run short), and that choice is refitted and scored on every seed. The
  reference models (biased MF by ALS, Bayesian MF) are selected per seed exactly as in
  ``benchmarks/explicit_ml100k.py``. The two-tower model is a retrieval model (softmax over items): it predicts no
  ratings and has no E1 line.

Prints ``I1 model=<name> ndcg@10=<x> p@10=<x> r@10=<x> map@10=<x> fit_s=<x>`` and ``E1 model=<name> rmse=<x>
mae=<x> fit_s=<x>`` (E1: means over the seeds; fit_s: the final fit, selection excluded). Reference (I1, Microsoft
Recommenders): NCF nDCG@10 0.396, P@10 0.347.

Usage: ``.venv/bin/python benchmarks/neural_ml100k.py [--quick] [--seeds 0 1 2 3 4] [--skip-e1] [--skip-i1]``.
Results go to ``benchmarks/results/neural_ml100k.json``.
"""
from __future__ import annotations

import argparse
import time

import torch
from _common import (ALS_BASE, ALS_GRID, ALS_GRID_QUICK, ALS_SWEEPS, e1_model_specs, e1_record, e1_select_and_fit,
                     i1_line, i1_record, save_results, select_weighted_mf, timed_fit)

import mfkit
from mfkit.data import load_movielens_100k, random_split, stratified_item_split, train_validation_split
from mfkit.explicit import evaluate
from mfkit.implicit import WeightedMF
from mfkit.metrics import ranking_metrics
from mfkit.defaults import CHOSEN_SETTINGS
from mfkit.neural import NCF, TwoTower
from mfkit.training import tune

MODULES = ["mfkit/neural.py", "mfkit/metrics.py", "mfkit/training.py", "mfkit/data/splits.py"]

# -- I1 grids: each model gets a comparable small sweep (6 points at most) and early stopping on validation nDCG ------
I1_BASE = {"task": "implicit", "n_negatives": 4, "batch_size": 4096, "n_epochs": 40}
I1_GRIDS = {
    "gmf": ({**I1_BASE, "kind": "gmf", "lr": 0.01}, {"n_factors": [32, 64], "reg": [0.01, 0.02, 0.03]}),
    "mlp": ({**I1_BASE, "kind": "mlp", "lr": 0.005}, {"layers": [(64, 32, 16), (128, 64, 32)], "reg": [0.001, 0.01]}),
}
NEUMF_GRID = {"lr": [0.001, 0.003], "reg": [0.01, 0.02]}
TWO_TOWER_BASE = {"batch_size": 1024, "n_epochs": 40, "lr": 0.005, "logq_correction": True,
                  "n_uniform_negatives": 1024}
TWO_TOWER_GRID = {"n_factors": [64], "temperature": [0.1, 0.2], "reg": [0.03, 0.1]}

# -- E1 grids ---------------------------------------------------------------------------------------------------------
E1_BASE = {"task": "rating", "batch_size": 1024, "n_epochs": 40}
E1_GRIDS = {
    "gmf": ({**E1_BASE, "kind": "gmf", "lr": 0.003}, {"n_factors": [32, 64], "reg": [0.1, 0.3]}),
    "mlp": ({**E1_BASE, "kind": "mlp", "lr": 0.003}, {"layers": [(64, 32, 16), (128, 64, 32)], "reg": [0.1, 0.3]}),
}
E1_NEUMF_GRID = {"lr": [0.001], "reg": [0.1, 0.3]}

QUICK = {"epochs": 6}


def _quick(base: dict, grid: dict, quick: bool) -> tuple[dict, dict]:
    """--quick: the first grid point only and a few epochs."""
    if not quick:
        return base, grid
    return {**base, "n_epochs": QUICK["epochs"]}, {k: v[:1] for k, v in grid.items()}


def _select(cls, train, grid, base: dict, valid_split):
    """Settings chosen on the shared validation split (early stopping, patience 3; the best epoch kept)."""
    result = tune(cls, train, grid, base_params=base, valid_split=valid_split, patience=3)
    return result.best_params, result.table.rename(columns={result.metric: "metric"})


def _show(name: str, table) -> None:
    print(f"  {name}: selection on validation ({len(table)} points)")
    print("    " + table.round(4).to_string(index=False).replace("\n", "\n    "), flush=True)


def _tune_ncf_family(train, grids, neumf_grid, valid_split, device, quick, metric_name):
    """Select GMF and MLP, then NeuMF initialised from the two (pretrained on the inner part); return the choices."""
    chosen = {}
    for kind in ("gmf", "mlp"):
        base, grid = _quick(*grids[kind], quick)
        best, table = _select(NCF, train, grid, {**base, "device": device, "show_progress": False}, valid_split)
        _show(f"ncf_{kind} ({metric_name})", table)
        chosen[kind] = best
    inner = valid_split[0]
    parts = tuple(NCF(**chosen[k]).fit(inner) for k in ("gmf", "mlp"))
    base = {**chosen["gmf"], "kind": "neumf", "layers": chosen["mlp"]["layers"],
            "n_epochs": QUICK["epochs"] if quick else grids["gmf"][0]["n_epochs"]}
    base, grid = _quick(base, neumf_grid, quick)
    best, table = _select(NCF, train, grid, {**base, "pretrained": parts}, valid_split)
    _show(f"ncf_neumf ({metric_name}, pretrained)", table)
    chosen["neumf"] = best
    return chosen


def _fit_ncf_family(train, chosen):
    """Fit GMF, MLP and (from them) NeuMF on ``train``; returns {name: (model, fit seconds)}."""
    gmf, gmf_s = timed_fit(NCF(**chosen["gmf"]), train)
    mlp, mlp_s = timed_fit(NCF(**chosen["mlp"]), train)
    neumf, neumf_s = timed_fit(NCF(**{**chosen["neumf"], "pretrained": (gmf, mlp)}), train)
    return {"ncf_gmf": (gmf, gmf_s), "ncf_mlp": (mlp, mlp_s), "ncf_neumf": (neumf, gmf_s + mlp_s + neumf_s)}


def _notes(p: dict) -> str:
    """A short description for the results table, e.g. "gmf k=32, reg 0.03, 12 epochs"."""
    keys = ("kind", "n_factors", "layers", "reg", "lr", "temperature", "n_uniform_negatives", "unobserved_weight",
            "n_epochs")
    return ", ".join(f"{k}={tuple(p[k]) if isinstance(p[k], list) else p[k]}" for k in keys if k in p)


def _params(p: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()
            if k not in ("device", "show_progress", "pretrained")}


def check_chosen(protocol: str, name: str, chosen: dict, grid: dict | None = None) -> bool:
    """Print whether this run's selection agrees with ``mfkit.defaults.CHOSEN_SETTINGS`` (what Chapter 7 fits), and
    which chosen values sit at an edge of their grid (a wider grid might move them)."""
    expected = CHOSEN_SETTINGS[protocol][name]
    got = _params(chosen)
    diff = {k: (v, got.get(k)) for k, v in _params(expected).items() if got.get(k) != v}
    print(f"  {protocol} {name}: " + ("agrees with mfkit.defaults.CHOSEN_SETTINGS" if not diff else
          f"DIFFERS from mfkit.defaults.CHOSEN_SETTINGS (expected, got): {diff}; update it, re-run Chapter 7"))
    edges = [k for k, values in (grid or {}).items() if len(values) > 1 and got.get(k) in
             (_params({k: values[0]})[k], _params({k: values[-1]})[k])]
    if edges:
        print(f"  {protocol} {name}: chosen at the edge of its grid: {', '.join(edges)}")
    return not diff


def run_i1(data, args, device, records):
    train, test = stratified_item_split(data, 0.75, seed=42)
    valid_split = train_validation_split(train, "I1", args.valid_seed)
    print(f"I1 split seed=42 validation seed={args.valid_seed}: train {len(train):,}, test {len(test):,}", flush=True)

    def report(name, model, fit_s, params, chapter="07_neural_cf"):
        m = ranking_metrics(model, train, test, k=10, device=device)
        print(i1_line(name, m, fit_s), flush=True)
        records.append(i1_record(name, m, fit_s, chapter, device, _notes(params), _params(params)))

    # the dot-product reference, selected with the grid of benchmarks/implicit_ml100k.py
    best, table = select_weighted_mf(train, ALS_GRID_QUICK if args.quick else ALS_GRID,
                                     {**ALS_BASE, "n_epochs": ALS_SWEEPS}, args.valid_seed, device)
    print(f"  wmf_als: best of {len(table)} points on validation: ndcg {table['ndcg'].iloc[0]:.4f}")
    best = {**best, "device": device, "show_progress": False}
    wmf, fit_s = timed_fit(WeightedMF(**best), train)
    report("wmf_als", wmf, fit_s, best, chapter="02_weighted_mf")

    chosen = _tune_ncf_family(train, I1_GRIDS, NEUMF_GRID, valid_split, device, args.quick, "validation nDCG@10")
    for kind, grid in (("gmf", I1_GRIDS["gmf"][1]), ("mlp", I1_GRIDS["mlp"][1]), ("neumf", NEUMF_GRID)):
        check_chosen("I1", kind, chosen[kind], grid)
    for name, (model, fit_s) in _fit_ncf_family(train, chosen).items():
        report(name, model, fit_s, chosen[name.split("_")[1]])

    base, grid = _quick(TWO_TOWER_BASE, TWO_TOWER_GRID, args.quick)
    best, table = _select(TwoTower, train, grid, {**base, "device": device, "show_progress": False}, valid_split)
    _show("two_tower (validation nDCG@10)", table)
    check_chosen("I1", "two_tower", best, TWO_TOWER_GRID)
    tt, fit_s = timed_fit(TwoTower(**best), train)
    report("two_tower", tt, fit_s, best)
    print("I1 reference (Microsoft Recommenders, same protocol): NCF ndcg@10=0.396 p@10=0.347; "
          "BPR 0.442/0.388; SAR 0.382/0.331", flush=True)


def run_e1(data, args, device, records):
    seeds = [0] if args.quick else args.seeds
    print(f"E1 seeds={seeds} (NCF selected on seed {seeds[0]}'s validation part; references per seed)", flush=True)
    train0, _ = random_split(data, 0.2, seeds[0])
    chosen = _tune_ncf_family(train0, E1_GRIDS, E1_NEUMF_GRID, train_validation_split(train0, "E1", seeds[0]),
                              device, args.quick, "validation RMSE")
    for kind, grid in (("gmf", E1_GRIDS["gmf"][1]), ("mlp", E1_GRIDS["mlp"][1]), ("neumf", E1_NEUMF_GRID)):
        check_chosen("E1", kind, chosen[kind], grid)
    references = [s for s in e1_model_specs(device, args.quick) if s["name"] in ("biased_mf_als", "bayesian_mf")]
    runs: dict[str, list] = {}
    chapters = {"biased_mf_als": "05_explicit_mf", "bayesian_mf": "05_explicit_mf"}
    for seed in seeds:
        train, test = random_split(data, 0.2, seed)
        for spec in references:
            model, fit_s, best, _ = e1_select_and_fit(spec, train, seed)
            runs.setdefault(spec["name"], []).append({"seed": seed, **evaluate(model, test), "fit_s": fit_s,
                                                      "params": best})
        for name, (model, fit_s) in _fit_ncf_family(train, chosen).items():
            runs.setdefault(name, []).append({"seed": seed, **evaluate(model, test), "fit_s": fit_s,
                                              "params": _params(chosen[name.split("_")[1]])})
        print("  seed=" + str(seed) + " " + " ".join(f"{n}={r[-1]['rmse']:.4f}" for n, r in runs.items()), flush=True)
    for name, rs in runs.items():
        rec = e1_record(name, chapters.get(name, "07_neural_cf"), rs, seeds, device=str(device),
                        notes=_notes(rs[0]["params"]) if name.startswith("ncf") else "")
        records.append(rec)
        print(f"E1 model={name} rmse={rec['rmse']:.4f} mae={rec['mae']:.4f} fit_s={rec['fit_s']:.3f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one grid point, a few epochs, E1 on seed 0: a smoke run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="E1 split seeds")
    parser.add_argument("--valid-seed", type=int, default=0, help="seed of the I1 validation split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    parser.add_argument("--skip-e1", action="store_true")
    parser.add_argument("--skip-i1", action="store_true")
    args = parser.parse_args(argv)
    device = mfkit.setup(seed=0, device=args.device, threads=args.threads)
    print(f"device={device} threads={torch.get_num_threads()} model random_state=0", flush=True)
    data = load_movielens_100k()
    records: list[dict] = []
    t0 = time.perf_counter()
    if not args.skip_i1:
        run_i1(data, args, device, records)
    if not args.skip_e1:
        run_e1(data, args, device, records)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if not args.quick:
        path = save_results("neural_ml100k", records, MODULES,
                            extra={"seeds": {"E1": args.seeds, "I1_split": 42, "I1_validation": args.valid_seed,
                                             "model": 0}})
        print(f"saved {path}")


if __name__ == "__main__":
    main()
