"""Protocol P1: mfkit against the libraries a reader would otherwise pick, same data, rank, threads and iterations.

Two comparisons, each timed in ONE run with the two libraries interleaved (best of ``--reps``), so that the ratio
``mfkit / peer`` is meaningful on a shared machine even when the absolute times are not:

- Weighted MF by ALS (Chapter 2) against ``implicit``'s CPU ALS (``implicit.cpu.als.AlternatingLeastSquares``,
  Cython, conjugate gradient), on a Netflix-shaped implicit matrix (``netflix_shaped`` of
  ``benchmarks/_common.py``) at 1% and 10% of Netflix's users and interactions (100% with ``--full``), k = 64:
  one sweep, and a fit of ``--sweeps`` sweeps with the objective both reach. The objectives are the same:
  ``implicit`` minimises ``Σ c (p − x·y)² + λ (Σ‖x‖² + Σ‖y‖²)`` with ``c = alpha`` on observed and 1 on unobserved
  cells (``alpha`` multiplies the 0/1 matrix), mfkit ``Σ_O (1 − x·y)² + w Σ_¬O (x·y)² + λ' (…)``; dividing by
  ``alpha`` gives ``w = 1 / alpha``, ``λ' = λ / alpha``. Both start from the same factors (mfkit's initial draw is
  handed to ``implicit``), so after the same sweeps they should reach the same objective.
- Biased MF by ALS (Chapter 5; one sweep, Cholesky and CG) against weighted MF's sweep with the same solver on the
  same Netflix shape (ratings drawn uniformly from 1..5): both call the one row solver ``mfkit.als``, so a biased
  sweep (``k + 1`` unknowns a row, its training RMSE included) should cost about what a weighted sweep costs.
- Biased MF by SGD (Chapter 6) against Surprise's ``SVD`` (defaults: k = 100, 20 epochs, lr 0.005, reg 0.02) on
  E1 seed 0: time and test RMSE side by side, mfkit with Surprise's settings (minibatches) and with the settings
  Chapter 6 chose on validation, and the training time mfkit needs to reach Surprise's test RMSE (mfkit's test RMSE
  is recorded after each epoch for this benchmark only; nothing is chosen on it).

Threads: ``--threads`` (2) for both: torch's thread count for mfkit (the SGD loop runs on one thread by design, see
``mfkit.utils.cpu_threads``), ``num_threads`` for ``implicit`` with its BLAS limited to one thread (as ``implicit``
advises; ``threadpoolctl``). Surprise is single-threaded.

Usage::

    .venv/bin/python benchmarks/speed_vs_peers.py            # 1% and 10% shape, E1; writes the record
    .venv/bin/python benchmarks/speed_vs_peers.py --full     # also 100% of Netflix (memory: ~10 GB)
    .venv/bin/python benchmarks/speed_vs_peers.py --quick    # 1% only, one repetition, no record

Needs the benchmark extra: ``pip install -e .[bench]`` (``implicit``, ``scikit-surprise``); the book never does.
Prints one ``P1`` line per measure with ``ratio = mfkit / peer``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from _common import netflix_shaped, save_results

from mfkit.observed import observed_pairs
from mfkit.data import Interactions, load_movielens_100k, random_split
from mfkit.explicit import BiasedMF
from mfkit.implicit import WeightedMF, weighted_loss_gram
from mfkit.utils import setup

MODULES = ["mfkit/als.py", "mfkit/implicit.py", "mfkit/explicit.py", "mfkit/training.py"]
ALPHA, LAMBDA = 10.0, 10.0  # implicit's confidence of an observed cell and its λ: mfkit's w = 0.1, reg = 1.0
CHAPTER6 = dict(n_factors=50, lr=0.01, batch_size=1024, reg=0.1, n_epochs=25)  # Chapter 6's choice on validation
SURPRISE = dict(n_factors=100, n_epochs=20, lr_all=0.005, reg_all=0.02)  # Surprise's SVD defaults


def best_of(reps: int, fns: dict) -> dict:
    """Run every callable of ``fns`` ``reps`` times, interleaved; the best (smallest) of each returned value."""
    out = {}
    for _ in range(reps):
        for name, fn in fns.items():
            value = fn()
            out[name] = value if name not in out else {k: min(v, out[name][k]) if isinstance(v, float) else v
                                                          for k, v in value.items()}
    return out


def p1_record(model, measure, value, peer, baseline, target=None, notes="", **extra) -> dict:
    """One P1 record (CPU only: the machine line of the results page says which CPU); printed as one line."""
    ratio = value / baseline
    rec = {"protocol": "P1", "model": model, "chapter": extra.pop("chapter"), "measure": measure,
           "value": float(value), "peer": peer, "baseline": float(baseline), "ratio": float(ratio), **extra}
    if notes:
        rec["notes"] = notes
    if target is not None:
        rec["target"], rec["met"] = f"≤ {target:g}", "yes" if ratio <= target else "no"
    print(f"P1 {model}: {measure}{', ' + notes if notes else ''}: mfkit={value:.4g} {peer}={baseline:.4g} "
          f"ratio={ratio:.3g}"
          + ("" if target is None else f" (target ≤ {target:g}: {rec['met']})"), flush=True)
    return rec


# -- ALS against implicit ----------------------------------------------------------------------------------------------

def als_section(frac: float, args, records: list[dict]) -> None:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    n_users, nnz, k = int(480_189 * frac), int(100_480_507 * frac), args.factors
    data = netflix_shaped(n_users, 17_770, nnz, seed=0)
    user, item = observed_pairs(data)
    csr = sp.csr_matrix((np.full(len(user), ALPHA, dtype=np.float32), (user, item)), shape=(data.n_users, data.n_items))
    shape = f"{frac:g} Netflix ({data.n_users:,} x {data.n_items:,}, {len(user):,} interactions), k={k}"
    size, notes = f"{frac:.0%} of Netflix", f"{data.n_users:,} × {data.n_items:,}, {len(user):,} interactions, k = {k}"
    print(f"ALS {shape}, threads={args.threads}, w={1 / ALPHA:g}, reg={LAMBDA / ALPHA:g}", flush=True)
    params = dict(n_factors=k, unobserved_weight=1.0 / ALPHA, reg=LAMBDA / ALPHA, solver="als", cg_steps=3,
                  show_progress=False, device="cpu", random_state=0)
    gen = torch.Generator().manual_seed(0)  # mfkit's initial factors (WeightedMF._fit), handed to implicit too
    U0 = (torch.randn(data.n_users, k, generator=gen) * 0.1).numpy()
    V0 = (torch.randn(data.n_items, k, generator=gen) * 0.1).numpy()
    user_t, item_t = torch.from_numpy(user), torch.from_numpy(item)

    def objective(U, V) -> float:  # mean-reduced, as WeightedMF's history
        with torch.no_grad():
            return float(weighted_loss_gram(torch.as_tensor(U), torch.as_tensor(V), user_t, item_t, 1.0 / ALPHA,
                                            LAMBDA / ALPHA, chunk_size=2 ** 22 // k))

    def run_mfkit(method, sweeps):
        def run():
            model = WeightedMF(als_method=method, n_epochs=sweeps, **params)
            t0 = time.perf_counter()
            model.fit(data)
            wall = time.perf_counter() - t0
            return {"sweep_s": float(model.history_.records[0]["seconds"]), "fit_s": wall,
                    "loss": objective(model.user_factors_, model.item_factors_)}
        return run

    def run_implicit(sweeps):
        def run():
            model = AlternatingLeastSquares(factors=k, regularization=LAMBDA, alpha=1.0, use_cg=True,
                                            iterations=sweeps, calculate_training_loss=False,
                                            num_threads=args.threads, random_state=0)
            model.cg_steps = 3  # its default, set here to say it is the same as mfkit's
            model.user_factors, model.item_factors = U0.copy(), V0.copy()
            per_sweep = []
            with threadpool_limits(1, "blas"):
                t0 = time.perf_counter()
                model.fit(csr, show_progress=False, callback=lambda it, elapsed, loss: per_sweep.append(elapsed))
                wall = time.perf_counter() - t0
            return {"sweep_s": float(per_sweep[0]), "fit_s": wall,
                    "loss": objective(model.user_factors, model.item_factors)}
        return run

    for sweeps in (1, args.sweeps):
        res = best_of(args.reps, {"cg": run_mfkit("cg", sweeps), "implicit": run_implicit(sweeps)})
        methods = ["cg"]
        if sweeps == 1 or frac <= args.cholesky_frac:  # the exact solver: k times the work, one repetition
            res.update(best_of(1, {"cholesky": run_mfkit("cholesky", sweeps)}))
            methods.append("cholesky")
        peer = f"implicit {_version('implicit')} (CG)"
        for method in methods:
            name = f"weighted MF, ALS ({'CG' if method == 'cg' else 'Cholesky'})"
            extra = dict(chapter="02_weighted_mf", shape=shape, threads=args.threads, sweeps=sweeps)
            if sweeps == 1:
                records.append(p1_record(name, f"one sweep (s), {size}", res[method]["sweep_s"], peer,
                                         res["implicit"]["sweep_s"],
                                         1.0 if method == "cg" and frac == 0.1 else None, notes, **extra))
            else:
                records.append(p1_record(name, f"fit, {sweeps} sweeps, setup and mfkit's loss included (s), {size}",
                                         res[method]["fit_s"], peer, res["implicit"]["fit_s"], notes=notes, **extra))
                records.append(p1_record(name, f"objective after {sweeps} sweeps, {size}",
                                         res[method]["loss"], peer, res["implicit"]["loss"], notes=notes, **extra))
        if sweeps == 1:
            biased_section(data, res, size, shape, notes, args, records)


def biased_section(data, weighted: dict, size: str, shape: str, notes: str, args, records: list[dict]) -> None:
    """One biased-MF ALS sweep per solver against weighted MF's sweep with the same solver (``weighted``)."""
    rng = np.random.default_rng(0)
    rated = Interactions(data.user, data.item, rng.integers(1, 6, len(data)).astype(np.float32), data.user_ids,
                         data.item_ids, name="netflix-shaped, rated")

    def run(method):
        def sweep():
            model = BiasedMF(n_factors=args.factors, reg=0.05, n_epochs=1, method="als", als_method=method,
                             cg_steps=3, device="cpu", show_progress=False, random_state=0).fit(rated)
            return {"sweep_s": float(model.history_.records[0]["seconds"])}
        return sweep

    res = best_of(args.reps, {method: run(method) for method in ("cg", "cholesky")})
    for method, label in (("cg", "CG"), ("cholesky", "Cholesky")):
        records.append(p1_record(f"biased MF, ALS ({label})", f"one sweep (s), {size}", res[method]["sweep_s"],
                                 f"mfkit weighted MF, ALS ({label})", weighted[method]["sweep_s"], notes=notes,
                                 chapter="05_explicit_mf", shape=shape, threads=args.threads, sweeps=1))


