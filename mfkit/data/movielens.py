"""MovieLens readers and the ML-100k fetcher.

Reads GroupLens' own layout (``u.data``, ``u.item``), RecBole's atomic files (``ml-100k.inter``, ``ml-100k.item``) and
the ``ratings.csv``/``movies.csv`` layout of ml-latest-small. Data: F. Maxwell Harper and Joseph A. Konstan, "The
MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015 — GroupLens Research, https://grouplens.org/datasets/.

Used by: Chapter 1 (MovieLens section) and Chapters 2–7 (every experiment on ML-100k).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import DataFormatError, DataNotFoundError, _line, check_file, data_home, read_table
from .interactions import Interactions

__all__ = ["fetch_movielens_100k", "load_movielens_100k", "load_movielens_csv", "read_grouplens_100k",
           "read_recbole_100k"]

RECBOLE_WHEEL = "recbole==1.2.1"
_WHEEL_DIR = "recbole/dataset_example/ml-100k/"
_FILES = ("ml-100k.inter", "ml-100k.item")

HOW_TO_GET = (
    "MovieLens 100k was not found. mfkit looks, in order, at the `path` argument, $MFKIT_ML100K_DIR, and its cache "
    "({cache}). To fill the cache it runs `pip download --no-deps {wheel}` (the RecBole wheel ships ml-100k) and "
    "extracts ml-100k.inter and ml-100k.item; that needs access to the Python package index. Otherwise download "
    "ml-100k.zip from https://grouplens.org/datasets/movielens/100k/, unzip it and set MFKIT_ML100K_DIR to the folder "
    "holding u.data and u.item."
)


def _ratings_interactions(df: pd.DataFrame, items: pd.DataFrame | None, name: str) -> Interactions:
    return Interactions.from_raw(df["user"].to_numpy(np.int64), df["item"].to_numpy(np.int64),
                                 df["rating"].to_numpy(np.float32), df["timestamp"].to_numpy(np.int64),
                                 item_meta=items, name=name)


def _check_ratings(df: pd.DataFrame, path: Path, low: float, high: float) -> None:
    """Ratings within [low, high] and each (user, item) pair once; the error names the file line."""
    line_no = df.attrs["line_no"]
    bad = ~df["rating"].between(low, high).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, int(line_no[i]), f"a rating between {low} and {high}",
                              _line(path, int(line_no[i]), "latin-1"))
    _check_unique(df, ["user", "item"], path, "each (user, item) pair once")


def _check_unique(df: pd.DataFrame, columns: list[str], path: Path, expected: str) -> None:
    dup = df.duplicated(columns).to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        key = df[columns].iloc[i]
        first = int(np.argmax((df[columns] == key).all(axis=1).to_numpy()))
        line_no = df.attrs["line_no"]
        values = ", ".join(f"{c} {key[c]}" for c in columns)
        raise DataFormatError(path, int(line_no[i]), f"{expected} ({values} is already on line {int(line_no[first])})",
                              _line(path, int(line_no[i]), "latin-1"))


def _folder(folder) -> Path:
    folder = Path(folder).expanduser()
    if folder.is_file():
        raise NotADirectoryError(f"{folder} is a file: expected the folder that holds the data files")
    return folder


def read_grouplens_100k(folder) -> Interactions:
    """Read GroupLens' ``u.data`` (tab-separated user, item, rating, timestamp) and ``u.item`` ('|', Latin-1)."""
    folder = _folder(folder)
    names = ["user", "item", "rating", "timestamp"]
    df = read_table(folder / "u.data", "\t", names, numeric=names, integer=["user", "item", "timestamp"])
    _check_ratings(df, folder / "u.data", 1, 5)
    items = None
    if (folder / "u.item").exists():
        columns = ["item", "title", "date", "video", "url"] + [f"g{i}" for i in range(19)]
        raw = read_table(folder / "u.item", "|", columns,
                         numeric=["item"], integer=["item"], encoding="latin-1",
                         expected="24 '|'-separated fields (movie id|title|release date|video date|URL|19 genre flags)")
        _check_unique(raw, ["item"], folder / "u.item", "each movie id once")
        # GroupLens titles end with the year, "Toy Story (1995)": split it off so both layouts read alike.
        parts = raw["title"].str.extract(r"^(.*?)\s*\((\d{4})\)\s*$")
        title = parts[0].fillna(raw["title"]).str.strip()
        items = pd.DataFrame({"title": title.to_numpy(), "year": pd.to_numeric(parts[1]).to_numpy()},
                             index=pd.Index(raw["item"].astype(np.int64).to_numpy(), name="item"))
    return _ratings_interactions(df, items, "ml-100k")


