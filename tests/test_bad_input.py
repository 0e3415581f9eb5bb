"""The bad-input census of issue 11: a few hundred generated inputs to every reader, ``Interactions``, the splits and
the metrics, each either read exactly or refused with a clear error; none returns wrong data silently.

Run ``python tests/test_bad_input.py`` to print the table (``--per-kind N`` for more generated files per kind);
``pytest tests/test_bad_input.py`` asserts that no case returns wrong data silently or fails unclearly.

A case's oracle is either the independent reference reader of ``tests/_reference.py`` (for generated and corrupted
files: mfkit must return what it returns, or raise where it refuses) or a hand-written expectation (for arguments).
Outcomes:

* ``exact``: mfkit returned exactly what the oracle expects;
* ``clear error``: the oracle refuses, and mfkit raised a ValueError (or KeyError, TypeError, OSError) whose
  message names the file and line (files) or the offending argument or value (arguments);
* ``wrong, silently``: mfkit returned something the oracle refuses, or something different from it;
* ``unclear error``: mfkit raised where the oracle accepts, or raised an error that names neither file/line nor the
  offending value.
"""
from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _reference when run as a script
import _reference as ref  # noqa: E402

from mfkit.data import (Interactions, leave_k_out, load_movielens_csv, load_netflix, parse_combined_data,  # noqa: E402
                        probe_split, random_split, read_grouplens_100k, read_movie_titles, read_probe,
                        read_qualifying, read_recbole_100k, stratified_item_split)
from mfkit.metrics import mae, ranking_metrics, rmse, top_k_items  # noqa: E402

OUTCOMES = ("exact", "clear error", "wrong, silently", "unclear error")
FIRST_DAY, LAST_DAY = -62091, 83585


def _short(value) -> str:
    try:
        return repr(value)[:150]
    except Exception as e:  # noqa: BLE001 - a repr that fails is itself a finding
        return f"<an object whose repr raises {type(e).__name__}>"


class Census:
    def __init__(self):
        self.counts: dict[str, Counter] = {}
        self.problems: list[str] = []

    def add(self, category: str, outcome: str, detail: str = "") -> None:
        self.counts.setdefault(category, Counter())[outcome] += 1
        if outcome in ("wrong, silently", "unclear error"):
            self.problems.append(f"{category}: {outcome}: {detail}")

    def file_case(self, category, read_mfkit, read_reference, path: Path, same) -> None:
        """Oracle: the reference reader of the same bytes."""
        try:
            expected = read_reference()
        except ref.Refused as refused:
            try:
                got = read_mfkit()
            except (ValueError, OSError) as e:
                msg = str(e)
                named = str(path) in msg and (refused.line is None or re.search(r"line \d+", msg))
                self.add(category, "clear error" if named else "unclear error", msg[:200])
                return
            except Exception as e:  # noqa: BLE001 - any other exception is an unclear error
                self.add(category, "unclear error", f"{type(e).__name__}: {e}"[:200])
                return
            self.add(category, "wrong, silently", f"returned {_short(got)} for a file the reference refuses "
                                                  f"({refused})")
            return
        try:
            got = read_mfkit()
        except Exception as e:  # noqa: BLE001
            self.add(category, "unclear error", f"refused a valid file: {type(e).__name__}: {e}"[:200])
            return
        try:
            same(got, expected)
        except AssertionError as e:
            self.add(category, "wrong, silently", f"different data: {e}"[:200])
            return
        self.add(category, "exact")

    def arg_case(self, category, call, expect_error: str | None, check=None) -> None:
        """Oracle: a hand-written expectation. ``expect_error``: a regex the message must match (None: must pass);
        ``check(result)`` asserts a passing result is exactly right."""
        try:
            result = call()
        except (ValueError, KeyError, TypeError, OSError) as e:
            if expect_error is not None and re.search(expect_error, str(e)):
                self.add(category, "clear error")
            else:
                self.add(category, "unclear error", f"{type(e).__name__}: {e}"[:200])
            return
        except Exception as e:  # noqa: BLE001
            self.add(category, "unclear error", f"{type(e).__name__}: {e}"[:200])
            return
        if expect_error is not None:
            self.add(category, "wrong, silently", f"returned {_short(result)}, expected an error /{expect_error}/")
            return
        try:
            if check is not None:
                check(result)
        except AssertionError as e:
            self.add(category, "wrong, silently", f"wrong result: {e}"[:200])
            return
        self.add(category, "exact")

    def table(self) -> str:
        rows = [("input cases", "tried", *OUTCOMES)]
        total = Counter()
        for cat, c in self.counts.items():
            rows.append((cat, sum(c.values()), *(c[o] for o in OUTCOMES)))
            total.update(c)
        rows.append(("total", sum(total.values()), *(total[o] for o in OUTCOMES)))
        widths = [max(len(str(r[j])) for r in rows) for j in range(len(rows[0]))]
        lines = ["| " + " | ".join(str(v).ljust(w) if j == 0 else str(v).rjust(w)
                                   for j, (v, w) in enumerate(zip(r, widths))) + " |" for r in rows]
        lines.insert(1, "|" + "|".join(("-" * (w + 1) + ":") if j else "-" * (w + 2)
                                      for j, w in enumerate(widths)) + "|")
        return "\n".join(lines)