# -- SGD against Surprise ----------------------------------------------------------------------------------------------

def sgd_section(args, records: list[dict]) -> None:
    from surprise import SVD, Dataset, Reader

    data = load_movielens_100k()
    train, test = random_split(data, 0.2, 0)
    frame = pd.DataFrame({"u": train.user, "i": train.item, "r": train.rating})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    test_rows = list(zip(test.user.tolist(), test.item.tolist(), test.rating.tolist()))
    peer = f"Surprise {_version('surprise')} SVD"

    def run_surprise():
        algo = SVD(random_state=0, **SURPRISE)
        t0 = time.perf_counter()
        algo.fit(trainset)
        fit_s = time.perf_counter() - t0
        pred = np.array([p.est for p in algo.test(test_rows)])  # clipped to the rating scale, as mfkit's
        return {"fit_s": fit_s, "rmse": float(np.sqrt(np.mean((pred - test.rating) ** 2)))}

    def run_mfkit(settings):
        def run():
            # valid=test: the test RMSE after every epoch, for this benchmark's "time to reach" only; the epochs
            # and settings were chosen on validation (Chapter 6), and the fitted model is not used afterwards
            model = BiasedMF(method="sgd", device="cpu", show_progress=False, random_state=0, **settings)
            model.fit(train, test)
            h = model.history_  # seconds: training time, the per-epoch test RMSE excluded
            return {"train_s": float(h.records[-1]["seconds"]), "rmse": float(h.records[-1]["metric"]),
                    "curve": [(float(r["seconds"]), float(r["metric"])) for r in h.records]}
        return run

    same = dict(n_factors=SURPRISE["n_factors"], n_epochs=SURPRISE["n_epochs"], lr=SURPRISE["lr_all"],
                reg=SURPRISE["reg_all"], batch_size=args.sgd_batch)
    res = best_of(args.reps, {"surprise": run_surprise, "same": run_mfkit(same), "chapter6": run_mfkit(CHAPTER6)})
    s = res["surprise"]
    print(f"SGD E1 seed 0: Surprise SVD defaults fit {s['fit_s']:.3f} s, test RMSE {s['rmse']:.4f}", flush=True)
    for key, label, settings in (("same", f"biased MF, SGD (Surprise's settings, batch {args.sgd_batch})", same),
                                 ("chapter6", "biased MF, SGD (Chapter 6's settings)", CHAPTER6)):
        m = res[key]
        extra = dict(chapter="06_svd_sgd", settings=settings, curve=m["curve"])
        records.append(p1_record(label, "fit (s), E1 seed 0", m["train_s"], peer, s["fit_s"], **extra))
        records.append(p1_record(label, "test RMSE, E1 seed 0", m["rmse"], peer, s["rmse"], **extra))
        reach = next((t for t, rmse in m["curve"] if rmse <= s["rmse"]), None)
        if reach is None:
            print(f"P1 {label}: never reaches Surprise's test RMSE {s['rmse']:.4f} in {len(m['curve'])} epochs")
        else:
            records.append(p1_record(label, "training time to reach Surprise's test RMSE (s), E1 seed 0", reach,
                                     peer, s["fit_s"], 1.0 if key == "chapter6" else None, **extra))


