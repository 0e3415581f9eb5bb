"""Protocol I1 for Chapter 11: iALS tuned as Rendle et al. (2022) tune it, against EASE and Chapter 9's weighted MF.

iALS is :class:`mfkit.implicit.WeightedMF` (closed-form ALS, conjugate-gradient half-sweeps) with three options:
frequency-scaled regularisation ``λ* · (n + w·(N − n))^ν`` on the normalised scale (``reg_normalised=True``: the
per-row multipliers divided by their mean, so that one ``λ*`` means the same at every ``ν``), the unobserved weight
``w`` (the paper's ``α₀``) and the initialisation ``σ = 0.1/√d`` (``init_scale="auto"``).

For every split seed (42, 0, 1, 2, 3), on a validation part carved from that seed's training part
(``train_validation_split(train, "I1", 0)``), the settings are chosen in the paper's order, each stage keeping the
others fixed and the sweeps chosen by early stopping (patience 3, at most 24 sweeps):

1. ``d = 64``, ``ν = 0``: the unobserved weight ``w`` and ``λ*`` on a grid;
2. ``ν`` in {0, 0.5, 1} with ``λ*`` re-tuned around the stage-1 choice (÷1.4, ×1.4);
3. ``d`` in {64, 128, 256, 512} with ``λ*`` re-tuned the same way.

The choice is refitted on the whole training part and scored on the test part. EASE and Chapter 9's weighted MF
(``benchmarks/_common.py``'s grid) are tuned and scored on the same splits in the same run, so that the comparison
is paired: per-user nDCG@10 of the three models are stored per seed, and ``mfkit.metrics.paired_comparison``
(t interval over the split seeds) gives the verdicts printed at the end.

    .venv/bin/python benchmarks/ials_ml100k.py            # five split seeds, one CPU thread
    .venv/bin/python benchmarks/ials_ml100k.py --quick    # split seed 42 only, stage 3 at d = 128 only (smoke run)

Results go to benchmarks/results/ials_ml100k.json (records of protocol I1 with ``ndcg_mean``/``ndcg_std``, the
per-seed ``runs`` with the chosen settings, and ``per_user`` nDCG lists for the paired comparisons).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import ALS_BASE, ALS_GRID, ALS_SWEEPS, save_results, timed_fit

import mfkit
from mfkit.data import load_movielens_100k, stratified_item_split, train_validation_split
from mfkit.implicit import WeightedMF
from mfkit.metrics import paired_comparison, ranking_metrics
from mfkit.ranking import EASE
from mfkit.training import tune

MODULES = ["mfkit/implicit.py", "mfkit/ranking.py", "mfkit/metrics.py", "mfkit/data/splits.py", "mfkit/training.py",
           "mfkit/base.py"]
METRICS = ("ndcg", "precision", "recall", "map")
MAX_SWEEPS, PATIENCE, CG_STEPS = 24, 3, 4
STAGE1 = {"unobserved_weight": [0.1, 0.2, 0.3, 0.5], "reg": [5.0, 7.0, 10.0, 14.0]}
NUS, DIMS, STEP = [0.0, 0.5, 1.0], [64, 128, 256, 512], 1.4
EASE_GRID = {"reg": [150.0, 300.0, 600.0, 1200.0]}


def ials(n_factors=64, unobserved_weight=0.3, reg=10.0, reg_scaling=0.0, n_epochs=MAX_SWEEPS, device="cpu"):
    """iALS: WeightedMF with the revisit's options (normalised frequency-scaled λ, α₀, σ = 0.1/√d)."""
    return WeightedMF(n_factors=n_factors, unobserved_weight=unobserved_weight, reg=reg, reg_scaling=reg_scaling,
                      reg_normalised=True, init_scale="auto", solver="als", als_method="cg", cg_steps=CG_STEPS,
                      n_epochs=n_epochs, device=device, show_progress=False)


def score(params: dict, inner, valid, device) -> tuple[float, int]:
    """Validation nDCG@10 of the best sweep and that sweep's number (early stopping with PATIENCE)."""
    model = ials(**params, device=device).fit(inner, valid, patience=PATIENCE)
    metrics = [r["metric"] for r in model.history_.records]
    best = int(np.argmax(metrics))
    return float(metrics[best]), best + 1


