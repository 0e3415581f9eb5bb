"""When to go distributed: one implicit ALS fit of Spark MLlib (``local[2]``) and of mfkit on the same data.

The data: Netflix-shaped implicit matrices (all 17,770 items; 1% and 10% of Netflix's 480,189 users and 100,480,507
ratings; log-normal user activity, Zipf-like item popularity: ``_common.netflix_shaped``).
Both engines fit the same objective (Spark's ``implicitPrefs`` ALS with ``alpha``/``regParam`` and mfkit's
``WeightedMF(solver="als")`` with the mapped ``unobserved_weight``/``reg``/``reg_scaling="count"``,
``mfkit.spark.to_mfkit_params``), same rank and sweeps, on two CPU cores each: Spark ``local[2]``, torch with two
threads. Spark's time is its ``ALS.fit`` (the DataFrame already built from numpy through Arrow, factors not yet
collected); mfkit's is ``WeightedMF.fit``. The Spark session's start-up is timed separately.

Run from the repository root (a few minutes; Java 17+ and pyspark needed, see ``make java``)::

    nice .venv/bin/python benchmarks/spark_vs_mfkit.py

mfkit is timed twice: with exact per-row solves (``als_method="cholesky"``, the same algorithm as Spark's) and with
its default for large data, three conjugate-gradient steps per row (``als_method="cg"``).

Prints one line per size: ``SPARK size=<frac> users=<n> nnz=<n> spark_fit_s=<x> mfkit_fit_s=<x> ...`` and saves
``benchmarks/results/spark_vs_mfkit.json`` (protocol P1 records: ``value`` = mfkit, ``baseline`` = Spark,
``ratio`` = mfkit / Spark, below 1 when mfkit is faster), read by Chapter 8 and the results page.
"""
from __future__ import annotations

import argparse

import torch

from _common import NETFLIX_ITEMS, NETFLIX_RATINGS, NETFLIX_USERS, netflix_shaped, save_results, timed_fit

from mfkit.implicit import WeightedMF
from mfkit.spark import SparkALS, local_session, local_session_start_seconds, spark_als_loss, to_mfkit_params

MODULES = ["mfkit/spark.py", "mfkit/implicit.py"]
CHAPTER = "08_scaling"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.01, 0.1], help="fractions of Netflix's users")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=2.0)
    parser.add_argument("--reg", type=float, default=0.1, help="Spark's regParam")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/spark_vs_mfkit.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    spark = local_session(args.threads, driver_memory=args.driver_memory)
    start_s = local_session_start_seconds()
    print(f"SPARK session local[{args.threads}] started in {start_s:.1f} s", flush=True)
    mapped = to_mfkit_params(args.reg, args.alpha)
    peer = f"Spark {spark.version} ALS, local[{args.threads}]"
    records = [{"protocol": "P1", "model": "Spark session start", "chapter": CHAPTER,
                "measure": "Spark session start (s)", "value": start_s, "peer": "(Spark only)",
                "baseline": start_s, "ratio": 1.0}]
    runs = []
    for frac in args.sizes:
        data = netflix_shaped(int(NETFLIX_USERS * frac), NETFLIX_ITEMS, int(NETFLIX_RATINGS * frac), seed=0)
        common = dict(n_factors=args.factors, n_epochs=args.iters, device="cpu", show_progress=False)
        sp, sp_total = timed_fit(SparkALS(reg=args.reg, alpha=args.alpha, implicit_prefs=True, spark=spark,
                                          **common), data)
        sp_s = sp.fit_seconds_
        run = {"size": frac, "users": data.n_users, "items": data.n_items, "nnz": len(data),
               "spark_fit_s": sp_s, "spark_total_s": sp_total,
               "spark_loss": spark_als_loss(sp.user_factors_, sp.item_factors_, data, args.reg, True, args.alpha)}
        for method in ("cholesky", "cg"):
            mf, mf_s = timed_fit(WeightedMF(solver="als", als_method=method, **mapped, **common), data)
            loss = spark_als_loss(mf.user_factors_, mf.item_factors_, data, args.reg, True, args.alpha)
            run[f"mfkit_{method}_fit_s"], run[f"mfkit_{method}_loss"] = mf_s, loss
            print(f"SPARK size={frac:g} users={data.n_users} nnz={len(data)} spark_fit_s={sp_s:.2f} "
                  f"(with DataFrame and collect {sp_total:.2f}) mfkit_{method}_fit_s={mf_s:.2f} "
                  f"ratio mfkit/spark={mf_s / sp_s:.3f} loss mfkit/spark={loss / run['spark_loss']:.4f}",
                  flush=True)
            label = "CG" if method == "cg" else "Cholesky"
            records.append({"protocol": "P1", "model": f"weighted MF, ALS ({label})", "chapter": CHAPTER,
                            "measure": f"fit, k = {args.factors}, {args.iters} sweeps (s), {frac:.0%} of Netflix",
                            "value": mf_s, "peer": peer, "baseline": sp_s, "ratio": mf_s / sp_s,
                            "notes": f"{len(data):,} interactions; loss mfkit / Spark "
                                     f"{loss / run['spark_loss']:.4f}"})
            del mf
        runs.append(run)
        del sp, data
    extra = {"spark_vs_mfkit": {"threads": args.threads, "factors": args.factors, "iters": args.iters,
                                "alpha": args.alpha, "reg": args.reg, "mfkit_params": mapped,
                                "session_start_s": start_s, "driver_memory": args.driver_memory,
                                "runs": runs}}
    if not args.no_save:
        path = save_results("spark_vs_mfkit", records, MODULES, extra=extra)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