def _version(module: str) -> str:
    from importlib.metadata import version
    return version({"surprise": "scikit-surprise"}.get(module, module))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--sweeps", type=int, default=15, help="ALS sweeps of the full fits")
    parser.add_argument("--reps", type=int, default=3, help="repetitions, interleaved; the best is kept")
    parser.add_argument("--fracs", type=float, nargs="+", default=[0.01, 0.1])
    parser.add_argument("--full", action="store_true", help="also 100%% of Netflix's users and interactions")
    parser.add_argument("--cholesky-frac", type=float, default=0.01,
                        help="full fits with mfkit's exact (Cholesky) solver up to this share of Netflix")
    parser.add_argument("--sgd-batch", type=int, default=256, help="mfkit's minibatch with Surprise's settings")
    parser.add_argument("--skip-als", action="store_true")
    parser.add_argument("--skip-sgd", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1%% only, one repetition, nothing saved")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.fracs, args.reps, args.sweeps = [0.01], 1, 3
    setup(seed=0, device="cpu", threads=args.threads)
    load = os.getloadavg()
    print(f"P1 threads={args.threads} cores={os.cpu_count()} load average at start: {load[0]:.2f}", flush=True)
    records: list[dict] = []
    if not args.skip_als:
        for frac in [*args.fracs, *([1.0] if args.full else [])]:
            als_section(frac, args, records)
    if not args.skip_sgd:
        sgd_section(args, records)
    print(f"P1 load average at end: {os.getloadavg()[0]:.2f}")
    if not (args.no_save or args.quick or args.skip_als or args.skip_sgd):
        command = "python benchmarks/speed_vs_peers.py " + " ".join(argv if argv is not None else sys.argv[1:])
        save_results("speed_vs_peers", records, MODULES, command.strip(),
                     extra={"load_average": [load[0], os.getloadavg()[0]]})
    return records


if __name__ == "__main__":
    main()
