"""Protocol E1 for Chapter 11: the Bayesian ladder of Rendle, Zhang & Koren (2019) on MovieLens 100k, seeds 0-4.

Every rung is :class:`mfkit.explicit.BayesianMF` (one Gibbs sampler) with an option:

- ``implicit="none"``: Bayesian MF (BPMF with biases, Chapter 5);
- ``implicit="user"``: Bayesian SVD++, a user's factor plus ``|N(u)|^-1/2`` times the sum of implicit vectors of the
  movies the user rated, the vectors sampled like the other factors;
- ``implicit="both"``: the "flipped" model, which adds the same on the item side (the users who rated the movie).

"Which movies a user rated" comes from the training pairs only (inductive, the headline figures) or also from the test
pairs without their ratings (``fit(..., implicit_pairs=test)``: transductive, as in the Netflix Prize), labelled.

For every seed: ``random_split(data, 0.2, seed)``; the noise precision ``alpha`` of each rung is chosen on a validation
part of the training part (``train_validation_split(train, "E1", seed)``, inductive, with ``SELECT_SAMPLES`` kept
sweeps), then the rung is refitted on the whole training part with ``N_SAMPLES`` kept sweeps, timed and scored on the
test part. ``--ranks`` adds the rank curve (Bayesian MF and SVD++ at several ``n_factors``, the alpha chosen at
``k = 10``), with per-seed RMSEs for paired intervals.

    .venv/bin/python benchmarks/bayesian_ml100k.py --ranks 5 10 20 40   # the record (five seeds)
    .venv/bin/python benchmarks/bayesian_ml100k.py --quick              # seed 0, short chains, no record

Prints ``E1 model=<name> rmse=<mean> rmse_std=<std> fit_s=<mean>`` per rung; writes
benchmarks/results/bayesian_ml100k.json (protocol E1 records with per-seed ``runs``; the rank curve under
``rank_curve``).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from _common import e1_record, save_results

import mfkit
from mfkit.data import load_movielens_100k, random_split, train_validation_split
from mfkit.explicit import BayesianMF, evaluate

MODULES = ["mfkit/explicit.py", "mfkit/metrics.py", "mfkit/data/splits.py"]
CHAPTER = "11_published_numbers"
K, BURN_IN, N_SAMPLES, SELECT_SAMPLES = 10, 30, 200, 60
ALPHAS = [1.0, 1.25, 1.5]
RUNGS = [("Bayesian MF", "none"), ("Bayesian SVD++", "user"), ("Bayesian SVD++ flipped", "both")]


def make(implicit: str, alpha: float, n_samples: int, k: int = K, burn_in: int = BURN_IN,
         device="cpu") -> BayesianMF:
    return BayesianMF(n_factors=k, n_samples=n_samples, burn_in=burn_in, alpha=alpha, implicit=implicit,
                      device=device, show_progress=False)


def choose_alpha(implicit: str, inner, valid, n_samples: int, burn_in: int, alphas, device) -> tuple[float, dict]:
    table = {}
    for alpha in alphas:
        model = make(implicit, alpha, n_samples, burn_in=burn_in, device=device).fit(inner)
        table[alpha] = evaluate(model, valid, clip=(1, 5))["rmse"]
    return min(table, key=table.get), {str(a): round(v, 5) for a, v in table.items()}


def fit_and_score(model, train, test, implicit_pairs=None) -> dict:
    t0 = time.perf_counter()
    model.fit(train, implicit_pairs=implicit_pairs)
    fit_s = time.perf_counter() - t0
    return {**evaluate(model, test, clip=(1, 5)), "fit_s": fit_s}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ranks", type=int, nargs="*", default=[], help="n_factors of the rank curve")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (E1 budget: 2)")
    parser.add_argument("--n-samples", type=int, default=N_SAMPLES, help="kept sweeps of the final fits")
    parser.add_argument("--select-samples", type=int, default=SELECT_SAMPLES, help="kept sweeps when choosing alpha")
    parser.add_argument("--burn-in", type=int, default=BURN_IN)
    parser.add_argument("--alphas", type=float, nargs="+", default=ALPHAS, help="candidate noise precisions")
    parser.add_argument("--quick", action="store_true", help="seed 0, short chains, no record")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else args.seeds
    n_samples, select_samples = (20, 10) if args.quick else (args.n_samples, args.select_samples)
    burn_in = args.burn_in
    device = mfkit.setup(seed=0, device="cpu", threads=args.threads)
    print(f"E1 seeds={seeds} threads={torch.get_num_threads()} k={K} burn_in={burn_in} n_samples={n_samples}",
          flush=True)
    data = load_movielens_100k()
    runs: dict[str, list[dict]] = {}
    curve: dict[str, dict[int, list[float]]] = {}
    for seed in seeds:
        train, test = random_split(data, 0.2, seed)
        inner, valid = train_validation_split(train, "E1", seed)
        for name, implicit in RUNGS:
            alpha, table = choose_alpha(implicit, inner, valid, select_samples, burn_in, args.alphas, device)
            variants = [(f"{name} (inductive)" if implicit != "none" else name, None)]
            if implicit != "none":
                variants.append((f"{name} (transductive)", test))
            for label, pairs in variants:
                run = {"seed": seed, **fit_and_score(make(implicit, alpha, n_samples, burn_in=burn_in), train, test,
                                                     pairs),
                       "params": {"alpha": alpha, "n_factors": K, "implicit": implicit,
                                  "transductive": pairs is not None}, "valid_rmse": table}
                runs.setdefault(label, []).append(run)
                print(f"  seed={seed} model={label} rmse={run['rmse']:.4f} mae={run['mae']:.4f} "
                      f"fit_s={run['fit_s']:.1f} alpha={alpha} valid={table}", flush=True)
            if implicit in ("none", "user"):
                for k in args.ranks:
                    rmse = (runs[variants[0][0]][-1]["rmse"] if k == K else
                            fit_and_score(make(implicit, alpha, n_samples, k=k, burn_in=burn_in), train,
                                          test)["rmse"])
                    curve.setdefault(name, {}).setdefault(k, []).append(rmse)
                    print(f"  seed={seed} rank model={name} k={k} rmse={rmse:.4f}", flush=True)
    records = []
    for label, rs in runs.items():
        notes = f"k={K}, {n_samples} samples" + (", transductive" if "transductive" in label else "")
        rs = [{**r, "n_samples": n_samples, "burn_in": burn_in} for r in rs]
        rec = e1_record(label, CHAPTER, rs, seeds, notes=notes)
        records.append(rec)
        print(f"E1 model={label} rmse={rec['rmse']:.4f} rmse_std={rec['rmse_std']:.4f} mae={rec['mae']:.4f} "
              f"fit_s={rec['fit_s']:.1f}", flush=True)
    extra = {"protocol": "E1", "seeds": seeds,
             "rank_curve": {name: {str(k): v for k, v in ks.items()} for name, ks in curve.items()}}
    if not args.no_save and not args.quick:
        command = "python benchmarks/bayesian_ml100k.py " + " ".join(argv if argv is not None else sys.argv[1:])
        out = save_results("bayesian_ml100k", records, MODULES, command.strip(), extra=extra)
        print(f"wrote {out}")
    return records


if __name__ == "__main__":
    main()