def choose(inner, valid, device, quick: bool) -> tuple[dict, list[dict]]:
    """The three stages of the module docstring; returns the chosen settings (with ``n_epochs``) and every trial."""
    trials = []

    def run(candidates, stage):
        for params in candidates:
            ndcg, epochs = score(params, inner, valid, device)
            trials.append({"stage": stage, **params, "valid_ndcg": ndcg, "n_epochs": epochs})
        best = max((t for t in trials if t["stage"] == stage), key=lambda t: t["valid_ndcg"])
        return {k: best[k] for k in ("n_factors", "unobserved_weight", "reg", "reg_scaling", "n_epochs")}

    best = run([{"n_factors": 64, "unobserved_weight": w, "reg": lam, "reg_scaling": 0.0}
                for w in STAGE1["unobserved_weight"] for lam in STAGE1["reg"]], 1)
    lams = lambda lam: [round(lam / STEP, 3), lam, round(lam * STEP, 3)]  # noqa: E731
    best = run([{**best, "reg_scaling": nu, "reg": lam} for nu in NUS for lam in lams(best["reg"])], 2)
    dims = [128] if quick else DIMS
    best = run([{**best, "n_factors": d, "reg": lam} for d in dims for lam in lams(best["reg"])], 3)
    for t in trials:
        t.pop("n_epochs_max", None)
    return best, trials


def evaluate(model, train, test, device) -> dict:
    m = ranking_metrics(model, train, test, k=10, device=device, per_user=True)
    out = {k: float(m[k]) for k in METRICS}
    out["per_user"] = [round(float(x), 5) for x in np.asarray(m["per_user"]["ndcg"])]
    return out


def run_seed(data, seed: int, args, device) -> dict:
    train, test = stratified_item_split(data, train_frac=0.75, seed=seed)
    inner, valid = train_validation_split(train, "I1", args.valid_seed)
    out = {}
    t0 = time.perf_counter()
    params, trials = choose(inner, valid, device, args.quick)
    tune_s = time.perf_counter() - t0
    model, fit_s = timed_fit(ials(**params, device=device), train)
    out["iALS (tuned)"] = {"seed": seed, **evaluate(model, train, test, device), "fit_s": fit_s, "tune_s": tune_s,
                           "params": params, "trials": trials}
    for name, cls, base, grid in [("EASE", EASE, {}, EASE_GRID),
                                  ("weighted MF (Chapter 9)", WeightedMF,
                                   {**ALS_BASE, "n_epochs": ALS_SWEEPS, "show_progress": False}, ALS_GRID)]:
        t0 = time.perf_counter()
        result = tune(cls, None, grid, base_params={**base, "device": device}, valid_split=(inner, valid),
                      seed=args.valid_seed)
        chosen = {k: v for k, v in result.best_params.items() if k != "device"}
        tune_s = time.perf_counter() - t0
        model, fit_s = timed_fit(cls(**{**base, **chosen, "device": device}), train)
        out[name] = {"seed": seed, **evaluate(model, train, test, device), "fit_s": fit_s, "tune_s": tune_s,
                     "params": chosen}
    print(f"split seed {seed}: " + " ".join(f"{n}={r['ndcg']:.4f}" for n, r in out.items())
          + f" iALS chosen {params}", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="split seed 42 only, stage 3 at d = 128 only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1, 2, 3], help="I1 split seeds")
    parser.add_argument("--valid-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    device = mfkit.setup(seed=0, device=args.device, threads=args.threads)
    print(f"I1 split seeds {args.seeds}, validation seed {args.valid_seed}; device={device}, "
          f"threads={torch.get_num_threads()}", flush=True)
    data = load_movielens_100k()
    runs: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name, run in run_seed(data, seed, args, device).items():
            runs.setdefault(name, []).append(run)
    records = []
    for name, rs in runs.items():
        rec = {"protocol": "I1", "model": name, "chapter": "11_published_numbers" if "iALS" in name else "09_ranking",
               **{k: rs[0][k] for k in METRICS}, "fit_s": float(np.mean([r["fit_s"] for r in rs])),
               "device": str(device), "split_seeds": [r["seed"] for r in rs], "valid_seed": args.valid_seed,
               "runs": rs}
        for k in METRICS:
            values = np.array([r[k] for r in rs])
            rec[f"{k}_mean"], rec[f"{k}_std"] = float(values.mean()), float(values.std())
        rec["notes"] = f"nDCG {rec['ndcg_mean']:.3f} ± {rec['ndcg_std']:.3f} over split seeds " + ", ".join(
            map(str, rec["split_seeds"]))
        records.append(rec)
        print(f"I1 spread model={name} seeds={rec['split_seeds']} ndcg@10={rec['ndcg_mean']:.4f}"
              f"±{rec['ndcg_std']:.4f} fit_s={rec['fit_s']:.2f}", flush=True)
    ials_runs = runs["iALS (tuned)"]
    for other in ("EASE", "weighted MF (Chapter 9)"):
        if len(ials_runs) > 1:
            c = paired_comparison([np.array(r["per_user"]) for r in ials_runs],
                                  [np.array(r["per_user"]) for r in runs[other]], names=("iALS", other),
                                  metric="nDCG@10", over="seeds")
            print(f"I1 paired {c}", flush=True)
    if not args.no_save and not args.quick:
        out = save_results("ials_ml100k", records, MODULES)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
