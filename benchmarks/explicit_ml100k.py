"""Protocol E1: explicit ratings on MovieLens 100k — RMSE/MAE of clipped predictions over seeds 0-4.

For every seed: ``random_split(data, 0.2, seed)``; hyperparameters of each model are chosen on a validation part carved
out of the training part (``train_validation_split(train, "E1", seed)``, via ``mfkit.explicit.tune_on_validation``),
then the chosen model is refitted on the whole training part, timed, and scored on the test part. Prints one line per
model with the means over the seeds::

    E1 model=<name> rmse=<x> mae=<x> fit_s=<x>

``fit_s`` is the final fit only (not the selection). Reference on this protocol (seed 0, 2 CPU cores): Surprise SVD
defaults 0.9355 (0.7 s), SVD++ 0.9193 (11 s), BaselineOnly 0.9447. Target for the best model: mean RMSE <= 0.905
(stretch 0.900) with fit <= 1 s on 2 CPU cores.

Usage: ``.venv/bin/python benchmarks/explicit_ml100k.py [--quick] [--seeds 0 1 2 3 4] [--device cpu]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_results  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mfkit.data import load_movielens_100k, random_split  # noqa: E402
from mfkit.explicit import BayesianMF, BiasBaseline, BiasedMF, GlobalMean, evaluate, tune_on_validation  # noqa: E402
from mfkit.utils import setup  # noqa: E402


# The chapter that builds each model (the results page links it); the global mean is the bar every model must clear.
CHAPTERS = {"global_mean": "05_explicit_mf", "bias_baseline": "05_explicit_mf", "biased_mf_sgd": "06_svd_sgd",
            "biased_mf_autograd": "05_explicit_mf", "biased_mf_als": "05_explicit_mf", "bayesian_mf": "05_explicit_mf"}


def model_specs(device, quick: bool = False) -> list[dict]:
    """name, factory, grid and early-stopping patience of each model of the E1 table."""
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


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description="Protocol E1 on MovieLens 100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--device", default="cpu", help="E1 is a CPU protocol; cuda works too")
    parser.add_argument("--quick", action="store_true", help="seed 0 only and short training: a smoke run")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else args.seeds
    device = setup(seed=0, device=args.device)
    print(f"E1 seeds={seeds} device={device} threads={torch.get_num_threads()}")
    data = load_movielens_100k()
    specs = model_specs(device, args.quick)
    per_seed = {s["name"]: [] for s in specs}
    for seed in seeds:
        train, test = random_split(data, 0.2, seed)
        for spec in specs:
            _, best, table = tune_on_validation(spec["make"], spec["grid"], train, seed=seed, refit=False,
                                                patience=spec.get("patience"))
            model = spec["make"](**{k: v for k, v in best.items() if k != "n_epochs"})
            if "n_epochs" in best:
                model.n_epochs = best["n_epochs"]
            t0 = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - t0
            scores = evaluate(model, test, clip=(1, 5))
            per_seed[spec["name"]].append({"seed": seed, **scores, "fit_s": fit_s, "params": best,
                                           "valid_rmse": float(table.valid_rmse.iloc[0])})
            print(f"  seed={seed} model={spec['name']} rmse={scores['rmse']:.4f} mae={scores['mae']:.4f} "
                  f"fit_s={fit_s:.3f} chosen={best}", flush=True)
    records = []
    for spec in specs:
        runs = per_seed[spec["name"]]
        rec = {"protocol": "E1", "model": spec["name"], "chapter": CHAPTERS[spec["name"]], "rmse": float(np.mean([r["rmse"] for r in runs])),
               "mae": float(np.mean([r["mae"] for r in runs])), "fit_s": float(np.mean([r["fit_s"] for r in runs])),
               "rmse_std": float(np.std([r["rmse"] for r in runs])), "seeds": seeds, "runs": runs}
        records.append(rec)
        print(f"E1 model={rec['model']} rmse={rec['rmse']:.4f} mae={rec['mae']:.4f} fit_s={rec['fit_s']:.3f}")
    print("E1 reference (seed 0, Surprise): SVD defaults 0.9355 (0.7 s), SVD++ 0.9193 (11 s), BaselineOnly 0.9447")
    if not args.no_save and not args.quick:
        command = "python benchmarks/explicit_ml100k.py " + " ".join(argv if argv is not None else sys.argv[1:])
        save_results("explicit_ml100k", records, ["mfkit/explicit.py", "mfkit/training.py", "mfkit/metrics.py"],
                     command.strip(), extra={"protocol": "E1", "seeds": seeds})
    return records


if __name__ == "__main__":
    main()
