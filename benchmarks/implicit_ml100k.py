"""Benchmark I1: weighted MF for implicit feedback on MovieLens 100k (top-10 ranking), plus a Netflix-scale timing.

Protocol I1 (../shared/PROTOCOLS.md): every rating is an interaction; stratified_item_split(train_frac=0.75, seed=42);
for each user with test rows, the top 10 items excluding the user's train items; precision, recall, nDCG and MAP at
10. Hyperparameters are chosen on a validation part carved from the train part (train_validation_split(train, "I1",
--valid-seed)), never on the test part: the selection is re-run here, so any split seed gives an honest figure.

    .venv/bin/python benchmarks/implicit_ml100k.py              # I1 lines
    .venv/bin/python benchmarks/implicit_ml100k.py --quick      # smaller grid (smoke run)
    .venv/bin/python benchmarks/implicit_ml100k.py --scale      # + one ALS sweep / one Gram epoch on a generated
                                                                #   Netflix-shaped matrix (1/10 of the users; --full)

Prints one line per model: ``I1 model=<name> ndcg@10=<x> p@10=<x> r@10=<x> map@10=<x> fit_s=<x>`` (fit_s: the final
fit with the chosen hyperparameters), and with --scale ``SCALE ...`` lines. Results go to
benchmarks/results/implicit_ml100k.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import save_results  # noqa: E402  (puts the repository root on sys.path too)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mfkit  # noqa: E402
from mfkit.data import Interactions, load_movielens_100k, stratified_item_split  # noqa: E402
from mfkit.implicit import Popularity, WeightedMF, tune_weighted_mf  # noqa: E402
from mfkit.metrics import ranking_metrics  # noqa: E402

MODULES = ["mfkit/implicit.py", "mfkit/metrics.py", "mfkit/data/splits.py", "mfkit/training.py"]

# ALS grid: the unobserved weight, the regularisation (plain, or scaled by each row's total loss weight as in Rendle et
# al. 2021) and the dimension. n_epochs is the most sweeps tried; the best sweep on validation is kept.
ALS_GRID = [
    *({"reg_scaling": None, "unobserved_weight": w, "reg": r} for w in (0.3, 0.5) for r in (7, 10, 14)),
    *({"reg_scaling": 1.0, "unobserved_weight": w, "reg": r} for w in (0.1, 0.2) for r in (0.02, 0.03, 0.04)),
]
ALS_GRID_QUICK = [{"reg_scaling": None, "unobserved_weight": 0.3, "reg": 10},
                  {"reg_scaling": 1.0, "unobserved_weight": 0.1, "reg": 0.03}]
# conjugate-gradient half-sweeps (3 steps, warm-started) reach the exact ALS fixed point at a fraction of the cost of
# k × k Cholesky solves on a CPU; the exact solver is timed too, with the same hyperparameters.
ALS_BASE = {"solver": "als", "als_method": "cg", "cg_steps": 3, "n_factors": 64}
ALS_SWEEPS = 15
GRAM_LRS = (0.01, 0.03)
GRAM_EPOCHS = 300
GRAM_PATIENCE = 30  # stop a Gram candidate after 30 epochs without a better validation nDCG


def line(name: str, m: dict, fit_s: float) -> str:
    return (f"I1 model={name} ndcg@10={m['ndcg']:.4f} p@10={m['precision']:.4f} r@10={m['recall']:.4f} "
            f"map@10={m['map']:.4f} fit_s={fit_s:.3f}")


def describe(params: dict | None) -> str:
    """A short note for the results table, e.g. "k=64, w=0.3, reg=10, 11 sweeps (cg)"."""
    if not params:
        return ""
    unit = "sweeps" if params.get("solver") == "als" else "epochs"
    if params.get("solver") == "als":
        how = params.get("als_method")
    else:
        how = f"{params.get('optimizer')} lr {params.get('lr')}"
    scaling = "" if params.get("reg_scaling") is None else f" scaled^{params['reg_scaling']}"
    return (f"k={params.get('n_factors')}, w={params.get('unobserved_weight')}, reg={params.get('reg')}{scaling}, "
            f"{params.get('n_epochs')} {unit} ({how})")


def plain_records(table) -> list[dict]:
    """A selection table as JSON-safe records (None, not NaN, where reg_scaling is None)."""
    return table.astype(object).where(table.notna(), None).to_dict("records")


def timed_fit(model, train):
    t0 = time.perf_counter()
    model.fit(train)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return model, time.perf_counter() - t0


def netflix_shaped(n_users: int, n_items: int, n_interactions: int, seed: int = 0) -> Interactions:
    """A random implicit matrix shaped like Netflix: log-normal activity per user, Zipf-like item popularity.

    Pairs are drawn independently (user by activity, item by popularity), then de-duplicated, vectorised.
    """
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = rng.permutation(popularity)
    user = rng.choice(n_users, size=n_interactions, p=activity / activity.sum()).astype(np.int64)
    item = rng.choice(n_items, size=n_interactions, p=popularity / popularity.sum()).astype(np.int64)
    key = np.unique(user * n_items + item)
    return Interactions((key // n_items).astype(np.int32), (key % n_items).astype(np.int32), None,
                        np.arange(n_users), np.arange(n_items), name="netflix-shaped")


def scale_section(args, device) -> dict:
    frac = 1.0 if args.full else args.scale_frac
    n_users, n_items, nnz = int(480_189 * frac), 17_770, int(100_480_507 * frac)
    t0 = time.perf_counter()
    data = netflix_shaped(n_users, n_items, nnz, seed=0)
    print(f"SCALE generated {data} in {time.perf_counter() - t0:.1f} s (users and interactions × {frac:g} of "
          "Netflix, all 17,770 items)", flush=True)
    k = args.scale_factors
    dense_gib = data.n_users * data.n_items * 4 / 2**30
    if dense_gib * 2**30 > WeightedMF().max_dense_bytes:
        try:
            WeightedMF(solver="dense", n_factors=k, device=device).fit(data)
        except ValueError as err:
            print(f"SCALE dense solver refused, as it should: {err}")
    else:
        print(f"SCALE a dense matrix would take {dense_gib:.2f} GiB (not built)")
    out = {"users": data.n_users, "items": data.n_items, "nnz": len(data), "k": k, "device": str(device)}
    for solver, method, what in (("als", "cg", "als_sweep"), ("als", "cholesky", "als_cholesky_sweep"),
                                 ("gram", "cg", "gram_epoch")):
        model, total = timed_fit(WeightedMF(solver=solver, als_method=method, n_factors=k, n_epochs=1,
                                            device=device, unobserved_weight=0.1, reg=1.0, lr=0.01,
                                            show_progress=False), data)
        out[f"{what}_s"] = model.history_.records[0]["seconds"]
        out[f"{what}_fit_total_s"] = total
        del model
    print(f"SCALE users={out['users']} items={out['items']} nnz={out['nnz']} k={k} device={device} "
          f"als_sweep_s={out['als_sweep_s']:.3f} als_cholesky_sweep_s={out['als_cholesky_sweep_s']:.3f} "
          f"gram_epoch_s={out['gram_epoch_s']:.3f} (fit incl. setup: als {out['als_sweep_fit_total_s']:.2f} s, "
          f"als cholesky {out['als_cholesky_sweep_fit_total_s']:.2f} s, gram {out['gram_epoch_fit_total_s']:.2f} s)")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a two-point grid and fewer Gram epochs")
    parser.add_argument("--seed", type=int, default=42, help="I1 split seed (the protocol's is 42)")
    parser.add_argument("--valid-seed", type=int, default=0, help="seed of the validation split carved from train")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the protocol's figures: 2)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    parser.add_argument("--scale", action="store_true", help="also time one ALS sweep / Gram epoch at Netflix shape")
    parser.add_argument("--scale-frac", type=float, default=0.1, help="share of Netflix's users and interactions")
    parser.add_argument("--full", action="store_true", help="with --scale: the full 480,189 × 17,770 × 100M")
    parser.add_argument("--scale-factors", type=int, default=64)
    args = parser.parse_args(argv)

    device = mfkit.setup(seed=0, device=args.device, threads=args.threads)
    print(f"seeds: split={args.seed} validation={args.valid_seed} model=0; device={device}, "
          f"threads={torch.get_num_threads()}", flush=True)
    data = load_movielens_100k()
    train, test = stratified_item_split(data, train_frac=0.75, seed=args.seed)
    records = []

    def report(name, model, fit_s, params=None):
        m = ranking_metrics(model, train, test, k=10, device=device)
        print(line(name, m, fit_s), flush=True)
        records.append({"protocol": "I1", "model": name, "chapter": "02_weighted_mf", "ndcg": m["ndcg"],
                        "precision": m["precision"], "recall": m["recall"], "map": m["map"], "fit_s": fit_s,
                        "device": str(device), "notes": describe(params), "params": params,
                        "split_seed": args.seed, "valid_seed": args.valid_seed})
        return m

    pop, fit_s = timed_fit(Popularity(device=device), train)
    report("popularity", pop, fit_s)

    # -- weighted MF, ALS: select on validation, refit on all of train -------------------------------------------
    t0 = time.perf_counter()
    best, table = tune_weighted_mf(train, ALS_GRID_QUICK if args.quick else ALS_GRID,
                                   base_params={**ALS_BASE, "n_epochs": ALS_SWEEPS, "device": device},
                                   seed=args.valid_seed, show_progress=False)
    print(f"ALS selection on validation ({len(table)} points, {time.perf_counter() - t0:.1f} s):")
    print(table.round(4).to_string(index=False))
    best = {k: v for k, v in best.items() if k not in ("device", "show_progress")}
    als, fit_s = timed_fit(WeightedMF(**best, device=device, show_progress=False), train)
    als_metrics = report("wmf_als", als, fit_s, best)

    # the same hyperparameters with exact batched Cholesky half-sweeps
    exact_params = {**best, "als_method": "cholesky"}
    exact, fit_s = timed_fit(WeightedMF(**exact_params, device=device, show_progress=False), train)
    report("wmf_als_cholesky", exact, fit_s, exact_params)

    # the seeds' unobserved weight, everything else as selected: how much the weight matters
    seed_params = {**best, "unobserved_weight": 0.005}
    seeds_w, fit_s = timed_fit(WeightedMF(**seed_params, device=device, show_progress=False), train)
    report("wmf_als_w0.005", seeds_w, fit_s, seed_params)

    # -- weighted MF, Gram loss + Adam: the same loss and hyperparameters, learning rate and epochs on validation --
    gram_base = {**{k: v for k, v in best.items() if k not in ("als_method", "cg_steps")}, "solver": "gram",
                 "optimizer": "adam", "n_epochs": 100 if args.quick else GRAM_EPOCHS, "device": device}
    t0 = time.perf_counter()
    gbest, gtable = tune_weighted_mf(train, {"lr": GRAM_LRS[-1:] if args.quick else list(GRAM_LRS)},
                                     base_params=gram_base, seed=args.valid_seed, patience=GRAM_PATIENCE,
                                     show_progress=False)
    print(f"Gram (Adam) selection on validation ({len(gtable)} points, {time.perf_counter() - t0:.1f} s):")
    print(gtable.round(4).to_string(index=False))
    gbest = {k: v for k, v in gbest.items() if k not in ("device", "show_progress")}
    gram, fit_s = timed_fit(WeightedMF(**gbest, device=device, show_progress=False), train)
    gram_metrics = report("wmf_gram_adam", gram, fit_s, gbest)
    print(f"gram vs als: ndcg@10 difference {gram_metrics['ndcg'] - als_metrics['ndcg']:+.4f} (target within 0.02); "
          f"target for the best: ndcg@10 >= 0.48, p@10 >= 0.42, fit <= 0.5 s on 2 CPU cores")

    extra = {"seeds": {"split": args.seed, "validation": args.valid_seed, "model": 0},
             "als_selection": plain_records(table), "gram_selection": plain_records(gtable)}
    if args.scale:  # not an I1 figure: stored beside the records
        extra["scale"] = scale_section(args, device)

    path = save_results("implicit_ml100k", records, MODULES, extra=extra)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
