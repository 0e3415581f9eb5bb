"""Interactions, splits and the MovieLens readers (mfkit.data)."""
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

import mfkit.data.movielens as movielens
from mfkit.data import (DataFormatError, DataNotFoundError, Interactions, fetch_movielens_100k, leave_k_out,
                        load_movielens_100k, load_movielens_csv, probe_split, random_split, read_grouplens_100k,
                        read_recbole_100k, stratified_item_split, train_validation_split)


@pytest.fixture
def tiny():
    # raw ids deliberately sparse and unsorted: users 100, 7, 42; items 5, 900, 33
    users = [100, 7, 42, 7, 100, 42, 7]
    items = [5, 900, 5, 33, 33, 900, 5]
    ratings = [4, 3, 5, 1, 2, 4, 5]
    return Interactions.from_raw(users, items, ratings, timestamps=[10, 20, 30, 40, 50, 60, 70], name="tiny")


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    keys = rng.choice(n_users * n_items, 900, replace=False)
    return Interactions.from_raw(keys // n_items * 3 + 1000, keys % n_items * 7 + 1, rng.integers(1, 6, 900),
                                 timestamps=rng.integers(0, 10_000, 900))


# -- Interactions ------------------------------------------------------------------------------------------------------
def test_id_maps_both_directions(tiny):
    assert tiny.user_ids.tolist() == [7, 42, 100] and tiny.item_ids.tolist() == [5, 33, 900]
    assert tiny.n_users == 3 and tiny.n_items == 3 and len(tiny) == 7
    assert tiny.user_index([100, 7]).tolist() == [2, 0]
    assert tiny.item_index(900) == 2
    np.testing.assert_array_equal(tiny.user_ids[tiny.user], [100, 7, 42, 7, 100, 42, 7])
    np.testing.assert_array_equal(tiny.item_ids[tiny.item], [5, 900, 5, 33, 33, 900, 5])
    with pytest.raises(KeyError, match="unknown user"):
        tiny.user_index([8])
    with pytest.raises(KeyError, match="unknown item"):
        tiny.item_index([1000])


def test_from_raw_rejects_mismatched_columns():
    with pytest.raises(ValueError, match="one length"):
        Interactions.from_raw([1, 2], [3])


def test_to_csr(tiny):
    m = tiny.to_csr()
    assert m.shape == (3, 3) and m.nnz == 7
    assert m[tiny.user_index([100])[0], tiny.item_index([33])[0]] == 2
    assert m[tiny.user_index([7])[0], tiny.item_index([900])[0]] == 3
    ones = tiny.to_csr("ones")
    assert ones.sum() == 7 and set(np.unique(ones.data)) == {1.0}
    with pytest.raises(ValueError, match=r"repeat a \(user, item\) pair, e.g. user 1, item 2 at rows \[0, 1\]"):
        Interactions.from_raw([1, 1], [2, 2], [3, 4])
    dup = Interactions(np.array([0, 0]), np.array([0, 0]), np.array([3.0, 4.0]), np.array([1]), np.array([2]))
    assert dup.duplicates() == 1 and dup.to_csr("ones")[0, 0] == 1  # held once: 1, not 2
    with pytest.raises(ValueError, match="repeat a"):  # never summed into an out-of-scale rating
        dup.to_csr()
    with pytest.raises(ValueError, match="'rating' or 'ones'"):
        tiny.to_csr("stars")
    with pytest.raises(ValueError, match="no ratings"):
        Interactions.from_raw([1], [2]).to_csr()


def test_to_tensors(tiny, device):
    u, i, r = tiny.to_tensors(device)
    assert u.device.type == device.type and u.dtype == torch.int64 and r.dtype == torch.float32
    np.testing.assert_array_equal(u.cpu().numpy(), tiny.user)
    np.testing.assert_array_equal(i.cpu().numpy(), tiny.item)
    np.testing.assert_allclose(r.cpu().numpy(), tiny.rating)


