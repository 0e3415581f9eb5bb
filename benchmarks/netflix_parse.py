"""Benchmark N1: Netflix Prize format throughput (see book/how_we_measure.ipynb, N1).

Writes a combined_data file with N ratings (10M by default) with mfkit's generator into a temporary folder, then
measures, each in a fresh subprocess so that the generation does not pollute the memory figures:

* mfkit's chunked numpy parser on the whole file: seconds per million ratings (wall and CPU) and peak resident
  memory (the child's own high-water mark, VmHWM), extrapolated to the full Netflix data (100,480,507 ratings: the
  output arrays grow by 11 bytes per rating, the chunk buffers do not grow);
* the seed notebook's approach, ``re.match`` on every line building Python lists, on a slice of the same file (500k
  ratings by default), with mfkit's parser on the same slice (their arrays are asserted equal);
* the cached reload of :func:`mfkit.data.load_netflix` (.npz written by a first load, then read back; warm page
  cache), extrapolated linearly to 100M ratings.

Usage (from the repository root)::

    .venv/bin/python benchmarks/netflix_parse.py               # 10M ratings
    .venv/bin/python benchmarks/netflix_parse.py --quick       # 1M ratings, 100k regex slice: a smoke run
    .venv/bin/python benchmarks/netflix_parse.py --n-ratings 100480507   # the full size

The last line is ``N1 s_per_million=<x> regex_s_per_million=<x> peak_gb_full=<x> reload_100m_s=<x>``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# This process imports neither mfkit nor torch until the end: the children it starts would otherwise begin with its
# memory high-water mark (Linux carries ru_maxrss across fork and exec), and the generation runs in a child too.

FULL_RATINGS = 100_480_507
FULL_USERS = 480_189
FULL_MOVIES = 17_770
BYTES_PER_RATING = 4 + 2 + 1 + 4  # user int32, movie int16, rating int8, date int32

# The seed notebook's parser: one re.match per line, Python lists, converted at the end.
REGEX_PARSER = r'''
import re
import numpy as np

def parse_regex(path):
    users, movies, ratings, dates = [], [], [], []
    movie = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            m = re.match(r"^(\d+):$", line)
            if m:
                movie = int(m.group(1))
                continue
            m = re.match(r"^(\d+),(\d+),(\d{4}-\d{2}-\d{2})$", line)
            users.append(int(m.group(1)))
            movies.append(movie)
            ratings.append(int(m.group(2)))
            dates.append(m.group(3))
    return (np.array(users, dtype=np.int32), np.array(movies, dtype=np.int16), np.array(ratings, dtype=np.int8),
            np.array(dates, dtype="datetime64[D]").astype(np.int32))
'''

# Child processes print one JSON line. Peak memory is VmHWM from /proc/self/status: the high-water mark of this
# process's own address space (ru_maxrss would include the parent's at fork time).
PEAK = r'''
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
'''

CHILD_GENERATE = r'''
import json, sys, time
from mfkit.data.synthetic import simulate_netflix, write_netflix_files
folder, n_users, n_movies, n_ratings, seed = sys.argv[1], *map(int, sys.argv[2:])
t = time.perf_counter()
truth = simulate_netflix(n_users=n_users, n_movies=n_movies, ratings_per_user=n_ratings / n_users, seed=seed)
files = write_netflix_files(folder, truth, n_files=1)
print(json.dumps({"n": len(truth.ratings), "files": [str(f) for f in files], "seconds": time.perf_counter() - t,
                  "bytes": sum(f.stat().st_size for f in files)}))
'''

CHILD_MFKIT = PEAK + r'''
import json, sys, time
import numpy as np
from mfkit.data import parse_combined_data
t, c = time.perf_counter(), time.process_time()
r = parse_combined_data(sys.argv[1:], show_progress=False)
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"wall": wall, "cpu": cpu, "n": len(r), "maxrss_kb": peak_kb()}))
'''

CHILD_BASELINE = PEAK + r'''
import json
import numpy as np
import mfkit.data
print(json.dumps({"maxrss_kb": peak_kb()}))
'''

CHILD_COMPARE = PEAK + REGEX_PARSER + r'''
import json, sys, time
from mfkit.data import parse_combined_data
path = sys.argv[1]
t, c = time.perf_counter(), time.process_time()
arrays = parse_regex(path)
regex_wall, regex_cpu = time.perf_counter() - t, time.process_time() - c
best = None
for _ in range(3):  # best of three: the slice is small and the machine may be shared
    t, c = time.perf_counter(), time.process_time()
    r = parse_combined_data(path, show_progress=False)
    run = (time.perf_counter() - t, time.process_time() - c)
    best = run if best is None or run[0] < best[0] else best
same = all(np.array_equal(a, b) for a, b in zip(arrays, (r.user, r.movie, r.rating, r.date)))
print(json.dumps({"regex_wall": regex_wall, "regex_cpu": regex_cpu, "mfkit_wall": best[0], "mfkit_cpu": best[1],
                  "n": len(r), "same": same, "maxrss_kb": peak_kb()}))
'''

CHILD_RELOAD = r'''
import json, sys, time
from mfkit.data import load_netflix
folder, cache = sys.argv[1], sys.argv[2]
t = time.perf_counter()
first = load_netflix(folder, cache_dir=cache, show_progress=False)
build = time.perf_counter() - t
best = None
for _ in range(3):
    t, c = time.perf_counter(), time.process_time()
    again = load_netflix(folder, cache_dir=cache, show_progress=False)
    run = (time.perf_counter() - t, time.process_time() - c)
    best = run if best is None or run[0] < best[0] else best
same = bool((first.user == again.user).all() and (first.rating == again.rating).all())
print(json.dumps({"build": build, "reload": best[0], "reload_cpu": best[1], "n": len(again), "same": same}))
'''


def run_child(code: str, *args: str) -> dict:
    env = dict(os.environ, MFKIT_PROGRESS="0")  # mfkit is installed (make install): the children import it
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_slice(src: Path, dst: Path, n_ratings: int) -> None:
    """The first lines of ``src`` holding about ``n_ratings`` ratings (whole lines, starting with a header)."""
    with open(src, "rb") as f:
        head = f.read(n_ratings * 24)
    lines = head.split(b"\n")[:-1]
    dst.write_bytes(b"\n".join(lines[:n_ratings]) + b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-ratings", type=int, default=10_000_000, help="ratings in the generated file")
    ap.add_argument("--regex-ratings", type=int, default=500_000, help="size of the slice the regex parser reads")
    ap.add_argument("--quick", action="store_true", help="1M ratings and a 100k slice: a smoke run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="where to write the generated files (default: the system temp dir)")
    args = ap.parse_args()
    if args.quick:
        args.n_ratings, args.regex_ratings = 1_000_000, 100_000
    # Netflix proportions: 209 ratings per user, 17,770 movies (fewer for small runs so that density stays sane).
    ratings_per_user = FULL_RATINGS / FULL_USERS
    n_users = max(1000, int(round(args.n_ratings / ratings_per_user)))
    n_movies = min(FULL_MOVIES, max(100, n_users // 2))
    print(f"N1: {args.n_ratings:,} ratings ({n_users:,} users, {n_movies:,} movies), seed={args.seed}")

    with tempfile.TemporaryDirectory(prefix="mfkit-n1-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        data = tmp / "netflix"
        gen = run_child(CHILD_GENERATE, str(data), str(n_users), str(n_movies), str(args.n_ratings), str(args.seed))
        n, size, files = gen["n"], gen["bytes"], [Path(f) for f in gen["files"]]
        print(f"generated {n:,} ratings, {size / 1e6:.0f} MB of text, in {gen['seconds']:.1f} s", flush=True)

        # 1) mfkit on the whole file, peak memory of the parsing process alone
        base = run_child(CHILD_BASELINE)
        full = run_child(CHILD_MFKIT, *map(str, files))
        assert full["n"] == n, (full["n"], n)
        peak_gb = full["maxrss_kb"] * 1024 / 1e9
        base_gb = base["maxrss_kb"] * 1024 / 1e9
        peak_full_gb = peak_gb + (FULL_RATINGS - n) * BYTES_PER_RATING / 1e9
        s_per_m = full["wall"] / n * 1e6
        cpu_per_m = full["cpu"] / n * 1e6

        # 2) the seed's regex per line against mfkit on the same slice
        sl = tmp / "slice.txt"
        write_slice(files[0], sl, args.regex_ratings)
        cmp = run_child(CHILD_COMPARE, str(sl))
        assert cmp["same"], "the regex parser and mfkit's parser disagree on the slice"
        regex_per_m = cmp["regex_wall"] / cmp["n"] * 1e6
        slice_per_m = cmp["mfkit_wall"] / cmp["n"] * 1e6

        # 3) cached reload
        rel = run_child(CHILD_RELOAD, str(data), str(tmp / "cache"))
        assert rel["same"] and rel["n"] == n
        reload_100m = rel["reload"] * FULL_RATINGS / n

    print(f"import-only child (python + numpy + mfkit): {base_gb:.3f} GB RSS")
    print(f"mfkit parse, whole file: {full['wall']:.2f} s wall ({s_per_m:.3f} s per million; CPU {cpu_per_m:.3f} s "
          f"per million), {n / full['wall'] / 1e6:.2f} M ratings/s, peak RSS {peak_gb:.3f} GB")
    print(f"  extrapolated to the full Netflix ({FULL_RATINGS:,} ratings): {s_per_m * FULL_RATINGS / 1e6:.1f} s, "
          f"peak {peak_full_gb:.2f} GB (+{BYTES_PER_RATING} bytes per extra rating)")
    print(f"slice of {cmp['n']:,} ratings: regex per line {regex_per_m:.3f} s per million (CPU "
          f"{cmp['regex_cpu'] / cmp['n'] * 1e6:.3f}), mfkit {slice_per_m:.3f} s per million: "
          f"{regex_per_m / slice_per_m:.1f}x faster; identical arrays: {cmp['same']}")
    print(f"cache: first load (parse + index + save) {rel['build']:.2f} s, reload {rel['reload']:.3f} s (CPU "
          f"{rel['reload_cpu']:.3f} s) for {n:,} ratings; extrapolated to 100M: {reload_100m:.2f} s")
    print("(wall-clock figures on a busy machine exceed the CPU ones; on an idle machine they are close)")
    print("targets: <= 0.25 s per million, peak <= 2.5 GB (full), reload of 100M <= 2 s")

    common = {"protocol": "N1", "n_ratings": n, "seed": args.seed, "file_mb": round(size / 1e6, 1)}
    records = [
        dict(common, model="mfkit chunked numpy parser", chapter="01_data_preparation", s_per_million=s_per_m,
             peak_rss_gb=peak_gb, reload_s=rel["reload"], cpu_s_per_million=cpu_per_m, ratings_per_s=n / full["wall"],
             peak_rss_gb_full=peak_full_gb, import_only_gb=base_gb, cache_build_s=rel["build"],
             reload_100m_s=reload_100m, full_netflix_s=s_per_m * FULL_RATINGS / 1e6,
             notes=f"full Netflix extrapolated: {s_per_m * FULL_RATINGS / 1e6:.0f} s, {peak_full_gb:.2f} GB peak, "
                   f"reload {reload_100m:.1f} s"),
        dict(common, model="seed: re.match per line (slice)", chapter=None, s_per_million=regex_per_m,
             peak_rss_gb=cmp["maxrss_kb"] * 1024 / 1e9, n_ratings=cmp["n"], cpu_s_per_million=cmp["regex_cpu"] /
             cmp["n"] * 1e6, mfkit_same_slice_s_per_million=slice_per_m,
             notes=f"slice of {cmp['n']:,} ratings of the same file"),
    ]
    if args.quick:
        print("(--quick: results not saved)")
    else:
        from _common import save_results  # only now: see the note on imports at the top

        save_results("netflix_parse", records,
                     modules=["mfkit/data"],
                     command=f"python benchmarks/netflix_parse.py --n-ratings {args.n_ratings} "
                             f"--regex-ratings {args.regex_ratings}")
    print(f"N1 s_per_million={s_per_m:.3f} regex_s_per_million={regex_per_m:.3f} peak_gb_full={peak_full_gb:.2f} "
          f"reload_100m_s={reload_100m:.2f}")


if __name__ == "__main__":
    main()
