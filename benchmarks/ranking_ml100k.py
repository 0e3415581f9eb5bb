"""Benchmark I1 for Chapter 9: the ranking models and the simple baselines, mean ± std over five split seeds.

Protocol I1 (book/how_we_measure.ipynb): every rating is an interaction; stratified_item_split(train_frac=0.75,
seed); top 10 per user excluding the user's train items; precision, recall, nDCG and MAP at 10. For every split seed
(42, 0, 1, 2, 3) each model's settings are chosen on a validation part carved from that seed's train part
(train_validation_split(train, "I1", --valid-seed)), never on its test part; a setting chosen at the edge of its grid
makes the grid grow in that direction (up to three steps) until the choice is inside it. The choice is then refitted
on the whole train part and scored on the test part. Chapter 7's neural models (GMF, MLP, NeuMF pretrained from the
two, two-tower) are not re-tuned per seed, which would take far longer: they use ``mfkit.defaults.CHOSEN_SETTINGS``,
chosen on the validation part of split seed 42 by ``benchmarks/neural_ml100k.py``.

    .venv/bin/python benchmarks/ranking_ml100k.py            # five split seeds, one CPU thread (about 10 minutes)
    .venv/bin/python benchmarks/ranking_ml100k.py --quick    # split seed 42 only, smaller grids (smoke run)

Prints ``I1 model=<name> ...`` per model on split seed 42 and ``I1 spread model=<name> ...`` with the means and
standard deviations over the seeds. Results go to benchmarks/results/ranking_ml100k.json (records of protocol I1:
the seed-42 figures, plus ``<metric>_mean``/``<metric>_std``, the per-seed ``runs`` and the chosen settings).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import ALS_BASE, ALS_GRID, ALS_SWEEPS, i1_line, save_results, timed_fit

import mfkit
from mfkit.data import load_movielens_100k, stratified_item_split, train_validation_split
from mfkit.implicit import Popularity, WeightedMF
from mfkit.metrics import ranking_metrics
from mfkit.defaults import CHOSEN_SETTINGS
from mfkit.neural import NCF, TwoTower
from mfkit.ranking import BPR, EASE, ConfidenceMF, ItemKNN
from mfkit.training import tune

MODULES = ["mfkit/ranking.py", "mfkit/implicit.py", "mfkit/neural.py", "mfkit/metrics.py", "mfkit/data/splits.py",
           "mfkit/training.py", "mfkit/base.py"]
METRICS = ("ndcg", "precision", "recall", "map")

BPR_BASE = {"n_factors": 64, "lr": 0.01, "n_epochs": 40, "batch_size": 4096}
NCF_BASE = {"task": "implicit", "n_negatives": 4, "batch_size": 4096}  # as Chapter 7


def specs(device, quick: bool) -> list[dict]:
    """name, class, fixed settings, grid (a dict of lists: every list of numbers may be extended at its edges) and
    early-stopping patience of every model."""
    return [
        {"name": "popularity", "cls": Popularity, "base": {}, "grid": {}},
        {"name": "item kNN", "cls": ItemKNN, "base": {},
         "grid": {"n_neighbors": [100, 200, 400], "shrink": [10.0, 40.0]}},
        {"name": "EASE", "cls": EASE, "base": {}, "grid": {"reg": [150.0, 300.0, 600.0]}},
        {"name": "BPR (uniform)", "cls": BPR, "base": {**BPR_BASE, "sampling": "uniform"},
         "grid": {"reg": [0.01, 0.03]}, "patience": 3},
        # the exponent is fixed: validation pushes it to 0 (uniform sampling), see Chapter 9's exercise 2
        {"name": "BPR (popularity)", "cls": BPR, "base": {**BPR_BASE, "sampling": "popularity", "pop_exponent": 0.5},
         "grid": {"reg": [0.01, 0.03]}, "patience": 3},
        {"name": "weighted MF (ALS)", "cls": WeightedMF, "base": {**ALS_BASE, "n_epochs": ALS_SWEEPS},
         "grid": ALS_GRID[:2] if quick else ALS_GRID},  # all sweeps, best kept: as implicit_ml100k.py
        {"name": "confidence ALS (binary)", "cls": ConfidenceMF,
         "base": {"n_factors": 64, "n_epochs": 12, "confidence": "binary"},
         "grid": {"alpha": [1.0, 3.0, 10.0], "reg": [30.0, 100.0]}, "patience": 3},
        {"name": "confidence ALS (rating)", "cls": ConfidenceMF,
         "base": {"n_factors": 64, "n_epochs": 12, "confidence": "rating"},
         "grid": {"alpha": [0.3, 1.0, 3.0], "reg": [30.0, 100.0]}, "patience": 3},
        # Chapter 7's models, with the settings chosen once on split seed 42 (see the module docstring)
        {"name": "NCF: GMF", "cls": NCF, "base": {**NCF_BASE, **CHOSEN_SETTINGS["I1"]["gmf"]}, "grid": {},
         "chapter": "07_neural_cf"},
        {"name": "NCF: MLP", "cls": NCF, "base": {**NCF_BASE, **CHOSEN_SETTINGS["I1"]["mlp"]}, "grid": {},
         "chapter": "07_neural_cf"},
        {"name": "NCF: NeuMF", "cls": NCF, "base": {**NCF_BASE, **CHOSEN_SETTINGS["I1"]["neumf"]}, "grid": {},
         "chapter": "07_neural_cf", "pretrained": ("NCF: GMF", "NCF: MLP")},
        {"name": "two-tower", "cls": TwoTower, "base": dict(CHOSEN_SETTINGS["I1"]["two_tower"]), "grid": {},
         "chapter": "07_neural_cf"},
    ]


def _edge_steps(grid: dict, best: dict) -> dict:
    """For each numeric list in ``grid`` whose best value is its smallest or largest: the next value outward
    (a geometric step, the ratio of the two outermost values)."""
    out = {}
    if not isinstance(grid, dict):
        return out
    for key, values in grid.items():
        nums = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
        if len(nums) < 2 or len(nums) != len(values) or nums[0] <= 0:
            continue
        value = best[key]
        if value == nums[-1]:
            new = nums[-1] * nums[-1] / nums[-2]
        elif value == nums[0]:
            new = nums[0] * nums[0] / nums[1]
        else:
            continue
        out[key] = int(round(new)) if all(isinstance(v, int) for v in values) else float(f"{new:.3g}")
    return out


def select(spec: dict, inner_valid, device, valid_seed: int) -> tuple[dict, list[str]]:
    """Tune ``spec`` on ``inner_valid``; extend the grid at any edge the choice sits on (three steps at most)."""
    base = {**spec["base"], "device": device}
    if "show_progress" in spec["cls"].__init__.__code__.co_varnames:
        base["show_progress"] = False
    grid = spec["grid"]
    if not grid:
        return {}, []
    result = tune(spec["cls"], None, grid, base_params=base, valid_split=inner_valid, seed=valid_seed,
                  patience=spec.get("patience"))
    best, value, notes = result.best_params, float(result.table[result.metric].iloc[0]), []
    for _ in range(3):
        steps = _edge_steps(grid, best)
        if not steps:
            break
        grid = {key: sorted(set(values) | ({steps[key]} if key in steps else set()))
                for key, values in grid.items()}
        tried = {key: [steps[key]] if key in steps else [best[key]] for key in grid}
        notes.append(f"extended {tried}")
        more = tune(spec["cls"], None, tried, base_params=base, valid_split=inner_valid, seed=valid_seed,
                    patience=spec.get("patience"))
        new_value = float(more.table[more.metric].iloc[0])
        if new_value > value:
            best, value = more.best_params, new_value
        else:
            break  # the step outward is worse: the choice is inside the extended grid
    return {k: v for k, v in best.items() if k not in ("device", "show_progress")}, notes


def run_seed(data, split_seed: int, args, device) -> dict:
    train, test = stratified_item_split(data, train_frac=0.75, seed=split_seed)
    inner_valid = train_validation_split(train, "I1", args.valid_seed)
    out, fitted = {}, {}
    for spec in specs(device, args.quick):
        t0 = time.perf_counter()
        params, notes = select(spec, inner_valid, device, args.valid_seed)
        tune_s = time.perf_counter() - t0
        extra = {"show_progress": False} if "show_progress" in spec["cls"].__init__.__code__.co_varnames else {}
        if "pretrained" in spec:  # NeuMF starts from this seed's fitted GMF and MLP
            extra["pretrained"] = tuple(fitted[name] for name in spec["pretrained"])
        model, fit_s = timed_fit(spec["cls"](**{**spec["base"], **params, "device": device, **extra}), train)
        fitted[spec["name"]] = model
        m = ranking_metrics(model, train, test, k=10, device=device)
        out[spec["name"]] = {"seed": split_seed, **{k: m[k] for k in METRICS}, "fit_s": fit_s, "tune_s": tune_s,
                             "params": params, "grid_notes": notes, "chapter": spec.get("chapter", "09_ranking")}
        if split_seed == args.seeds[0]:
            print(i1_line(spec["name"], m, fit_s) + f" tune_s={tune_s:.1f} params={params} {' '.join(notes)}",
                  flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="split seed 42 only and a smaller ALS grid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1, 2, 3], help="I1 split seeds")
    parser.add_argument("--valid-seed", type=int, default=0, help="seed of the validation split carved from train")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    device = mfkit.setup(seed=0, device=args.device, threads=args.threads)
    print(f"split seeds {args.seeds}, validation seed {args.valid_seed}, model seed 0; device={device}, "
          f"threads={torch.get_num_threads()}", flush=True)
    data = load_movielens_100k()
    runs: dict[str, list[dict]] = {}
    t_all = time.perf_counter()
    for seed in args.seeds:
        t0 = time.perf_counter()
        for name, run in run_seed(data, seed, args, device).items():
            runs.setdefault(name, []).append(run)
        print(f"split seed {seed}: " + " ".join(f"{n}={r[-1]['ndcg']:.4f}" for n, r in runs.items())
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    records = []
    for name, rs in runs.items():
        first = rs[0]
        rec = {"protocol": "I1", "model": name, "chapter": first["chapter"], **{k: first[k] for k in METRICS},
               "fit_s": float(np.mean([r["fit_s"] for r in rs])), "device": str(device), "params": first["params"],
               "split_seeds": [r["seed"] for r in rs], "valid_seed": args.valid_seed, "runs": rs}
        for k in METRICS:
            values = np.array([r[k] for r in rs])
            rec[f"{k}_mean"], rec[f"{k}_std"] = float(values.mean()), float(values.std())
        rec["notes"] = (f"nDCG {rec['ndcg_mean']:.3f} ± {rec['ndcg_std']:.3f}, P {rec['precision_mean']:.3f} ± "
                        f"{rec['precision_std']:.3f} over split seeds {', '.join(map(str, rec['split_seeds']))}")
        records.append(rec)
        print(f"I1 spread model={name} seeds={rec['split_seeds']} ndcg@10={rec['ndcg_mean']:.4f}"
              f"±{rec['ndcg_std']:.4f} p@10={rec['precision_mean']:.4f}±{rec['precision_std']:.4f} "
              f"fit_s={rec['fit_s']:.3f}", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")
    out = save_results("ranking_ml100k", records, MODULES)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
