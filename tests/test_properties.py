"""Property-based tests (Hypothesis) of the readers and splits (issue 11: nothing wrong goes through silently).

* Round trips: generated data written in each format (by ``tests/_reference.py``'s writers, and by mfkit's own
  Netflix generator) read back identical.
* Corruptions: a random corruption of a valid file (a byte flipped, deleted or inserted; a line deleted, repeated or
  moved; a truncation) must read exactly as the independent reference reader of ``tests/_reference.py`` reads it,
  or, where the reference refuses it, raise a ValueError naming the file and a line. Never different data.
* Splits: disjoint parts whose union is the input, fractions and per-user/per-item rules honoured, or a ValueError
  exactly when a part would be empty.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import _reference as ref
from mfkit.data import (Interactions, generate_netflix_sample, leave_k_out, load_movielens_csv, parse_combined_data,
                        probe_split, random_split, read_grouplens_100k, read_movie_titles, read_probe,
                        read_qualifying, stratified_item_split)

# Locally the examples are drawn afresh each run (to keep finding new cases); in CI (CI=true) they are derived from
# each test's name, so a CI run is repeatable. No .hypothesis/ database folder is kept.
settings.register_profile("mfkit", database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=os.environ.get("CI", "").lower() in ("1", "true", "yes"))
settings.load_profile("mfkit")
FAST = settings(max_examples=60)
FIRST_DAY, LAST_DAY = -62091, 83585  # 1800-01-01 and 2199-12-31, the parser's date range
_TMP = Path(tempfile.mkdtemp(prefix="mfkit-properties-"))


# -- reading a file with mfkit and with the reference ------------------------------------------------------------------
def mfkit_netflix(path: Path, kind: str, chunk_bytes: int) -> dict:
    if kind == "combined":
        r = parse_combined_data(path, show_progress=False, chunk_bytes=chunk_bytes)
        return {"movie": r.movie, "user": r.user, "rating": r.rating, "date": r.date}
    if kind == "probe":
        df = read_probe(path, chunk_bytes=chunk_bytes)
    else:
        df = read_qualifying(path, chunk_bytes=chunk_bytes)
    return {c: df[c].to_numpy() for c in df.columns}


def mfkit_titles(path: Path) -> dict:
    t = read_movie_titles(path)
    return {int(m): (None if pd.isna(y) else int(y), title) for m, y, title in zip(t.index, t["year"], t["title"])}


def mfkit_ratings(folder: Path, layout: str) -> list[tuple]:
    d = read_grouplens_100k(folder) if layout == "u.data" else load_movielens_csv(folder)
    f = d.to_frame()
    return list(zip(f["user"].tolist(), f["item"].tolist(), f["rating"].tolist(), f["timestamp"].tolist()))


LAYOUTS = {name: ref.RATING_LAYOUTS[name] for name in ("u.data", "ratings.csv")}


def check_same(read_mfkit, read_reference, path: Path, compare) -> str:
    """Read with both; returns "pass" (identical) or "error" (both refuse, mfkit naming file and line)."""
    try:
        expected = read_reference()
    except ref.Refused as refused:
        with pytest.raises(ValueError) as e:
            read_mfkit()
        msg = str(e.value)
        assert str(path) in msg, msg
        if refused.line is not None:
            assert re.search(r"line \d+", msg), msg
        return "error"
    compare(read_mfkit(), expected)
    return "pass"


def same_netflix(got: dict, expected: dict) -> None:
    for k, v in expected.items():
        np.testing.assert_array_equal(np.asarray(got[k], dtype=np.int64), v, err_msg=k)
    assert len(got["user"]) == len(expected["user"])


def same_rows(got, expected) -> None:
    assert got == expected


# -- strategies --------------------------------------------------------------------------------------------------------
def netflix_blocks(max_movies=4, max_rows=6):
    row = st.tuples(st.integers(1, 99_999_999), st.integers(1, 5), st.integers(FIRST_DAY, LAST_DAY))
    rows = st.lists(row, min_size=1, max_size=max_rows, unique_by=lambda r: r[0])
    return st.dictionaries(st.integers(1, 40_000), rows, min_size=1, max_size=max_movies)


def expected_netflix(blocks: dict, kind: str) -> dict:
    movie = [m for m, rows in blocks.items() for _ in rows]
    out = {"movie": np.asarray(movie, np.int64),
           "user": np.asarray([r[0] for rows in blocks.values() for r in rows], np.int64)}
    if kind == "combined":
        out["rating"] = np.asarray([r[1] for rows in blocks.values() for r in rows], np.int64)
    if kind != "probe":
        out["date"] = np.asarray([r[2] for rows in blocks.values() for r in rows], np.int64)
    return out


ratings_rows = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from([1, 2, 3, 4, 5]),
                                  st.integers(0, 2 * 10**9)), min_size=1, max_size=12,
                        unique_by=lambda r: (r[0], r[1]))


def write_ratings(rows, layout: str, newline: str = "\n") -> bytes:
    _, sep, header, _ = LAYOUTS[layout]
    lines = ([header] if header else []) + [sep.join(map(str, r)) for r in rows]
    return (newline.join(lines) + newline).encode()


titles = st.dictionaries(
    st.integers(1, 10**6),
    st.tuples(st.one_of(st.none(), st.integers(1890, 2010)),
              st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f\x85"),
                      max_size=12)),
    min_size=1, max_size=6)


def write_titles(t: dict) -> bytes:
    return "".join(f"{m},{'NULL' if y is None else y},{title}\n" for m, (y, title) in t.items()).encode("latin-1")


# -- round trips -------------------------------------------------------------------------------------------------------
@FAST
@given(blocks=netflix_blocks(), kind=st.sampled_from(["combined", "probe", "qualifying"]),
       newline=st.sampled_from(["\n", "\r\n"]), final=st.booleans(), chunk=st.sampled_from([1, 5, 64, 1 << 20]))
def test_netflix_round_trip(blocks, kind, newline, final, chunk):
    path = _TMP / f"{kind}.txt"
    path.write_bytes(ref.write_netflix(blocks, kind, newline, final))
    same_netflix(mfkit_netflix(path, kind, chunk), expected_netflix(blocks, kind))


@settings(max_examples=4)
@given(n_users=st.integers(10, 40), n_movies=st.integers(3, 20), seed=st.integers(0, 2**16))
def test_generator_round_trip(n_users, n_movies, seed):
    """mfkit's own writer: the generated files parse back to exactly the ratings it drew."""
    folder = _TMP / "generated"
    n_ratings = min(1.3 * max(n_users, n_movies), 0.5 * n_users * n_movies)
    truth = generate_netflix_sample(folder, n_users=n_users, n_movies=n_movies, n_factors=2,
                                    ratings_per_user=n_ratings / n_users, seed=seed)
    r = parse_combined_data(truth.files, show_progress=False)
    for k in ("user", "movie", "rating", "date"):
        np.testing.assert_array_equal(getattr(r, k), getattr(truth.ratings, k))
    probe = read_probe(folder / "probe.txt") if len(truth.probe) else None
    if probe is not None:
        pd.testing.assert_frame_equal(probe, truth.probe.astype({"movie": np.int32, "user": np.int32}),
                                      check_dtype=False)


