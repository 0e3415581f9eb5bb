"""Netflix Prize readers, the generator and the cache (mfkit.data.netflix, mfkit.data.synthetic)."""
import datetime as dt
import logging
import os

import numpy as np
import pandas as pd
import pytest

import mfkit.data.netflix as netflix_module
from mfkit.data import (DataFormatError, DataNotFoundError, Interactions, dense_index, generate_netflix_sample,
                        load_netflix, netflix_sample_dir, netflix_sample_truth, parse_combined_data,
                        read_movie_titles, read_probe, read_qualifying)


def days(text):
    """Days since 1970-01-01, computed with the standard library (independent of the parser)."""
    return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days


SMALL = "1:\n6,3,2005-09-06\n10,5,2004-12-31\n2:\n1488844,1,1999-11-11\n"
SMALL_EXPECTED = {"user": [6, 10, 1488844], "movie": [1, 1, 2], "rating": [3, 5, 1],
                  "date": [days("2005-09-06"), days("2004-12-31"), days("1999-11-11")]}


def write(tmp_path, text, name="combined_data_1.txt", encoding="latin-1"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


def assert_small(r):
    for key, values in SMALL_EXPECTED.items():
        np.testing.assert_array_equal(getattr(r, key), values)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A small generated data set (about 6,000 ratings) and its ground truth."""
    folder = tmp_path_factory.mktemp("netflix")
    truth = generate_netflix_sample(folder, n_users=300, n_movies=80, n_factors=4, ratings_per_user=20, seed=3)
    return folder, truth


# -- parse_combined_data -----------------------------------------------------------------------------------------------
def test_parse_hand_written_file(tmp_path):
    r = parse_combined_data(write(tmp_path, SMALL), show_progress=False)
    assert_small(r)
    assert (r.user.dtype, r.movie.dtype, r.rating.dtype, r.date.dtype) == (np.int32, np.int16, np.int8, np.int32)
    assert len(r) == 3


@pytest.mark.parametrize("text", [
    SMALL.replace("\n", "\r\n"),            # Windows line endings
    SMALL[:-1],                             # no final newline
    SMALL + "\n\n",                         # trailing blank lines
    SMALL.replace("\n", "\r\n") + "\r\n",   # both
    SMALL.replace("\n", "\r\n")[:-2],       # CRLF without the last one
])
def test_line_ending_variants(tmp_path, text):
    assert_small(parse_combined_data(write(tmp_path, text), show_progress=False))


@pytest.mark.parametrize("chunk_bytes", [1, 7, 16, 21, 50])
def test_chunk_boundaries_anywhere(tmp_path, chunk_bytes):
    # tiny chunks cut lines and headers everywhere; a movie's block then spans many chunks
    assert_small(parse_combined_data(write(tmp_path, SMALL), show_progress=False, chunk_bytes=chunk_bytes))


def test_several_files_in_order(tmp_path):
    a = write(tmp_path, "1:\n6,3,2005-09-06\n10,5,2004-12-31\n", "combined_data_1.txt")
    b = write(tmp_path, "2:\n1488844,1,1999-11-11\n", "combined_data_2.txt")
    assert_small(parse_combined_data([a, b], show_progress=False))


def test_movie_ids_beyond_int16(tmp_path):
    r = parse_combined_data(write(tmp_path, "40000:\n7,2,2001-01-01\n"), show_progress=False)
    assert r.movie.dtype == np.int32 and r.movie[0] == 40000


BAD_COMBINED = [
    ("1:\n6,3,2005-09-06\nabc\n", 3, "comma-separated"),
    ("6,3,2005-09-06\n1:\n", 1, "header line before the first"),
    ("1:\n6,6,2005-09-06\n", 2, "rating from 1 to 5"),
    ("1:\n6,0,2005-09-06\n", 2, "rating from 1 to 5"),
    ("1:\n6,35,2005-09-06\n", 2, "rating from 1 to 5"),
    ("1:\nx6,3,2005-09-06\n", 2, "numeric CustomerID"),
    ("1:\n123456789,3,2005-09-06\n", 2, "numeric CustomerID"),
    ("1:\n,3,2005-09-06\n", 2, "numeric CustomerID"),
    ("1:\n6,3,2005-02-29\n", 2, "calendar date"),   # 2005 is no leap year
    ("1:\n6,3,2005-13-01\n", 2, "calendar date"),
    ("1:\n6,3,2005-00-10\n", 2, "calendar date"),
    ("1:\n6,3,2005/09/06\n", 2, "calendar date"),
    ("1:\n6,3,2005-9-06x\n", 2, "calendar date"),
    ("1:\n6,3,2005-09-06,9\n", 2, "comma-separated"),
    ("1a:\n6,3,2005-09-06\n", 1, "movie header"),
    (":\n6,3,2005-09-06\n", 1, "movie header"),
    ("1:\n6,3,2005-09-06\n\n7,3,2005-09-06\n", 3, "blank line"),
    ("1:\n6,3,2005-09-06\n7,3,2005-09-06\r\r\n", 3, "calendar date"),
    ("1:\n", 1, "at least one 'CustomerID,Rating,YYYY-MM-DD' line after the movie header"),  # header only
    ("1:\n2:\n6,3,2005-09-06\n", 1, "after the movie header"),
    ("1:\n6,3,2005-09-06\n2:\n\n", 3, "after the movie header"),
    ("1:\n6,3,2005-09-06\n2:\n7,3,2005-09-06\n1:\n8,3,2005-09-06\n", 5, "each MovieID to head one block (MovieID "
                                                                      "1 already heads the block at"),
    ("1:\n6,3,2005-09-06\n7,3,2005-09-06\n6,4,2005-09-07\n", 4, "each CustomerID once per movie (CustomerID 6 "
                                                             "already has a"),
    ("1:\n6,3,2005-09-06\n2:\n7,1,2005-09-06\n8,3,2005-09-06\n7,3,2005-09-06\n", 6, "at line 4)"),
]


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 9])
@pytest.mark.parametrize("text,line,expected", BAD_COMBINED)
def test_bad_combined_data(tmp_path, text, line, expected, chunk_bytes):
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError) as e:
        parse_combined_data(path, show_progress=False, chunk_bytes=chunk_bytes)
    msg = str(e.value)
    assert str(path) in msg and f"line {line}:" in msg and expected in msg, msg
    assert e.value.line == line


def test_leap_day_is_a_date(tmp_path):
    r = parse_combined_data(write(tmp_path, "1:\n6,3,2004-02-29\n"), show_progress=False)
    assert r.date[0] == days("2004-02-29")


@pytest.mark.parametrize("text", ["", "\n\n", "\r\n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError, match="empty file") as e:
        parse_combined_data(path, show_progress=False)
    assert str(path) in str(e.value)


def test_error_line_number_deep_in_a_chunked_file(tmp_path):
    lines = ["1:"] + [f"{u},{1 + u % 5},2003-03-{1 + u % 28:02d}" for u in range(1, 2000)]
    lines[1234] = "77,9,2003-03-01"  # line 1235 of the file
    path = write(tmp_path, "\n".join(lines) + "\n")
    for chunk_bytes in (1 << 20, 100, 4096):
        with pytest.raises(DataFormatError, match=r"line 1235: expected a rating from 1 to 5"):
            parse_combined_data(path, show_progress=False, chunk_bytes=chunk_bytes)


def test_missing_file_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DataNotFoundError, match="netflix-prize-data"):
        parse_combined_data(tmp_path / "combined_data_1.txt", show_progress=False)


# -- probe, qualifying, titles -----------------------------------------------------------------------------------------
def test_read_probe(tmp_path):
    df = read_probe(write(tmp_path, "1:\n30878\n2647871\r\n8:\n1\n", "probe.txt"))
    assert df.columns.tolist() == ["movie", "user"]
    assert df["movie"].tolist() == [1, 1, 8] and df["user"].tolist() == [30878, 2647871, 1]


@pytest.mark.parametrize("text,line,expected", [
    ("1:\n30878\nabc\n", 3, "CustomerID"),
    ("30878\n1:\n", 1, "header line before the first"),
    ("1:\n30878,2005-01-01\n", 2, "1 comma-separated field"),
])
def test_bad_probe(tmp_path, text, line, expected):
    path = write(tmp_path, text, "probe.txt")
    with pytest.raises(DataFormatError) as e:
        read_probe(path)
    assert str(path) in str(e.value) and f"line {line}:" in str(e.value) and expected in str(e.value)


def test_read_qualifying(tmp_path):
    df = read_qualifying(write(tmp_path, "1:\n1046323,2005-12-19\n12:\n1,2006-01-02\n", "qualifying.txt"))
    assert df.columns.tolist() == ["movie", "user", "date"]
    assert df["movie"].tolist() == [1, 12] and df["user"].tolist() == [1046323, 1]
    assert df["date"].tolist() == [days("2005-12-19"), days("2006-01-02")]


@pytest.mark.parametrize("text,line,expected", [
    ("1:\n1046323,2005-12-32\n", 2, "calendar date"),
    ("1:\n1046323\n", 2, "CustomerID,YYYY-MM-DD"),
    ("1:\n1046323,3,2005-12-01\n", 2, "2 comma-separated fields"),
])
def test_bad_qualifying(tmp_path, text, line, expected):
    path = write(tmp_path, text, "qualifying.txt")
    with pytest.raises(DataFormatError) as e:
        read_qualifying(path)
    assert str(path) in str(e.value) and f"line {line}:" in str(e.value) and expected in str(e.value)


TITLES = ("1,2003,Dinosaur Planet\n2,NULL,Amélie\n3,1997,Crouching Tiger, Hidden Dragon, Part 2\n"
          "4,1994,Isle of Man TT\n\n")


def test_read_movie_titles(tmp_path):
    t = read_movie_titles(write(tmp_path, TITLES, "movie_titles.csv", encoding="latin-1"))
    assert t.index.name == "movie" and t.index.tolist() == [1, 2, 3, 4]
    assert str(t["year"].dtype) == "Int64" and pd.isna(t.loc[2, "year"]) and t.loc[1, "year"] == 2003
    assert t.loc[2, "title"] == "Amélie"  # Latin-1 byte 0xE9
    assert t.loc[3, "title"] == "Crouching Tiger, Hidden Dragon, Part 2"  # split on the first two commas only


@pytest.mark.parametrize("text,line", [
    ("1,2003,A\n2,1999\n", 2),            # two fields
    ("1,2003,A\n2,19x9,B\n", 2),          # year neither a number nor NULL
    ("1,2003,A\nx,1999,B\n", 2),          # MovieID not a number
    ("1,2003,A\n\n2,1999,B\n", 2),        # blank line before the end
    ("1,2003,A\n1,1999,B\n", 2),          # MovieID twice
])
def test_bad_movie_titles(tmp_path, text, line):
    path = write(tmp_path, text, "movie_titles.csv")
    with pytest.raises(DataFormatError) as e:
        read_movie_titles(path)
    assert str(path) in str(e.value) and f"line {line}:" in str(e.value)


def test_empty_movie_titles(tmp_path):
    with pytest.raises(DataFormatError, match="empty file"):
        read_movie_titles(write(tmp_path, "\n", "movie_titles.csv"))


# -- generator ---------------------------------------------------------------------------------------------------------
def test_round_trip_equals_ground_truth(sample):
    folder, truth = sample
    files = sorted(folder.glob("combined_data_*.txt"))
    assert [f.name for f in files] == [f"combined_data_{j}.txt" for j in range(1, 5)]
    r = parse_combined_data(files, show_progress=False)
    for key in ("user", "movie", "rating", "date"):
        np.testing.assert_array_equal(getattr(r, key), getattr(truth.ratings, key))
    pd.testing.assert_frame_equal(read_probe(folder / "probe.txt"), truth.probe)
    pd.testing.assert_frame_equal(read_qualifying(folder / "qualifying.txt"),
                                  truth.qualifying[["movie", "user", "date"]])
    pd.testing.assert_frame_equal(read_movie_titles(folder / "movie_titles.csv"), truth.titles)


def test_nothing_dropped(sample):
    folder, truth = sample
    n_lines = sum(sum(1 for line in open(f, "rb") if not line.rstrip().endswith(b":"))
                  for f in folder.glob("combined_data_*.txt"))
    assert n_lines == len(truth.ratings) == 6000


def test_generated_files_have_the_real_quirks(sample):
    folder, truth = sample
    raw = (folder / "movie_titles.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # Latin-1, not UTF-8
    titles = truth.titles
    assert titles["title"].str.contains(",").any()
    assert titles["title"].map(lambda t: any(ord(c) > 127 for c in t)).any()
    assert titles["year"].isna().any() and b",NULL," in raw
    # sparse CustomerIDs, not 0..n-1
    assert truth.user_ids.max() > 10 * len(truth.user_ids) and np.all(np.diff(truth.user_ids) > 0)
    first = (folder / "combined_data_1.txt").read_text().splitlines()
    assert first[0] == "1:" and first[1].count(",") == 2


def test_generated_model_and_splits(sample):
    _, truth = sample
    r = truth.ratings
    assert r.rating.min() >= 1 and r.rating.max() <= 5
    counts = np.bincount(np.searchsorted(truth.user_ids, r.user))
    assert counts.min() >= 1 and counts.max() >= 4 * np.median(counts)  # long-tailed activity
    # ratings are the model's expectation plus noise, rounded and clipped: the error is about the noise level
    pred = np.clip(truth.predict(r.user, r.movie), 1, 5)
    rmse = np.sqrt(np.mean((r.rating - pred) ** 2))
    assert truth.noise_std * 0.9 < rmse < truth.noise_std + 0.2
    # probe: ~1.4% of the ratings, each among its user's latest three, the user keeping others
    frame = pd.DataFrame({"user": r.user, "movie": r.movie.astype(np.int64), "date": r.date})
    assert abs(len(truth.probe) - 0.014 * len(r)) <= 1
    rank = frame.groupby("user")["date"].rank(method="min", ascending=False)
    probe = frame.merge(truth.probe.assign(probe=True), on=["user", "movie"], how="left")["probe"].fillna(False)
    assert probe.sum() == len(truth.probe)
    assert (rank[probe.to_numpy(bool)] <= 3).all()
    # qualifying: other pairs, dated no earlier than the user's ratings
    key = set(zip(r.user.tolist(), r.movie.tolist()))
    q = truth.qualifying
    assert not any((u, m) in key for u, m in zip(q["user"], q["movie"]))
    last = frame.groupby("user")["date"].max()
    assert (q["date"].to_numpy() >= last.reindex(q["user"]).to_numpy()).all()


def test_generator_is_seeded(tmp_path):
    a = generate_netflix_sample(tmp_path / "a", n_users=50, n_movies=20, ratings_per_user=5, seed=1)
    b = generate_netflix_sample(tmp_path / "b", n_users=50, n_movies=20, ratings_per_user=5, seed=1)
    c = generate_netflix_sample(tmp_path / "c", n_users=50, n_movies=20, ratings_per_user=5, seed=2)
    for name in ("combined_data_1.txt", "probe.txt", "qualifying.txt", "movie_titles.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert not np.array_equal(a.ratings.user, c.ratings.user)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)


def test_generator_rejects_impossible_sizes(tmp_path):
    with pytest.raises(ValueError, match="ratings must lie between"):
        generate_netflix_sample(tmp_path, n_users=10, n_movies=10, ratings_per_user=9)


# -- load_netflix and its cache ----------------------------------------------------------------------------------------
def test_load_netflix_and_cache(sample, tmp_path, monkeypatch):
    folder, truth = sample
    data = load_netflix(folder, cache_dir=tmp_path, show_progress=False)
    assert isinstance(data, Interactions) and data.name == "netflix" and len(data) == len(truth.ratings)
    np.testing.assert_array_equal(data.user_ids[data.user], truth.ratings.user)
    np.testing.assert_array_equal(data.item_ids[data.item], truth.ratings.movie)
    np.testing.assert_array_equal(data.rating, truth.ratings.rating.astype(np.float32))
    np.testing.assert_array_equal(data.timestamp, truth.ratings.date)
    assert data.rating.dtype == np.float32 and "title" in data.items
    assert data.item_titles([0])[0] == truth.titles.loc[data.item_ids[0], "title"]
    caches = list((tmp_path / "netflix").glob("*.npz"))
    assert len(caches) == 1 and np.load(caches[0])["user"].shape == (len(truth.ratings),)  # a plain .npz

    # the second load reads the cache: parsing is not called
    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again although the cache is valid")

    monkeypatch.setattr(netflix_module, "parse_combined_data", no_parse)
    again = load_netflix(folder, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.user, data.user)
    np.testing.assert_array_equal(again.timestamp, data.timestamp)
    np.testing.assert_array_equal(again.rating, data.rating)
    pd.testing.assert_frame_equal(again.items, truth.titles)  # the titles come back from the cache too
    monkeypatch.undo()


def test_cache_rebuilt_when_a_source_changes(tmp_path, caplog):
    folder = tmp_path / "nf"
    folder.mkdir()
    path = write(folder, SMALL)
    first = load_netflix(folder, cache_dir=tmp_path / "cache", show_progress=False)
    assert len(first) == 3
    path.write_text(SMALL + "3:\n5,4,2001-05-05\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with caplog.at_level(logging.WARNING, logger="mfkit.data"):
        second = load_netflix(folder, cache_dir=tmp_path / "cache", show_progress=False)
    assert len(second) == 4 and second.rating[-1] == 4
    assert "changed since they were cached" in caplog.text  # says that it rebuilds
    assert len(list((tmp_path / "cache" / "netflix").glob("*.npz"))) == 1  # the stale cache is replaced


def test_no_cache_writes_nothing(tmp_path):
    folder = tmp_path / "nf"
    folder.mkdir()
    write(folder, SMALL)
    data = load_netflix(folder, cache=False, cache_dir=tmp_path / "cache", show_progress=False)
    assert len(data) == 3 and data.items is None
    assert not (tmp_path / "cache" / "netflix").exists()


def test_load_netflix_folder_resolution(tmp_path, monkeypatch):
    folder = tmp_path / "nf"
    folder.mkdir()
    write(folder, SMALL)
    monkeypatch.setenv("MFKIT_NETFLIX_DIR", str(folder))
    assert len(load_netflix(cache=False, show_progress=False)) == 3
    monkeypatch.setenv("MFKIT_NETFLIX_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataNotFoundError) as e:
        load_netflix(cache=False)
    msg = str(e.value)
    assert "netflix-prize-data" in msg and "MFKIT_NETFLIX_DIR" in msg and "netflix_sample_dir()" in msg
    with pytest.raises(DataNotFoundError, match="combined_data"):
        load_netflix(tmp_path, cache=False)


def test_default_sample(tmp_path, monkeypatch):
    monkeypatch.delenv("MFKIT_NETFLIX_DIR", raising=False)
    folder = netflix_sample_dir(tmp_path)
    stamp = (folder / "combined_data_1.txt").stat().st_mtime_ns
    assert netflix_sample_dir(tmp_path) == folder  # written once
    assert (folder / "combined_data_1.txt").stat().st_mtime_ns == stamp
    data = load_netflix(cache_dir=tmp_path, show_progress=False)  # no folder, no $MFKIT_NETFLIX_DIR: the sample
    truth = netflix_sample_truth()  # deterministic: drawing it again gives the same ratings
    assert 100_000 <= len(data) <= 300_000
    np.testing.assert_array_equal(data.user_ids[data.user], truth.ratings.user)
    np.testing.assert_array_equal(data.rating, truth.ratings.rating)


def test_dense_index_matches_unique():
    rng = np.random.default_rng(0)
    for raw in (rng.integers(0, 50, 300), rng.integers(1, 2_649_430, 1000).astype(np.int32),
                rng.integers(-5, 5, 100), rng.integers(0, 2**40, 100), np.array([7], np.int16)):
        ids, idx = dense_index(raw)
        want_ids, want_idx = np.unique(raw, return_inverse=True)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(idx, want_idx)
        assert idx.dtype == np.int32 and ids.dtype == raw.dtype


# -- bad input is refused, never passed on silently (issue 11) ---------------------------------------------------------
def test_directory_passed_as_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory, expected a file"):
        parse_combined_data(tmp_path, show_progress=False)
    with pytest.raises(IsADirectoryError):
        read_probe(tmp_path)
    with pytest.raises(IsADirectoryError):
        read_movie_titles(tmp_path)


def test_same_file_twice_is_refused(tmp_path):
    path = write(tmp_path, SMALL)
    with pytest.raises(ValueError, match="given twice"):
        parse_combined_data([path, tmp_path / "." / path.name], show_progress=False)


def test_duplicate_customer_in_probe_block(tmp_path):
    path = write(tmp_path, "1:\n6\n7\n6\n", "probe.txt")
    with pytest.raises(DataFormatError, match=r"probe.txt, line 4: expected each CustomerID once per movie"):
        read_probe(path)


def test_only_the_real_file_names_are_read(tmp_path, caplog):
    folder = tmp_path / "nf"
    folder.mkdir()
    write(folder, SMALL)
    write(folder, SMALL, "combined_data_1 (1).txt")  # a browser's second download
    write(folder, SMALL, "combined_data_1.txt.bak")
    with caplog.at_level(logging.WARNING, logger="mfkit.data"):
        data = load_netflix(folder, cache=False, show_progress=False)
    assert len(data) == 3  # not doubled
    assert "ignoring combined_data_1 (1).txt, combined_data_1.txt.bak" in caplog.text
    write(folder, SMALL.replace("1:", "7:").replace("2:", "8:"), "combined_data_3.txt")
    with pytest.raises(DataNotFoundError, match="but not combined_data_2.txt"):
        load_netflix(folder, cache=False, show_progress=False)
    with pytest.raises(NotADirectoryError, match="is a file"):
        load_netflix(folder / "combined_data_1.txt")


def test_two_folders_never_share_a_cache(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, text in ((a, SMALL), (b, SMALL.replace(",3,", ",4,"))):  # same names, sizes and times
        folder.mkdir()
        write(folder, text)
        os.utime(folder / "combined_data_1.txt", ns=(10**18, 10**18))
    assert netflix_module.netflix_cache_path(a, tmp_path) != netflix_module.netflix_cache_path(b, tmp_path)
    first = load_netflix(a, cache_dir=tmp_path / "cache", show_progress=False)
    second = load_netflix(b, cache_dir=tmp_path / "cache", show_progress=False)
    assert first.rating[0] == 3 and second.rating[0] == 4
    # same folder, same size and time, different content: the fingerprint hashes the bytes too
    write(a, SMALL.replace(",3,", ",5,"))
    os.utime(a / "combined_data_1.txt", ns=(10**18, 10**18))
    assert load_netflix(a, cache_dir=tmp_path / "cache", show_progress=False).rating[0] == 5


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "nf"
    folder.mkdir()
    write(folder, SMALL)
    load_netflix(folder, cache_dir=tmp_path, show_progress=False)
    cache = netflix_module.netflix_cache_path(folder, tmp_path)
    cache.write_bytes(cache.read_bytes()[:-200])  # truncated
    with caplog.at_level(logging.WARNING, logger="mfkit.data"):
        data = load_netflix(folder, cache_dir=tmp_path, show_progress=False)
    assert len(data) == 3 and "cannot be read" in caplog.text


def test_titles_with_byte_0x85_stay_on_their_line(tmp_path):
    path = write(tmp_path, b"1,2001,Wait\x85 what\n2,NULL,Next\n", "movie_titles.csv")
    titles = read_movie_titles(path)
    assert titles["title"].tolist() == ["Wait\x85 what", "Next"]