def test_stats_and_frame(tiny):
    s = tiny.stats()
    assert s["interactions"] == 7 and s["users"] == 3 and s["items"] == 3
    assert s["density"] == pytest.approx(7 / 9)
    assert s["per user: max"] == 3 and s["per item: max"] == 3 and s["mean rating"] == pytest.approx(24 / 7)
    assert tiny.user_counts().tolist() == [3, 2, 2] and tiny.item_counts().tolist() == [3, 2, 2]
    df = tiny.to_frame()
    assert df["user"].tolist()[:2] == [100, 7] and df["rating"].tolist()[:2] == [4.0, 3.0]


def test_item_titles():
    items = pd.DataFrame({"title": ["A, the movie", "Amélie"]}, index=pd.Index([5, 33], name="item"))
    d = Interactions.from_raw([1, 2, 3], [5, 33, 900], item_meta=items)
    assert d.item_titles().tolist() == ["A, the movie", "Amélie", "900"]  # raw id where no title is known


# -- splits ------------------------------------------------------------------------------------------------------------
def row_keys(part):
    return set(zip(part.user_ids[part.user].tolist(), part.item_ids[part.item].tolist(), part.timestamp.tolist()))


def assert_partition(data, train, test):
    assert len(train) + len(test) == len(data)
    assert row_keys(train).isdisjoint(row_keys(test))
    assert row_keys(train) | row_keys(test) == row_keys(data)
    # both parts share the full data's id maps, so one model scores both
    assert train.n_users == test.n_users == data.n_users and train.n_items == data.n_items


def test_random_split(random_data):
    train, test = random_split(random_data, 0.2, seed=0)
    assert_partition(random_data, train, test)
    assert len(test) == round(0.2 * len(random_data))
    other = random_split(random_data, 0.2, seed=1)[1]
    assert row_keys(other) != row_keys(test)
    assert row_keys(random_split(random_data, 0.2, seed=0)[1]) == row_keys(test)  # seeded
    with pytest.raises(ValueError, match="test_frac"):
        random_split(random_data, 1.0)


def test_stratified_item_split(random_data):
    train, test = stratified_item_split(random_data, 0.75, seed=42)
    assert_partition(random_data, train, test)
    counts = random_data.item_counts()
    np.testing.assert_array_equal(train.item_counts(), np.round(0.75 * counts).astype(int))
    np.testing.assert_array_equal(test.item_counts(), counts - np.round(0.75 * counts).astype(int))


def test_leave_k_out(random_data):
    for k in (1, 2):
        train, test = leave_k_out(random_data, k=k, seed=0)
        assert_partition(random_data, train, test)
        counts = random_data.user_counts()
        eligible = counts >= k + 1
        np.testing.assert_array_equal(test.user_counts(), np.where(eligible, k, 0))
        np.testing.assert_array_equal(train.user_counts(), counts - np.where(eligible, k, 0))


def test_leave_one_out_by_time(random_data):
    train, test = leave_k_out(random_data, k=1, by_time=True, seed=0)
    last_train = pd.Series(train.timestamp).groupby(train.user).max()
    held = pd.Series(test.timestamp, index=test.user)
    assert (held >= last_train.reindex(held.index).to_numpy()).all()
    with pytest.raises(ValueError, match="timestamps"):
        leave_k_out(Interactions.from_raw([1, 1], [1, 2]), by_time=True)


def test_probe_split(random_data):
    frame = random_data.to_frame()
    probe = frame.sample(30, random_state=0)
    train, test = probe_split(random_data, probe["user"].to_numpy(), probe["item"].to_numpy())
    assert_partition(random_data, train, test)
    assert set(zip(test.user_ids[test.user], test.item_ids[test.item])) == set(zip(probe["user"], probe["item"]))
    missing_item = int(random_data.item_ids[0])
    have = set(zip(frame["user"], frame["item"]))
    user = next(u for u in random_data.user_ids if (u, missing_item) not in have)
    with pytest.raises(ValueError, match="not in the ratings"):
        probe_split(random_data, [user], [missing_item])


def test_train_validation_split(random_data):
    train, _ = random_split(random_data, 0.2, seed=0)
    fit, valid = train_validation_split(train, "E1", seed=0)
    assert_partition(train, fit, valid)
    with pytest.raises(ValueError, match="protocol"):
        train_validation_split(train, "X9")