# -- generated files ---------------------------------------------------------------------------------------------------
def random_blocks(rng, kind):
    blocks = {}
    for movie in rng.choice(40_000, rng.integers(1, 5), replace=False) + 1:
        users = rng.choice(99_999_999, rng.integers(1, 6), replace=False) + 1
        blocks[int(movie)] = [(int(u), int(rng.integers(1, 6)), int(rng.integers(FIRST_DAY, LAST_DAY + 1)))
                              for u in users]
    return blocks


def same_netflix(got, expected):
    for k, v in expected.items():
        np.testing.assert_array_equal(np.asarray(got[k], np.int64), v, err_msg=k)
    assert len(got["user"]) == len(expected["user"])


def mfkit_netflix(path, kind, chunk):
    if kind == "combined":
        r = parse_combined_data(path, show_progress=False, chunk_bytes=chunk)
        return {"movie": r.movie, "user": r.user, "rating": r.rating, "date": r.date}
    df = (read_probe if kind == "probe" else read_qualifying)(path, chunk_bytes=chunk)
    return {c: df[c].to_numpy() for c in df.columns}


def mfkit_titles(path):
    t = read_movie_titles(path)
    return {int(m): (None if pd.isna(y) else int(y), title) for m, y, title in zip(t.index, t["year"], t["title"])}


LAYOUTS = ref.RATING_LAYOUTS


def mfkit_ratings(folder, layout):
    reader = {"u.data": read_grouplens_100k, "ratings.csv": load_movielens_csv,
              "ml-100k.inter": read_recbole_100k}[layout]
    f = reader(folder).to_frame()
    return list(zip(f["user"].tolist(), f["item"].tolist(), f["rating"].tolist(), f["timestamp"].tolist()))


