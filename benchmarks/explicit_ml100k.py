"""Protocol E1: explicit ratings on MovieLens 100k — RMSE/MAE of clipped predictions over seeds 0-4.

For every seed: ``random_split(data, 0.2, seed)``; hyperparameters of each model are chosen on a validation part carved
out of the training part (``train_validation_split(train, "E1", seed)``, via ``mfkit.training.tune``),
then the chosen model is refitted on the whole training part, timed, and scored on the test part. Prints one line per
model with the means over the seeds::

    E1 model=<name> rmse=<x> mae=<x> fit_s=<x>

``fit_s`` is the final fit only (not the selection). The peers (Surprise's SVD, SVD++ and BaselineOnly) are measured
on the same five splits by ``benchmarks/peers_ml100k.py``. Target for the best model: mean RMSE <= 0.905
(stretch 0.900) with fit <= 1 s on 2 CPU cores.

Usage: ``.venv/bin/python benchmarks/explicit_ml100k.py [--quick] [--seeds 0 1 2 3 4] [--device cpu]``.
"""
from __future__ import annotations

import argparse
import sys

import torch
from _common import E1_CHAPTERS, e1_model_specs, e1_record, e1_select_and_fit, save_results

from mfkit.data import load_movielens_100k, random_split
from mfkit.explicit import evaluate
from mfkit.utils import setup


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
    specs = e1_model_specs(device, args.quick)
    per_seed = {s["name"]: [] for s in specs}
    for seed in seeds:
        train, test = random_split(data, 0.2, seed)
        for spec in specs:
            model, fit_s, best, table = e1_select_and_fit(spec, train, seed)
            scores = evaluate(model, test, clip=(1, 5))
            per_seed[spec["name"]].append({"seed": seed, **scores, "fit_s": fit_s, "params": best,
                                           "valid_rmse": float(table["rmse"].iloc[0])})
            print(f"  seed={seed} model={spec['name']} rmse={scores['rmse']:.4f} mae={scores['mae']:.4f} "
                  f"fit_s={fit_s:.3f} chosen={best}", flush=True)
    records = []
    for spec in specs:
        runs = per_seed[spec["name"]]
        rec = e1_record(spec["name"], E1_CHAPTERS[spec["name"]], runs, seeds)
        records.append(rec)
        print(f"E1 model={rec['model']} rmse={rec['rmse']:.4f} mae={rec['mae']:.4f} fit_s={rec['fit_s']:.3f}")
    print("E1 peers on the same splits: python benchmarks/peers_ml100k.py (benchmarks/results/peers_ml100k.json)")
    if not args.no_save and not args.quick:
        command = "python benchmarks/explicit_ml100k.py " + " ".join(argv if argv is not None else sys.argv[1:])
        save_results("explicit_ml100k", records, ["mfkit/explicit.py", "mfkit/training.py", "mfkit/metrics.py"],
                     command.strip(), extra={"protocol": "E1", "seeds": seeds})
    return records


if __name__ == "__main__":
    main()
