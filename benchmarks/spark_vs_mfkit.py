"""When to go distributed: one implicit ALS fit by Spark MLlib (``local[2]`` and a standalone cluster of two one-core
workers) and by mfkit, on the same data.

The data: the generated Netflix data of Chapter 8 (``mfkit.data.synthetic.netflix_full_dir``: all 17,770 movies;
1% and 10% of Netflix's 480,189 users and 100,480,507 ratings), every rating taken as one interaction.
All engines fit the same objective (Spark's ``implicitPrefs`` ALS with ``alpha``/``regParam`` and mfkit's
``WeightedMF(solver="als")`` with the mapped ``unobserved_weight``/``reg``/``reg_scaling="count"``,
``mfkit.spark.to_mfkit_params``), same rank and sweeps, on two CPU cores each:

- Spark ``local[2]``: one JVM, two task threads, no shuffle over the network;
- Spark on a standalone cluster (``mfkit.spark_cluster``): a master and two workers of one core each on 127.0.0.1,
  one executor JVM per worker, so every half-sweep ships factor blocks between two processes (shuffle over loopback
  TCP); ``--worker-memory`` each;
- mfkit with two torch threads, exact per-row solves (``als_method="cholesky"``, Spark's algorithm) and its default
  for large data, three conjugate-gradient steps per row (``als_method="cg"``).

Spark's time is its ``ALS.fit`` (the DataFrame already built from numpy through Arrow, factors not yet collected);
mfkit's is ``WeightedMF.fit``. The Spark sessions' start-up (and the cluster's) is timed separately. Spark's
``numUserBlocks``/``numItemBlocks`` are the session's default parallelism (2 in both modes).

Run from the repository root (a few minutes; Java 17+ and pyspark needed, see ``make java``; the data are generated
into the cache on first use)::

    nice .venv/bin/python benchmarks/spark_vs_mfkit.py            # 1% and 10%: the record
    .venv/bin/python benchmarks/spark_vs_mfkit.py --quick         # 1% only, 2 sweeps, nothing saved: a check

Prints one line per engine and size and saves ``benchmarks/results/spark_vs_mfkit.json`` (protocol P1 records:
``value`` = mfkit, ``baseline`` = Spark, ``ratio`` = mfkit / Spark, below 1 when mfkit is faster), read by
Chapter 8 and the results page.
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import save_results, timed_fit

from mfkit.data import load_netflix
from mfkit.data.synthetic import netflix_full_dir
from mfkit.implicit import WeightedMF
from mfkit.spark import (SparkALS, cluster_session, executor_metrics, local_session, local_session_start_seconds,
                         spark_als_loss, stop_session, to_mfkit_params)
from mfkit.spark_cluster import StandaloneCluster

MODULES = ["mfkit/spark.py", "mfkit/spark_cluster.py", "mfkit/implicit.py", "mfkit/data"]
CHAPTER = "08_scaling"


def _spark_fits(spark, datasets, args, runs, engine):
    """Fit SparkALS on every dataset in ``spark``; store the times, losses and shuffle bytes in ``runs``."""
    for frac, data in datasets.items():
        before = executor_metrics(spark)
        sp, total = timed_fit(SparkALS(reg=args.reg, alpha=args.alpha, implicit_prefs=True, spark=spark,
                                       n_factors=args.factors, n_epochs=args.iters, device="cpu",
                                       show_progress=False, timeout=args.spark_timeout), data)
        after = executor_metrics(spark)
        run = runs[frac]
        run[f"{engine}_fit_s"], run[f"{engine}_total_s"] = sp.fit_seconds_, total
        run[f"{engine}_loss"] = spark_als_loss(sp.user_factors_, sp.item_factors_, data, args.reg, True, args.alpha)
        if len(after):  # executors (a cluster): what each ran and read from the shuffle during this fit
            cols = ["completed_tasks", "shuffle_read_bytes"]
            delta = (after.set_index("id")[cols] - before.set_index("id")[cols].reindex(after["id"]).fillna(0))
            run[f"{engine}_executors"] = int(len(after))
            run[f"{engine}_tasks"] = delta["completed_tasks"].astype(int).tolist()
            run[f"{engine}_shuffle_read_mb"] = (delta["shuffle_read_bytes"] / 1e6).round(1).tolist()
        print(f"SPARK {engine} size={frac:g} nnz={len(data)} fit_s={sp.fit_seconds_:.2f} (with DataFrame and "
              f"collect {total:.2f}) loss={run[f'{engine}_loss']:.6g}"
              + (f" shuffle read MB per executor {run[f'{engine}_shuffle_read_mb']}" if len(after) else ""),
              flush=True)
        del sp


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.01, 0.1],
                        help="fractions of Netflix (netflix_full_dir scales)")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=2.0)
    parser.add_argument("--reg", type=float, default=0.1, help="Spark's regParam")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--worker-memory", default="2g", help="memory of each cluster worker and its executor")
    parser.add_argument("--spark-timeout", type=float, default=1800.0, help="seconds a Spark fit may take")
    parser.add_argument("--quick", action="store_true", help="1%% only, 2 sweeps, nothing saved (a check)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/spark_vs_mfkit.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.iters, args.no_save = [0.01], 2, True

    torch.set_num_threads(args.threads)
    datasets = {}
    for frac in args.sizes:
        folder = netflix_full_dir(frac)
        datasets[frac] = load_netflix(folder, cache=False, show_progress=False)
    mapped = to_mfkit_params(args.reg, args.alpha)
    runs = {frac: {"size": frac, "users": d.n_users, "items": d.n_items, "nnz": len(d)} for frac, d in
            datasets.items()}

    # mfkit, two torch threads
    for frac, data in datasets.items():
        common = dict(n_factors=args.factors, n_epochs=args.iters, device="cpu", show_progress=False)
        for method in ("cholesky", "cg"):
            mf, mf_s = timed_fit(WeightedMF(solver="als", als_method=method, **mapped, **common), data)
            loss = spark_als_loss(mf.user_factors_, mf.item_factors_, data, args.reg, True, args.alpha)
            runs[frac][f"mfkit_{method}_fit_s"], runs[frac][f"mfkit_{method}_loss"] = mf_s, loss
            print(f"SPARK mfkit_{method} size={frac:g} nnz={len(data)} fit_s={mf_s:.2f} loss={loss:.6g}", flush=True)
            del mf

    # Spark local[2]: one JVM (this process's only SparkContext until it is stopped)
    spark = local_session(args.threads, driver_memory=args.driver_memory)
    local_start_s = local_session_start_seconds()
    version = spark.version
    print(f"SPARK session local[{args.threads}] started in {local_start_s:.1f} s", flush=True)
    _spark_fits(spark, datasets, args, runs, "spark")
    stop_session()

    # Spark on a standalone cluster: a master and two one-core workers on 127.0.0.1
    with StandaloneCluster(workers=2, cores=1, memory=args.worker_memory) as cluster:
        t0 = time.perf_counter()
        spark = cluster_session(cluster.master_url, executors=2, executor_cores=1,
                                executor_memory=args.worker_memory, driver_memory=args.driver_memory)
        cluster_session_s = time.perf_counter() - t0
        print(f"SPARK standalone cluster up in {cluster.start_seconds:.1f} s, session with 2 executors in "
              f"{cluster_session_s:.1f} s", flush=True)
        _spark_fits(spark, datasets, args, runs, "spark_cluster")
        cluster_start_s = cluster.start_seconds
        stop_session()

    peers = {"spark": f"Spark {version} ALS, local[{args.threads}]",
             "spark_cluster": f"Spark {version} ALS, standalone cluster 2 workers x 1 core"}
    records = [{"protocol": "P1", "model": "Spark session start", "chapter": CHAPTER,
                "measure": "Spark session start (s)", "value": local_start_s, "peer": "(Spark only)",
                "baseline": local_start_s, "ratio": 1.0},
               {"protocol": "P1", "model": "Spark standalone cluster start", "chapter": CHAPTER,
                "measure": "master + 2 workers, then a session with 2 executors (s)",
                "value": cluster_start_s + cluster_session_s, "peer": "(Spark only)",
                "baseline": cluster_start_s + cluster_session_s, "ratio": 1.0}]
    for frac, run in runs.items():
        for method, label in (("cholesky", "Cholesky"), ("cg", "CG")):
            mf_s, loss = run[f"mfkit_{method}_fit_s"], run[f"mfkit_{method}_loss"]
            for engine in ("spark", "spark_cluster"):
                sp_s = run[f"{engine}_fit_s"]
                print(f"SPARK size={frac:g} nnz={run['nnz']} {engine}_fit_s={sp_s:.2f} mfkit_{method}_fit_s="
                      f"{mf_s:.2f} ratio mfkit/spark={mf_s / sp_s:.3f} loss mfkit/spark="
                      f"{loss / run[f'{engine}_loss']:.4f}", flush=True)
                records.append({"protocol": "P1", "model": f"weighted MF, ALS ({label})", "chapter": CHAPTER,
                                "measure": f"fit, k = {args.factors}, {args.iters} sweeps (s), {frac:.0%} of "
                                           "Netflix",
                                "value": mf_s, "peer": peers[engine], "baseline": sp_s, "ratio": mf_s / sp_s,
                                "notes": f"{run['nnz']:,} interactions; loss mfkit / Spark "
                                         f"{loss / run[f'{engine}_loss']:.4f}"})
    extra = {"spark_vs_mfkit": {"threads": args.threads, "factors": args.factors, "iters": args.iters,
                                "alpha": args.alpha, "reg": args.reg, "mfkit_params": mapped,
                                "session_start_s": local_start_s, "driver_memory": args.driver_memory,
                                "cluster": {"workers": 2, "cores_per_worker": 1, "worker_memory": args.worker_memory,
                                            "executor_memory": args.worker_memory,
                                            "cluster_start_s": cluster_start_s,
                                            "session_start_s": cluster_session_s},
                                "data": "mfkit.data.synthetic.netflix_full_dir(size), every rating an interaction",
                                "runs": list(runs.values())}}
    if not args.no_save:
        path = save_results("spark_vs_mfkit", records, MODULES, extra=extra)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