@FAST
@given(t=titles, newline=st.sampled_from(["\n", "\r\n"]))
def test_titles_round_trip(t, newline):
    assume(all("\r" not in title and "\n" not in title for _, title in t.values()))
    path = _TMP / "movie_titles.csv"
    data = write_titles(t)
    path.write_bytes(data.replace(b"\n", newline.encode()))
    assert mfkit_titles(path) == t


@FAST
@given(rows=ratings_rows, layout=st.sampled_from(list(LAYOUTS)), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_ratings_round_trip(rows, layout, newline):
    folder = _TMP / f"rt-{layout}"
    folder.mkdir(exist_ok=True)
    (folder / LAYOUTS[layout][0]).write_bytes(write_ratings(rows, layout, newline))
    assert mfkit_ratings(folder, layout) == [(u, i, float(r), t) for u, i, r, t in rows]


# -- corruptions -------------------------------------------------------------------------------------------------------
@settings(max_examples=150)
@given(blocks=netflix_blocks(), kind=st.sampled_from(["combined", "probe", "qualifying"]),
       mutation=st.sampled_from(ref.MUTATIONS), seed=st.integers(0, 2**32 - 1),
       chunk=st.sampled_from([3, 16, 1 << 20]))
def test_netflix_corruption_reads_right_or_fails_clearly(blocks, kind, mutation, seed, chunk):
    data = ref.corrupt(ref.write_netflix(blocks, kind), mutation, np.random.default_rng(seed))
    path = _TMP / f"corrupt-{kind}.txt"
    path.write_bytes(data)
    check_same(lambda: mfkit_netflix(path, kind, chunk), lambda: ref.read_netflix(data, kind), path, same_netflix)


@settings(max_examples=80)
@given(t=titles, mutation=st.sampled_from(ref.MUTATIONS), seed=st.integers(0, 2**32 - 1))
def test_titles_corruption_reads_right_or_fails_clearly(t, mutation, seed):
    assume(all("\r" not in title and "\n" not in title for _, title in t.values()))
    data = ref.corrupt(write_titles(t), mutation, np.random.default_rng(seed))
    path = _TMP / "movie_titles.csv"
    path.write_bytes(data)
    check_same(lambda: mfkit_titles(path), lambda: ref.read_titles(data), path, same_rows)


@settings(max_examples=120)
@given(rows=ratings_rows, layout=st.sampled_from(list(LAYOUTS)), mutation=st.sampled_from(ref.MUTATIONS),
       seed=st.integers(0, 2**32 - 1))
def test_ratings_corruption_reads_right_or_fails_clearly(rows, layout, mutation, seed):
    data = ref.corrupt(write_ratings(rows, layout), mutation, np.random.default_rng(seed))
    folder = _TMP / f"corrupt-{layout}"
    folder.mkdir(exist_ok=True)
    path = folder / LAYOUTS[layout][0]
    path.write_bytes(data)
    check_same(lambda: mfkit_ratings(folder, layout), lambda: ref.read_ratings(data, layout), path, same_rows)


# -- splits ------------------------------------------------------------------------------------------------------------
@st.composite
def interactions(draw, min_size=1):
    n_users, n_items = draw(st.integers(1, 12)), draw(st.integers(min_size, 12))
    cells = draw(st.lists(st.integers(0, n_users * n_items - 1), min_size=min_size, max_size=n_users * n_items,
                          unique=True))
    cells = np.asarray(cells, dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return Interactions.from_raw(cells // n_items * 10 + 3, cells % n_items * 7 + 1,
                                 rng.integers(1, 6, len(cells)), timestamps=rng.integers(0, 50, len(cells)))


def rows_of(part: Interactions) -> list:
    f = part.to_frame()
    return sorted(zip(f["user"], f["item"], f["rating"], f["timestamp"]))


def assert_partition(data, train, test):
    assert train.user_ids is data.user_ids and test.item_ids is data.item_ids  # one index space
    assert len(train) > 0 and len(test) > 0
    assert sorted(rows_of(train) + rows_of(test)) == rows_of(data)  # disjoint, union = input (pairs are unique)


@FAST
@given(data=interactions(), frac=st.floats(0.0, 1.0), seed=st.integers(0, 100))
def test_random_split_invariants(data, frac, seed):
    n_test = round(frac * len(data)) if 0 < frac < 1 else None
    if n_test is None or n_test in (0, len(data)):
        with pytest.raises(ValueError, match="test_frac|cannot split"):
            random_split(data, frac, seed)
        return
    train, test = random_split(data, frac, seed)
    assert_partition(data, train, test)
    assert len(test) == n_test


@FAST
@given(data=interactions(), frac=st.floats(0.01, 0.99), seed=st.integers(0, 100))
def test_stratified_item_split_invariants(data, frac, seed):
    counts = data.item_counts()
    n_train = np.round(frac * counts).astype(int)
    if n_train.sum() in (0, len(data)):
        with pytest.raises(ValueError, match="train_frac|cannot split"):
            stratified_item_split(data, frac, seed)
        return
    train, test = stratified_item_split(data, frac, seed)
    assert_partition(data, train, test)
    np.testing.assert_array_equal(train.item_counts(), n_train)


@FAST
@given(data=interactions(), k=st.integers(1, 4), min_train=st.integers(0, 3), by_time=st.booleans(),
       seed=st.integers(0, 100))
def test_leave_k_out_invariants(data, k, min_train, by_time, seed):
    counts = data.user_counts()
    eligible = counts >= k + min_train
    if not eligible.any() or (eligible & (counts == k)).all():  # an empty test or train part
        with pytest.raises(ValueError):
            leave_k_out(data, k, seed, by_time, min_train)
        return
    train, test = leave_k_out(data, k, seed, by_time, min_train)
    assert_partition(data, train, test)
    np.testing.assert_array_equal(test.user_counts(), np.where(eligible, k, 0))
    if by_time:  # every held-out rating is at least as late as the user's latest train rating
        latest = pd.Series(train.timestamp).groupby(train.user).max()
        held = pd.Series(test.timestamp, index=test.user)
        assert (held >= latest.reindex(held.index).fillna(-1).to_numpy()).all()


@FAST
@given(data=interactions(min_size=2), share=st.floats(0.0, 1.0), seed=st.integers(0, 100))
def test_probe_split_invariants(data, share, seed):
    f = data.to_frame()
    n_probe = int(share * len(f))
    probe = f.sample(n_probe, random_state=seed)
    if n_probe in (0, len(f)):
        with pytest.raises(ValueError):
            probe_split(data, probe["user"].to_numpy(), probe["item"].to_numpy())
        return
    train, test = probe_split(data, probe["user"].to_numpy(), probe["item"].to_numpy())
    assert_partition(data, train, test)
    assert sorted(zip(test.user_ids[test.user], test.item_ids[test.item])) == sorted(zip(probe["user"],
                                                                                       probe["item"]))


@FAST
@given(users=st.lists(st.integers(0, 4), min_size=0, max_size=15), data=st.data(),
       how=st.sampled_from(["raise", "first", "last", "mean", "sum"]))
def test_from_raw_duplicates(users, data, how):
    items = data.draw(st.lists(st.integers(0, 3), min_size=len(users), max_size=len(users)))
    ratings = data.draw(st.lists(st.integers(1, 5), min_size=len(users), max_size=len(users)))
    frame = pd.DataFrame({"user": users, "item": items, "rating": np.asarray(ratings, np.float32)})
    has_dups = frame.duplicated(["user", "item"]).any()
    if how == "raise" and has_dups:
        with pytest.raises(ValueError, match="repeat a"):
            Interactions.from_raw(users, items, ratings)
        return
    d = Interactions.from_raw(users, items, ratings, duplicates=how)
    if how in ("first", "last"):
        expected = frame.drop_duplicates(["user", "item"], keep=how)
    else:
        g = frame.groupby(["user", "item"], sort=False)["rating"]
        expected = (g.sum() if how in ("sum", "raise") else g.mean()).reset_index()
    got = d.to_frame()
    assert list(zip(got["user"], got["item"])) == list(zip(expected["user"], expected["item"]))
    np.testing.assert_allclose(got["rating"], expected["rating"].astype(np.float32), rtol=1e-6)
    assert d.duplicates() == 0