# -- MovieLens readers -------------------------------------------------------------------------------------------------
U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t377\t5\t881250950\n"
U_ITEM = ("242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "302|L.A. Confidential (1997)|01-Jan-1997||http://y|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "377|Amélie, or not (2001)|01-Jan-2001||http://z|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")


def grouplens(tmp_path, data=U_DATA, item=U_ITEM):
    (tmp_path / "u.data").write_text(data)
    if item is not None:
        (tmp_path / "u.item").write_bytes(item.encode("latin-1"))
    return tmp_path


def test_read_grouplens(tmp_path):
    d = read_grouplens_100k(grouplens(tmp_path))
    assert len(d) == 4 and d.n_users == 3 and d.n_items == 3 and d.name == "ml-100k"
    assert d.rating.tolist() == [3, 3, 1, 5] and d.timestamp[0] == 881250949
    assert d.items.loc[377, "title"] == "Amélie, or not" and d.items.loc[377, "year"] == 2001
    assert d.item_titles(d.item_index([242])).tolist() == ["Kolya"]


def test_load_movielens_100k_from_folder(tmp_path, monkeypatch):
    folder = grouplens(tmp_path)
    assert len(load_movielens_100k(folder)) == 4
    monkeypatch.setenv("MFKIT_ML100K_DIR", str(folder))
    assert len(load_movielens_100k()) == 4
    with pytest.raises(DataNotFoundError, match="neither u.data"):
        load_movielens_100k(tmp_path / "..")


@pytest.mark.parametrize("data,line,expected", [
    ("196\t242\t3\t881250949\n186\t302\n", 2, "4 fields"),
    ("196\t242\t3\t881250949\n186\t302\t3\t1\t9\n", 2, "4 fields"),
    ("196\t242\t3\t881250949\n186\t302\tx\t891717742\n", 2, "a number in column 'rating'"),
    ("196\t242\t3\t881250949\n186\t302\t7\t891717742\n", 2, "a rating between 1 and 5"),
    ("196\t242\t3\t881250949\n\n186.5\t302\t3\t891717742\n", 3, "a whole number in column 'user'"),
    ("196\t242\t3\t881250949\t1\n186\t302\t3\t891717742\t1\n", 1, "4 fields"),  # 5 fields everywhere: not shifted
    ("196\t242\t3\t881250949\n196\t242\t4\t881250950\n", 2, "each (user, item) pair once (user 196, item 242 is "
                                                          "already on line 1)"),
    ("196\t242\t3\t881250949.5\n", 1, "a whole number in column 'timestamp'"),
    ("196\t242\tnan\t881250949\n", 1, "a number in column 'rating'"),
    ("99999999999999999999\t242\t3\t881250949\n", 1, "a whole number in column 'user'"),
    ("196\t242\t3\t881250949\r186\t302\t3\n", 2, "4 fields"),
])
def test_bad_grouplens(tmp_path, data, line, expected):
    grouplens(tmp_path, data, None)
    with pytest.raises(DataFormatError) as e:
        read_grouplens_100k(tmp_path)
    assert str(tmp_path / "u.data") in str(e.value) and f"line {line}:" in str(e.value) and expected in str(e.value)


def test_bad_grouplens_items(tmp_path):
    grouplens(tmp_path, item=U_ITEM + "999|Short line\n")
    with pytest.raises(DataFormatError, match=r"u.item, line 4: expected 24 '\|'-separated fields"):
        read_grouplens_100k(tmp_path)


def test_empty_ratings_file(tmp_path):
    grouplens(tmp_path, "", None)
    with pytest.raises(DataFormatError, match="empty file"):
        read_grouplens_100k(tmp_path)


INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy\n" \
       "302\tL.A. Confidential\tunknown\tCrime\n"


def test_read_recbole(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(INTER)
    (tmp_path / "ml-100k.item").write_text(ITEM)
    d = read_recbole_100k(tmp_path)
    assert len(d) == 2 and d.user_ids.tolist() == [186, 196]
    assert d.items.loc[242, "title"] == "Kolya" and d.items.loc[242, "year"] == 1996
    assert np.isnan(d.items.loc[302, "year"])
    assert len(load_movielens_100k(tmp_path)) == 2


@pytest.mark.parametrize("text,line,expected", [
    ("user\titem\trating\ttimestamp\n196\t242\t3\t1\n", 1, "the header"),
    (INTER + "186\t302\t6\t891717742\n", 4, "a rating between 1 and 5"),
    (INTER + "186\t302\n", 4, "4 fields"),
])
def test_bad_recbole(tmp_path, text, line, expected):
    (tmp_path / "ml-100k.inter").write_text(text)
    with pytest.raises(DataFormatError) as e:
        read_recbole_100k(tmp_path)
    assert "ml-100k.inter" in str(e.value) and f"line {line}:" in str(e.value) and expected in str(e.value)


RATINGS_CSV = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n6,3,0.5,845553522\n"
MOVIES_CSV = 'movieId,title,genres\n1,Toy Story (1995),Animation\n3,"American President, The (1995)",Comedy\n'


def test_load_movielens_csv(tmp_path):
    (tmp_path / "ratings.csv").write_text(RATINGS_CSV)
    (tmp_path / "movies.csv").write_text(MOVIES_CSV)
    d = load_movielens_csv(tmp_path)
    assert len(d) == 3 and d.rating.tolist() == [4.0, 4.5, 0.5]
    assert d.items.loc[3, "title"] == "American President, The" and d.items.loc[3, "year"] == 1995


@pytest.mark.parametrize("text,line,expected", [
    ("user,movie,rating,timestamp\n1,1,4.0,1\n", 1, "the header"),
    (RATINGS_CSV + "7,3,x,845553522\n", 5, "a number in column 'rating'"),
    (RATINGS_CSV + "7,3,5.5,845553522\n", 5, "a rating between 0.5 and 5"),
    (RATINGS_CSV + "7,3,4.0\n", 5, "4 comma-separated fields"),
    (RATINGS_CSV + "7,3,4.0,1,1\n", 5, "4 comma-separated fields"),
])
def test_bad_movielens_csv(tmp_path, text, line, expected):
    (tmp_path / "ratings.csv").write_text(text)
    with pytest.raises(DataFormatError) as e:
        load_movielens_csv(tmp_path)
    assert "ratings.csv" in str(e.value) and f"line {line}:" in str(e.value) and expected in str(e.value)


def test_load_movielens_csv_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="ratings.csv"):
        load_movielens_csv(tmp_path)


# -- fetching ML-100k --------------------------------------------------------------------------------------------------
def test_fetch_reports_pip_failure(tmp_path, monkeypatch):
    def failing_pip(cmd, **kwargs):
        assert "download" in cmd and movielens.RECBOLE_WHEEL in cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: Could not find a version\nno network")

    monkeypatch.setattr(movielens.subprocess, "run", failing_pip)
    with pytest.raises(DataNotFoundError) as e:
        fetch_movielens_100k(cache_dir=tmp_path)
    msg = str(e.value)
    assert "grouplens.org" in msg and "MFKIT_ML100K_DIR" in msg and "no network" in msg
    assert not (tmp_path / "ml-100k" / "ml-100k.inter").exists()


def test_fetch_reports_missing_pip(tmp_path, monkeypatch):
    def no_pip(cmd, **kwargs):
        raise OSError("No such file or directory: 'pip'")

    monkeypatch.setattr(movielens.subprocess, "run", no_pip)
    with pytest.raises(DataNotFoundError, match="pip failed: No such file"):
        fetch_movielens_100k(cache_dir=tmp_path)


def test_fetch_uses_the_cache(tmp_path, monkeypatch):
    target = tmp_path / "ml-100k"
    target.mkdir()
    (target / "ml-100k.inter").write_text(INTER)
    (target / "ml-100k.item").write_text(ITEM)
    monkeypatch.setattr(movielens.subprocess, "run", lambda *a, **k: pytest.fail("downloaded although cached"))
    assert fetch_movielens_100k(cache_dir=tmp_path) == target
    assert len(load_movielens_100k(cache_dir=tmp_path)) == 2


# -- bad input is refused, never passed on silently (issue 11) ---------------------------------------------------------
def test_empty_interactions_print_and_summarise():
    empty = Interactions.from_raw([], [], [], name="none")
    assert repr(empty) == "Interactions(none, empty: 0 ratings, 0 users × 0 items)"
    assert empty.density == 0.0 and empty.stats()["per user: median"] == 0.0 and len(empty) == 0
    part = Interactions.from_raw([1, 2], [3, 4]).subset(np.zeros(2, bool))
    assert "empty: 0 implicit, 2 users × 2 items" in repr(part)


@pytest.mark.parametrize("kwargs,match", [
    ({"users": [1, np.nan], "items": [1, 2]}, r"users\[1\] is nan"),
    ({"users": np.array([1, None], dtype=object), "items": [1, 2]}, r"users\[1\] is None"),
    ({"users": [1, 2], "items": [1, np.inf]}, r"items\[1\] is inf"),
    ({"users": [1, 2], "items": [1, 2], "ratings": [4, np.nan]}, r"ratings\[1\] is nan: expected a finite number"),
    ({"users": [1, 2], "items": [1, 2], "ratings": [4]}, "one entry per interaction"),
    ({"users": [1, 2], "items": [1, 2], "timestamps": [10, 10.5]}, r"timestamps\[1\] is 10.5: expected a whole"),
    ({"users": [1, 2], "items": [1, 2], "duplicates": "drop"}, "duplicates must be one of"),
    ({"users": [1, 2], "items": [5, 6], "item_meta": pd.DataFrame({"title": ["a", "b"]}, index=[5, 5])},
     "repeats item id 5"),
])
def test_from_raw_refuses_bad_columns(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Interactions.from_raw(**kwargs)


def test_duplicates_are_resolved_only_when_asked():
    users, items, ratings, times = [1, 1, 2, 1], [5, 5, 5, 6], [2, 4, 3, 5], [10, 30, 20, 40]
    with pytest.raises(ValueError, match=r"user 1, item 5 at rows \[0, 1\]"):
        Interactions.from_raw(users, items, ratings, times)
    for how, rating, time in [("first", 2, 10), ("last", 4, 30), ("mean", 3, 30), ("sum", 6, 30)]:
        d = Interactions.from_raw(users, items, ratings, times, duplicates=how)
        assert len(d) == 3 and d.duplicates() == 0
        assert d.to_frame().values.tolist()[0] == [1, 5, rating, time], how
        assert d.to_frame().values.tolist()[1:] == [[2, 5, 3, 20], [1, 6, 5, 40]]  # order kept
    with pytest.raises(ValueError, match="needs ratings"):
        Interactions.from_raw(users, items, duplicates="sum")


def test_direct_construction_is_checked():
    ok = dict(user=np.array([0, 1]), item=np.array([0, 0]), rating=None, user_ids=np.array([5, 9]),
              item_ids=np.array([3]))
    Interactions(**ok)
    with pytest.raises(ValueError, match=r"user\[1\] = 2 is outside 0..1"):
        Interactions(**{**ok, "user": np.array([0, 2])})
    with pytest.raises(ValueError, match="sorted and distinct"):
        Interactions(**{**ok, "user_ids": np.array([9, 5])})
    with pytest.raises(ValueError, match="integer dense indices"):
        Interactions(**{**ok, "item": np.array([0.0, 0.0])})
    with pytest.raises(ValueError, match=r"rating\[0\] is nan"):
        Interactions(**{**ok, "rating": np.array([np.nan, 1.0])})
    with pytest.raises(ValueError, match="boolean mask"):
        Interactions(**ok).subset(np.array([True]))


@pytest.mark.parametrize("split,kwargs,match", [
    (random_split, {"test_frac": 0.0001}, "leaves the test part empty"),
    (random_split, {"test_frac": 0.9999}, "leaves the train part empty"),
    (random_split, {"test_frac": float("nan")}, "test_frac must be a number in"),
    (random_split, {"test_frac": "0.2"}, "test_frac must be a number in"),
    (stratified_item_split, {"train_frac": 0.01}, "leaves the train part empty"),
    (leave_k_out, {"k": 1.5}, "k must be an integer >= 1, got 1.5"),
    (leave_k_out, {"k": 0}, "k must be an integer >= 1"),
    (leave_k_out, {"k": 1, "min_train": -1}, "min_train must be an integer >= 0"),
    (leave_k_out, {"k": 100}, "holds nothing out"),
])
def test_splits_refuse_arguments_that_give_an_empty_part(random_data, split, kwargs, match):
    with pytest.raises(ValueError, match=match):
        split(random_data, **kwargs)


def test_splits_refuse_too_little_data():
    with pytest.raises(ValueError, match="cannot split 1 interaction"):
        random_split(Interactions.from_raw([1], [2]), 0.5)
    with pytest.raises(TypeError, match="must be mfkit.data.Interactions"):
        random_split([(1, 2), (3, 4)], 0.5)


def test_probe_split_refuses_duplicate_and_empty_probes(random_data):
    frame = random_data.to_frame()
    u, i = frame["user"].to_numpy()[:2], frame["item"].to_numpy()[:2]
    with pytest.raises(ValueError, match=r"holds the pair .* 2 times"):
        probe_split(random_data, np.r_[u, u[:1]], np.r_[i, i[:1]])
    with pytest.raises(ValueError, match="probe list is empty"):
        probe_split(random_data, [], [])
    with pytest.raises(ValueError, match="one length"):
        probe_split(random_data, u, i[:1])


@pytest.mark.parametrize("data", ["\n\n  \n", "\r\n"])
def test_blank_only_ratings_file(tmp_path, data):
    grouplens(tmp_path, data, None)
    with pytest.raises(DataFormatError, match="at least one data line.*got 'only blank lines'"):
        read_grouplens_100k(tmp_path)


def test_directory_or_file_in_the_wrong_place(tmp_path):
    (tmp_path / "u.data").mkdir()
    with pytest.raises(IsADirectoryError, match="u.data is a directory"):
        read_grouplens_100k(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        read_grouplens_100k(tmp_path / "f")


def test_duplicate_item_ids_in_item_files(tmp_path):
    grouplens(tmp_path, item=U_ITEM + U_ITEM.splitlines(keepends=True)[0])
    with pytest.raises(DataFormatError, match=r"u.item, line 4: expected each movie id once \(item 242 is already "
                                              r"on line 1\)"):
        read_grouplens_100k(tmp_path)
    (tmp_path / "ml-100k.inter").write_text(INTER)
    (tmp_path / "ml-100k.item").write_text(ITEM.replace("item_id:token", "item"))
    with pytest.raises(DataFormatError, match="ml-100k.item, line 1: expected the header"):
        read_recbole_100k(tmp_path)


def test_header_only_and_blank_movielens_csv(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(DataFormatError, match="ratings.csv: expected at least one data line.*only a header line"):
        load_movielens_csv(tmp_path)
    (tmp_path / "ratings.csv").write_text(RATINGS_CSV)
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(DataFormatError, match="movies.csv: expected at least one movie line"):
        load_movielens_csv(tmp_path)
    (tmp_path / "inter").mkdir()
    (tmp_path / "inter" / "ml-100k.inter").write_text(INTER.splitlines(keepends=True)[0])
    with pytest.raises(DataFormatError, match="only a header line"):
        read_recbole_100k(tmp_path / "inter")


@pytest.mark.parametrize("movies,line,expected", [
    (MOVIES_CSV + "3,Other (2001),Drama\n", 4, "each movieId once (movieId 3 is already on line 3)"),
    (MOVIES_CSV + "4.5,Other (2001),Drama\n", 4, "a whole number in column movieId"),
    (MOVIES_CSV + "4,Other (2001)\n", 4, "3 comma-separated fields"),
    ('movieId,title,genres\n1,"Multi\nline (1995)",Drama\n1,Again (1996),Drama\n', 4, "each movieId once"),
])
def test_bad_movies_csv(tmp_path, movies, line, expected):
    (tmp_path / "ratings.csv").write_text(RATINGS_CSV)
    (tmp_path / "movies.csv").write_text(movies)
    with pytest.raises(DataFormatError) as e:
        load_movielens_csv(tmp_path)
    assert f"movies.csv, line {line}: expected" in str(e.value) and expected in str(e.value)