def random_rating_rows(rng, layout):
    n = int(rng.integers(1, 10))
    pairs = rng.choice(10**6, n, replace=False)
    ratings = [0.5, 1, 1.5, 2, 3, 3.5, 4, 4.5, 5] if layout == "ratings.csv" else [1, 2, 3, 4, 5]
    return [(int(p) // 1000, int(p) % 1000, rng.choice(ratings), int(rng.integers(0, 2 * 10**9))) for p in pairs]


def write_ratings(rows, layout):
    _, sep, header, _ = LAYOUTS[layout]
    return "".join(f"{line}\n" for line in ([header] if header else []) + [sep.join(map(str, r)) for r in rows]
                   ).encode()


def file_cases(census: Census, tmp: Path, per_kind: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for kind in ("combined", "probe", "qualifying"):
        path = tmp / f"{kind}.txt"
        for j in range(per_kind):
            blocks = random_blocks(rng, kind)
            data = ref.write_netflix(blocks, kind, newline=str(rng.choice(["\n", "\r\n"])),
                                     final_newline=bool(rng.integers(2)))
            category = f"Netflix {kind}: valid" if j % 4 == 0 else f"Netflix {kind}: corrupted"
            if j % 4:
                data = ref.corrupt(data, ref.MUTATIONS[j % len(ref.MUTATIONS)], rng)
            path.write_bytes(data)
            chunk = int(rng.choice([3, 16, 1 << 20]))
            census.file_case(category, lambda: mfkit_netflix(path, kind, chunk),
                             lambda: ref.read_netflix(data, kind), path, same_netflix)
    path = tmp / "movie_titles.csv"
    for j in range(per_kind):
        titles = {int(m): (None if rng.random() < 0.2 else int(rng.integers(1890, 2010)),
                           "".join(rng.choice(list("abc, Éé:()x0"), rng.integers(0, 10))))
                  for m in rng.choice(10**6, rng.integers(1, 6), replace=False) + 1}
        data = "".join(f"{m},{'NULL' if y is None else y},{t}\n" for m, (y, t) in titles.items()).encode("latin-1")
        category = "Netflix movie_titles.csv: valid" if j % 4 == 0 else "Netflix movie_titles.csv: corrupted"
        if j % 4:
            data = ref.corrupt(data, ref.MUTATIONS[j % len(ref.MUTATIONS)], rng)
        path.write_bytes(data)
        census.file_case(category, lambda: mfkit_titles(path), lambda: ref.read_titles(data), path,
                         lambda got, exp: _assert_equal(got, exp))
    for layout, (name, *_rest) in LAYOUTS.items():
        folder = tmp / layout
        folder.mkdir(exist_ok=True)
        path = folder / name
        for j in range(per_kind):
            data = write_ratings(random_rating_rows(rng, layout), layout)
            category = f"MovieLens {layout}: valid" if j % 4 == 0 else f"MovieLens {layout}: corrupted"
            if j % 4:
                data = ref.corrupt(data, ref.MUTATIONS[j % len(ref.MUTATIONS)], rng)
            path.write_bytes(data)
            census.file_case(category, lambda: mfkit_ratings(folder, layout),
                             lambda: ref.read_ratings(data, layout), path, lambda got, exp: _assert_equal(got, exp))


def _assert_equal(got, expected):
    assert got == expected, f"{got!r:.100} != {expected!r:.100}"


# -- the issue's own examples and their kind ---------------------------------------------------------------------------
def scenario_cases(census: Census, tmp: Path) -> None:
    cat = "named scenarios (issue 11)"
    small = "1:\n6,3,2005-09-06\n10,5,2004-12-31\n2:\n1488844,1,1999-11-11\n"
    nf = tmp / "nf"
    nf.mkdir()
    (nf / "combined_data_1.txt").write_text(small)
    (nf / "combined_data_1 (1).txt").write_text(small)
    census.arg_case(cat, lambda: load_netflix(nf, cache=False, show_progress=False), None,
                    lambda d: _assert_equal(len(d), 3))  # the duplicate download is not a fifth file
    a, b = tmp / "a", tmp / "b"
    for folder, text in ((a, small), (b, small.replace(",3,", ",4,"))):
        folder.mkdir()
        (folder / "combined_data_1.txt").write_text(text)
        os.utime(folder / "combined_data_1.txt", ns=(10**18, 10**18))
    load_netflix(a, cache_dir=tmp / "cache", show_progress=False)
    census.arg_case(cat, lambda: load_netflix(b, cache_dir=tmp / "cache", show_progress=False), None,
                    lambda d: _assert_equal(int(d.rating[0]), 4))  # not the other folder's cache
    (tmp / "header_only.txt").write_text("1:\n")
    census.arg_case(cat, lambda: parse_combined_data(tmp / "header_only.txt", show_progress=False),
                    r"header_only.txt, line 1: expected at least one")
    census.arg_case(cat, lambda: parse_combined_data(tmp, show_progress=False), "is a directory")
    census.arg_case(cat, lambda: read_probe(tmp), "is a directory")
    gl = tmp / "gl"
    gl.mkdir()
    (gl / "u.data").write_text("196\t242\t3\t881250949\t0\n186\t302\t3\t891717742\t0\n")
    census.arg_case(cat, lambda: read_grouplens_100k(gl), r"u.data, line 1: expected 4 fields")
    (gl / "u.data").write_text("\n \n\n")
    census.arg_case(cat, lambda: read_grouplens_100k(gl), r"u.data: expected at least one data line")
    ml = tmp / "ml"
    ml.mkdir()
    (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    census.arg_case(cat, lambda: load_movielens_csv(ml), r"ratings.csv: expected at least one data line")
    (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,9\n1,3,4.5,9\n")
    (ml / "movies.csv").write_text("movieId,title,genres\n1,A (1995),x\n3,B (1996),y\n1,C (1997),z\n")
    census.arg_case(cat, lambda: load_movielens_csv(ml), r"movies.csv, line 4: expected each movieId once")
    empty = Interactions.from_raw([], [])
    census.arg_case(cat, lambda: (repr(empty), empty.stats(), empty.density), None,
                    lambda r: _assert_equal((r[0], r[2]), ("Interactions(empty: 0 implicit, 0 users × 0 items)", 0.0)))
    census.arg_case(cat, lambda: Interactions.from_raw([1, np.nan], [1, 2]), r"users\[1\] is nan")
    census.arg_case(cat, lambda: Interactions.from_raw([1, 2], [1, 2], [4, np.nan]), r"ratings\[1\] is nan")
    census.arg_case(cat, lambda: Interactions.from_raw([1, 1], [2, 2], [4, 5]).to_csr(), r"user 1, item 2")
    data = Interactions.from_raw(np.arange(40) // 4, np.arange(40) % 10, np.ones(40))
    census.arg_case(cat, lambda: leave_k_out(data, k=1.5), "k must be an integer >= 1, got 1.5")
    census.arg_case(cat, lambda: random_split(data, 0.001), "test_frac=0.001 leaves the test part empty")
    train, test = stratified_item_split(data, 0.75, seed=0)
    other = Interactions.from_raw(np.arange(40) // 4 + 100, np.arange(40) % 10, np.ones(40))
    census.arg_case(cat, lambda: ranking_metrics(lambda u: torch.zeros(len(u), 10), train, other, device="cpu"),
                    "different user_ids")
    scores = torch.rand(10, 10)
    scores[:, :2] = float("nan")
    census.arg_case(cat, lambda: ranking_metrics(lambda u: scores[u], train, test, device="cpu"), "non-finite score")


# -- generated arguments -----------------------------------------------------------------------------------------------
def argument_cases(census: Census, per_kind: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    cat = "Interactions.from_raw"
    for j in range(per_kind):
        n = int(rng.integers(2, 30))
        users = rng.integers(0, 6, n).astype(np.float64)
        items = rng.integers(0, 6, n).astype(np.float64)
        ratings = rng.integers(1, 6, n).astype(np.float64)
        stamps = rng.integers(0, 100, n).astype(np.float64)
        bad_what, pos = ["users", "items", "ratings", "timestamps", None][j % 5], int(rng.integers(n))
        bad_value = [np.nan, np.inf, -np.inf, 0.5][j % 4]
        if bad_what is not None:
            column = {"users": users, "items": items, "ratings": ratings, "timestamps": stamps}[bad_what]
            if bad_what in ("users", "items") and bad_value == 0.5:
                bad_value = np.nan  # a fractional raw id is a valid (float) id
            if bad_what == "ratings" and bad_value == 0.5:
                bad_value = np.nan
            column[pos] = bad_value
        frame = pd.DataFrame({"u": users, "i": items})
        dups = frame.duplicated().any()
        how = str(rng.choice(["raise", "first", "last", "mean", "sum"]))
        if bad_what is not None:
            expect = rf"{bad_what}\[{pos}\] is"
        elif dups and how == "raise":
            expect = r"repeat a \(user, item\) pair"
        else:
            expect = None

        def check(d, users=users, items=items, ratings=ratings, how=how):
            f = pd.DataFrame({"user": users, "item": items, "rating": ratings.astype(np.float32)})
            if how in ("first", "last", "raise"):
                f = f.drop_duplicates(["user", "item"], keep="first" if how == "raise" else how)
            else:
                f = getattr(f.groupby(["user", "item"], sort=False)["rating"], how)().reset_index()
            got = d.to_frame()
            assert list(zip(got["user"], got["item"])) == list(zip(f["user"], f["item"]))
            np.testing.assert_allclose(got["rating"], f["rating"].astype(np.float32), rtol=1e-6)

        census.arg_case(cat, lambda users=users, items=items, ratings=ratings, stamps=stamps, how=how:
                        Interactions.from_raw(users, items, ratings, stamps, duplicates=how), expect, check)

    cat = "splits: arguments"
    for j in range(per_kind):
        n_rows = int(rng.integers(1, 40))
        cells = rng.choice(100, n_rows, replace=False)
        data = Interactions.from_raw(cells // 10, cells % 10, rng.integers(1, 6, n_rows),
                                     timestamps=rng.integers(0, 9, n_rows))
        split = j % 3
        if split == 0:
            frac = float(rng.choice([0.0, 1.0, -0.2, np.nan, 1e-4, 0.9999, rng.random()]))
            n_test = round(frac * n_rows) if 0 < frac < 1 else -1
            ok = n_rows >= 2 and 0 < n_test < n_rows
            census.arg_case(cat, lambda data=data, frac=frac: random_split(data, frac, seed=0),
                            None if ok else "test_frac|cannot split",
                            lambda r, data=data, n_test=n_test: _check_partition(data, r, n_test=n_test))
        elif split == 1:
            frac = float(rng.choice([0.0, 1.0, np.nan, 0.01, 0.99, rng.random()]))
            counts = data.item_counts()
            n_train = int(np.round(frac * counts).sum()) if 0 < frac < 1 else -1
            ok = n_rows >= 2 and 0 < n_train < n_rows
            census.arg_case(cat, lambda data=data, frac=frac: stratified_item_split(data, frac, seed=0),
                            None if ok else "train_frac|cannot split",
                            lambda r, data=data: _check_partition(data, r))
        else:
            k = [1, 2, 0, -1, 1.5, True, np.int64(2), 2.0][j % 8]
            min_train = int(rng.integers(0, 3))
            counts = data.user_counts()
            valid_k = isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1
            eligible = counts >= (k + min_train) if valid_k else counts < 0
            ok = n_rows >= 2 and valid_k and eligible.any() and not (eligible & (counts == k)).all()
            expect = None if ok else ("cannot split" if n_rows < 2 else "k must be an integer" if not valid_k
                                      else "holds")
            census.arg_case(cat, lambda data=data, k=k, min_train=min_train: leave_k_out(data, k, 0,
                                                                                        min_train=min_train),
                            expect, lambda r, data=data: _check_partition(data, r))

    cat = "metrics: arguments"
    for j in range(per_kind):
        n = int(rng.integers(1, 20))
        pred, target = rng.random(n) * 5, rng.random(n) * 5
        kind = j % 4
        if kind == 0:
            pred[int(rng.integers(n))] = [np.nan, np.inf, -np.inf][j % 3]
            expect = r"pred\[\d+\] = "
        elif kind == 1:
            target[int(rng.integers(n))] = np.nan
            expect = r"target\[\d+\] = nan"
        elif kind == 2:
            target = target[:-1]
            expect = "one shape"
        else:
            expect = None
        fn = (rmse, mae)[j % 2]
        ref_value = (math.sqrt(np.mean((pred - target) ** 2)) if fn is rmse else np.mean(np.abs(pred - target))) \
            if expect is None else None
        census.arg_case(cat, lambda fn=fn, pred=pred, target=target: fn(pred, target), expect,
                        lambda v, ref_value=ref_value: _assert_close(v, ref_value))

    cat = "ranking metrics: scores and arguments"
    data = Interactions.from_raw(np.arange(60) // 6, np.arange(60) % 12, np.ones(60))
    train, test = stratified_item_split(data, 0.75, seed=0)
    scored = np.unique(test.user)  # the users ranking_metrics scores: those with test rows
    for j in range(per_kind):
        scores = torch.rand(10, 12)
        kind = j % 5
        k, nonfinite, expect = 5, "raise", None
        if kind == 0:
            scores[int(rng.choice(scored)), int(rng.integers(12))] = [float("nan"), float("inf"),
                                                                      -float("inf")][j % 3]
            expect = "non-finite score"
        elif kind == 1:
            scores[int(rng.choice(scored)), int(rng.integers(12))] = float("nan")
            nonfinite = "last"
        elif kind == 2:
            k = [0, 2.5, -1, True][j % 4]
            expect = "k must be an integer"
        elif kind == 3:
            scores = scores[:, :11]
            expect = r"scores for a batch|\(\d+, 12\) scores"
        census.arg_case(cat, lambda scores=scores, k=k, nonfinite=nonfinite: ranking_metrics(
            lambda u: scores[u], train, test, k=k, device="cpu", nonfinite=nonfinite), expect,
            lambda m, scores=scores, nonfinite=nonfinite: _check_ranking(m, scores, train, test, 5))
        if kind == 4:  # top_k_items on users outside the data
            census.arg_case(cat, lambda scores=scores: top_k_items(lambda u: scores[u], train, [3, 10], k=2,
                                                                   device="cpu"), "user index 10 is outside")


def _assert_close(v, expected):
    assert abs(v - expected) <= 1e-9 * max(1.0, abs(expected)), (v, expected)


def _check_partition(data, parts, n_test=None):
    train, test = parts
    assert len(train) > 0 and len(test) > 0 and len(train) + len(test) == len(data)
    key = lambda p: sorted(zip(p.user_ids[p.user].tolist(), p.item_ids[p.item].tolist()))  # noqa: E731
    assert sorted(key(train) + key(test)) == key(data)
    if n_test is not None:
        assert len(test) == n_test


def _check_ranking(m, scores, train, test, k):
    """Per user: NaN ranked after every finite score, the train items excluded; precision against a sort."""
    s = scores.clone().double()
    s[~torch.isfinite(s)] = -1e300
    seen = train.to_csr("ones").toarray() > 0
    rel = test.to_csr("ones").toarray() > 0
    users = np.flatnonzero(rel.any(1))
    precisions = []
    for u in users:
        order = [i for i in np.argsort(-s[u].numpy(), kind="stable") if not seen[u, i]][:k]
        precisions.append(rel[u, order].sum() / k)
    assert abs(m["precision"] - float(np.mean(precisions))) < 1e-9, (m["precision"], np.mean(precisions))


def run_census(per_kind: int = 24) -> Census:
    census = Census()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        file_cases(census, tmp, per_kind)
        scenario_cases(census, tmp)
        argument_cases(census, per_kind)
    return census


def test_nothing_wrong_goes_through_silently():
    census = run_census(per_kind=24)
    assert not census.problems, "\n".join(census.problems[:20])
    assert sum(sum(c.values()) for c in census.counts.values()) >= 250


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=24, help="generated cases per kind (default 24)")
    args = parser.parse_args()
    result = run_census(args.per_kind)
    print(result.table())
    for line in result.problems[:40]:
        print(line)