def read_recbole_100k(folder) -> Interactions:
    """Read RecBole's atomic files ``ml-100k.inter`` (with a typed header line) and ``ml-100k.item``."""
    folder = _folder(folder)
    names = ["user", "item", "rating", "timestamp"]
    inter = check_file(folder / "ml-100k.inter")
    with open(inter, encoding="utf-8", errors="replace") as f:
        head = f.readline().rstrip("\r\n")
    if head.split("\t") != ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]:
        raise DataFormatError(inter, 1,
                              "the header 'user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float'",
                              head)
    df = read_table(inter, "\t", names, numeric=names, header=True, integer=["user", "item", "timestamp"])
    _check_ratings(df, inter, 1, 5)
    items = None
    if (folder / "ml-100k.item").exists():
        item_path = folder / "ml-100k.item"
        with open(item_path, encoding="utf-8", errors="replace") as f:
            head = f.readline().rstrip("\r\n")
        item_header = ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"]
        if head.split("\t") != item_header:
            raise DataFormatError(item_path, 1, "the header '" + "<TAB>".join(item_header) + "'", head)
        raw = read_table(item_path, "\t", ["item", "title", "year", "genres"], numeric=["item"], integer=["item"],
                         header=True)
        _check_unique(raw, ["item"], item_path, "each item id once")
        items = pd.DataFrame({"title": raw["title"].to_numpy(),
                              "year": pd.to_numeric(raw["year"], errors="coerce").to_numpy()},  # 'unkonwn' → NaN
                             index=pd.Index(raw["item"].astype(np.int64).to_numpy(), name="item"))
    return _ratings_interactions(df, items, "ml-100k")


def load_movielens_csv(folder) -> Interactions:
    """Read the ml-latest-small layout: ``ratings.csv`` (userId,movieId,rating,timestamp) and ``movies.csv``.

    ``movies.csv`` quotes titles that contain commas (``"American President, The (1995)"``); the csv reader
    handles them. Used by: Chapter 1 (the readers), for readers who bring a larger MovieLens.
    """
    folder = _folder(folder)
    path = folder / "ratings.csv"
    if path.is_dir():
        check_file(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist: expected the ratings.csv of a MovieLens 'latest' download "
                                "(https://grouplens.org/datasets/movielens/)")
    expected = ["userId", "movieId", "rating", "timestamp"]
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.readline().rstrip("\r\n")
    if head.split(",") != expected:
        raise DataFormatError(path, 1, f"the header {','.join(expected)}", head)
    names = ["user", "item", "rating", "timestamp"]
    df = read_table(path, ",", names, numeric=names, header=True, integer=["user", "item", "timestamp"],
                    expected="4 comma-separated fields (userId,movieId,rating,timestamp)")
    _check_ratings(df, path, 0.5, 5)
    items = None
    if (folder / "movies.csv").exists():
        movies_path = check_file(folder / "movies.csv")
        movies = _read_movies_csv(movies_path)
        ids = movies["movieId"]
        parts = movies["title"].str.extract(r"^(.*?)\s*\((\d{4})\)\s*$")
        items = pd.DataFrame({"title": parts[0].fillna(movies["title"]).to_numpy(),
                              "year": pd.to_numeric(parts[1]).to_numpy()},
                             index=pd.Index(ids.to_numpy(np.int64), name="item"))
    return _ratings_interactions(df, items, folder.name)


