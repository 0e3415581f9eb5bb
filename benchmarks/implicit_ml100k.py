"""Benchmark I1: weighted MF for implicit feedback on MovieLens 100k (top-10 ranking), plus a Netflix-scale timing.

Protocol I1 (book/how_we_measure.ipynb): every rating is an interaction; stratified_item_split(train_frac=0.75,
seed=42); for each user with test rows, the top 10 items excluding the user's train items; precision, recall, nDCG and MAP at
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
import time

import numpy as np
import torch
from _common import (ALS_BASE, ALS_GRID, ALS_GRID_QUICK, ALS_SWEEPS, i1_line, i1_record, netflix_shaped, save_results,
                     select_weighted_mf, timed_fit)

import mfkit
from mfkit.data import load_movielens_100k, stratified_item_split
from mfkit.implicit import Popularity, WeightedMF
from mfkit.metrics import ranking_metrics

MODULES = ["mfkit/implicit.py", "mfkit/metrics.py", "mfkit/data/splits.py", "mfkit/training.py"]

# The ALS grid (ALS_GRID, ALS_BASE, ALS_SWEEPS) is in _common.py: neural_ml100k.py selects its reference with it.
GRAM_LRS = (0.01, 0.03)
GRAM_EPOCHS = 300
GRAM_PATIENCE = 30  # stop a Gram candidate after 30 epochs without a better validation nDCG


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


def fit_all(data, split_seed: int, args, device) -> dict:
    """Every model of this script on one I1 split, selection on validation included.

    Returns ``{name: (metrics, fit_s, params)}`` in the order of the records.
    """
    train, test = stratified_item_split(data, train_frac=0.75, seed=split_seed)
    out = {}

    def score(name, model, fit_s, params=None):
        out[name] = (ranking_metrics(model, train, test, k=10, device=device), fit_s, params)

    pop, fit_s = timed_fit(Popularity(device=device), train)
    score("popularity", pop, fit_s)
    best, _ = select_weighted_mf(train, ALS_GRID_QUICK if args.quick else ALS_GRID,
                                 {**ALS_BASE, "n_epochs": ALS_SWEEPS}, args.valid_seed, device)
    for name, params in (("wmf_als", best), ("wmf_als_cholesky", {**best, "als_method": "cholesky"}),
                         ("wmf_als_w0.005", {**best, "unobserved_weight": 0.005})):
        model, fit_s = timed_fit(WeightedMF(**params, device=device, show_progress=False), train)
        score(name, model, fit_s, params)
    gram_base = {**{k: v for k, v in best.items() if k not in ("als_method", "cg_steps")}, "solver": "gram",
                 "optimizer": "adam", "n_epochs": 100 if args.quick else GRAM_EPOCHS}
    gbest, _ = select_weighted_mf(train, {"lr": GRAM_LRS[-1:] if args.quick else list(GRAM_LRS)}, gram_base,
                                  args.valid_seed, device, GRAM_PATIENCE)
    model, fit_s = timed_fit(WeightedMF(**gbest, device=device, show_progress=False), train)
    score("wmf_gram_adam", model, fit_s, gbest)
    return out


SPREAD_METRICS = ("ndcg", "precision", "recall", "map")


def add_split_spread(records: list[dict], data, args, device) -> None:
    """Protocol I1's spread: re-run every model (selection included) on the other split seeds and store, in each
    record, ``<metric>_mean`` and ``<metric>_std`` over all of ``args.split_seeds`` (the record's own figures stay
    those of ``args.seed``), ``split_seeds`` and the per-seed ``runs``. Orderings within the spread are ties."""
    runs = {r["model"]: [{"seed": args.seed, **{m: r[m] for m in SPREAD_METRICS}, "fit_s": r["fit_s"]}]
            for r in records}
    for seed in args.split_seeds:
        if seed == args.seed:
            continue
        t0 = time.perf_counter()
        for name, (m, fit_s, _) in fit_all(data, seed, args, device).items():
            runs[name].append({"seed": seed, **{k: m[k] for k in SPREAD_METRICS}, "fit_s": fit_s})
        print(f"split seed {seed}: " + " ".join(f"{n}={r[-1]['ndcg']:.4f}" for n, r in runs.items())
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    for r in records:
        rs = runs[r["model"]]
        r["split_seeds"] = [x["seed"] for x in rs]
        r["runs"] = rs
        for m in SPREAD_METRICS:
            values = np.array([x[m] for x in rs])
            r[f"{m}_mean"], r[f"{m}_std"] = float(values.mean()), float(values.std())
        print(f"I1 spread model={r['model']} seeds={r['split_seeds']} ndcg@10={r['ndcg_mean']:.4f}"
              f"±{r['ndcg_std']:.4f} p@10={r['precision_mean']:.4f}±{r['precision_std']:.4f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a two-point grid and fewer Gram epochs")
    parser.add_argument("--seed", type=int, default=42, help="I1 split seed (the protocol's is 42)")
    parser.add_argument("--split-seeds", type=int, nargs="*", default=[42, 0, 1, 2, 3],
                        help="split seeds of the mean ± std stored with each record (none: skip the spread)")
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
        print(i1_line(name, m, fit_s), flush=True)
        records.append(i1_record(name, m, fit_s, "02_weighted_mf", device, describe(params), params,
                                 split_seed=args.seed, valid_seed=args.valid_seed))
        return m

    pop, fit_s = timed_fit(Popularity(device=device), train)
    report("popularity", pop, fit_s)

    # -- weighted MF, ALS: select on validation, refit on all of train -------------------------------------------
    t0 = time.perf_counter()
    best, table = select_weighted_mf(train, ALS_GRID_QUICK if args.quick else ALS_GRID,
                                     {**ALS_BASE, "n_epochs": ALS_SWEEPS}, args.valid_seed, device)
    print(f"ALS selection on validation ({len(table)} points, {time.perf_counter() - t0:.1f} s):")
    print(table.round(4).to_string(index=False))
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
                 "optimizer": "adam", "n_epochs": 100 if args.quick else GRAM_EPOCHS}
    t0 = time.perf_counter()
    gbest, gtable = select_weighted_mf(train, {"lr": GRAM_LRS[-1:] if args.quick else list(GRAM_LRS)}, gram_base,
                                       args.valid_seed, device, GRAM_PATIENCE)
    print(f"Gram (Adam) selection on validation ({len(gtable)} points, {time.perf_counter() - t0:.1f} s):")
    print(gtable.round(4).to_string(index=False))
    gram, fit_s = timed_fit(WeightedMF(**gbest, device=device, show_progress=False), train)
    gram_metrics = report("wmf_gram_adam", gram, fit_s, gbest)
    print(f"gram vs als: ndcg@10 difference {gram_metrics['ndcg'] - als_metrics['ndcg']:+.4f} (target within 0.02); "
          f"target for the best: ndcg@10 >= 0.48, p@10 >= 0.42, fit <= 0.5 s on 2 CPU cores")

    if args.split_seeds:
        add_split_spread(records, data, args, device)

    extra = {"seeds": {"split": args.seed, "validation": args.valid_seed, "model": 0,
                       "split_spread": args.split_seeds},
             "als_selection": plain_records(table), "gram_selection": plain_records(gtable)}
    if args.scale:  # not an I1 figure: stored beside the records
        extra["scale"] = scale_section(args, device)

    path = save_results("implicit_ml100k", records, MODULES, extra=extra)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