def _read_movies_csv(path: Path) -> pd.DataFrame:
    """``movies.csv``: a header ``movieId,title,genres`` and rows of 3 fields; titles with commas are quoted.

    Read with Python's csv module (a few thousand to tens of thousands of lines), which tells the line of every row,
    quoted line breaks included.
    """
    import csv

    expected = "3 comma-separated fields (movieId,title,genres; a title with commas in double quotes)"
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, strict=True)
        rows, lines = [], []
        try:
            head = next(reader, None)
            if head is None:
                raise DataFormatError(path, None, "the header movieId,title,genres", "an empty file")
            if head != ["movieId", "title", "genres"]:
                raise DataFormatError(path, 1, "the header movieId,title,genres", ",".join(head))
            start = reader.line_num + 1
            for row in reader:
                if row and any(field.strip() for field in row):
                    if len(row) != 3:
                        raise DataFormatError(path, start, expected, _line(path, start, "utf-8"))
                    rows.append(row)
                    lines.append(start)
                elif row:
                    raise DataFormatError(path, start, expected, _line(path, start, "utf-8"))
                start = reader.line_num + 1
        except csv.Error as e:
            raise DataFormatError(path, reader.line_num, expected, str(e)) from e
        except UnicodeDecodeError as e:
            raise DataFormatError(path, None, "text in utf-8", str(e)) from e
    if not rows:
        raise DataFormatError(path, None, f"at least one movie line ({expected})", "only a header line")
    movies = pd.DataFrame(rows, columns=["movieId", "title", "genres"])
    movies.attrs["line_no"] = np.asarray(lines, dtype=np.int64)
    text = movies["movieId"].str.strip(" ")
    bad = ~text.str.fullmatch(r"[0-9]{1,18}").to_numpy(dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, lines[i], "a whole number in column movieId", _line(path, lines[i], "utf-8"))
    movies["movieId"] = text.astype(np.int64)
    _check_unique(movies, ["movieId"], path, "each movieId once")
    return movies


def fetch_movielens_100k(cache_dir=None, quiet: bool = True) -> Path:
    """Return a folder holding ML-100k, downloading it into the cache the first time.

    The RecBole 1.2.1 wheel on the Python package index carries ML-100k as atomic files; we download that one wheel
    with ``pip download --no-deps`` (recbole is never installed) and extract only ``ml-100k.inter`` and
    ``ml-100k.item`` into ``<cache>/ml-100k``.

    Parameters
    ----------
    cache_dir : path, optional
        Cache folder; default ``$MFKIT_DATA_DIR`` or the user cache dir (see :func:`mfkit.data.data_home`).

    Raises
    ------
    DataNotFoundError
        When the download fails, with instructions for getting the data by hand.
    """
    target = data_home(cache_dir) / "ml-100k"
    if all((target / f).exists() for f in _FILES):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, RECBOLE_WHEEL]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DataNotFoundError(HOW_TO_GET.format(cache=target, wheel=RECBOLE_WHEEL)
                                    + f"\n(pip failed: {e})") from e
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise DataNotFoundError(HOW_TO_GET.format(cache=target, wheel=RECBOLE_WHEEL)
                                    + "\n(pip said: " + " / ".join(tail) + ")")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as z:
            for f in _FILES:
                # write to a temporary name first so an interrupted extract never looks complete
                part = target / (f + ".part")
                part.write_bytes(z.read(_WHEEL_DIR + f))
                os.replace(part, target / f)
    return target


def load_movielens_100k(path=None, cache_dir=None) -> Interactions:
    """MovieLens 100k (100,000 ratings, 943 users, 1,682 items) as :class:`~mfkit.data.Interactions`.

    Parameters
    ----------
    path : path, optional
        A folder in GroupLens' layout (``u.data``) or RecBole's (``ml-100k.inter``). Default: ``$MFKIT_ML100K_DIR``,
        else the cache, filled by :func:`fetch_movielens_100k` when empty.
    """
    if path is None:
        path = os.environ.get("MFKIT_ML100K_DIR")
    if path is None:
        path = fetch_movielens_100k(cache_dir)
    path = _folder(path)
    if (path / "u.data").exists():
        return read_grouplens_100k(path)
    if (path / "ml-100k.inter").exists():
        return read_recbole_100k(path)
    raise DataNotFoundError(f"{path} holds neither u.data (GroupLens layout) nor ml-100k.inter (RecBole layout). "
                            + HOW_TO_GET.format(cache=data_home(cache_dir) / "ml-100k", wheel=RECBOLE_WHEEL))
