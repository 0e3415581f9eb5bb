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

from ._io import DataFormatError, DataNotFoundError, _line, _line_numbers, data_home, read_table
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


def _check_ratings(df: pd.DataFrame, path: Path, low: float, high: float, header: bool = False) -> None:
    """Ratings within [low, high] and whole-number user and item ids; the error names the file line."""
    checks = [(~df["rating"].between(low, high).to_numpy(), f"a rating between {low} and {high}")]
    for col in ("user", "item"):
        v = df[col].to_numpy(np.float64)
        checks.append(((v % 1 != 0) | (v < 0), f"a whole, non-negative {col} id"))
    for bad, expected in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            line = _line_numbers(path, "utf-8", header, len(df))[i]
            raise DataFormatError(path, line, expected, _line(path, line, "latin-1"))


def read_grouplens_100k(folder) -> Interactions:
    """Read GroupLens' ``u.data`` (tab-separated user, item, rating, timestamp) and ``u.item`` ('|', Latin-1)."""
    folder = Path(folder)
    names = ["user", "item", "rating", "timestamp"]
    df = read_table(folder / "u.data", "\t", names, numeric=names)
    _check_ratings(df, folder / "u.data", 1, 5)
    items = None
    if (folder / "u.item").exists():
        columns = ["item", "title", "date", "video", "url"] + [f"g{i}" for i in range(19)]
        raw = read_table(folder / "u.item", "|", columns,
                         numeric=["item"], encoding="latin-1",
                         expected="24 '|'-separated fields (movie id|title|release date|video date|URL|19 genre flags)")
        # GroupLens titles end with the year, "Toy Story (1995)": split it off so both layouts read alike.
        parts = raw["title"].str.extract(r"^(.*?)\s*\((\d{4})\)\s*$")
        title = parts[0].fillna(raw["title"]).str.strip()
        items = pd.DataFrame({"title": title.to_numpy(), "year": pd.to_numeric(parts[1]).to_numpy()},
                             index=pd.Index(raw["item"].astype(np.int64).to_numpy(), name="item"))
    return _ratings_interactions(df, items, "ml-100k")


def read_recbole_100k(folder) -> Interactions:
    """Read RecBole's atomic files ``ml-100k.inter`` (with a typed header line) and ``ml-100k.item``."""
    folder = Path(folder)
    names = ["user", "item", "rating", "timestamp"]
    inter = folder / "ml-100k.inter"
    with open(inter, encoding="utf-8") as f:
        head = f.readline().rstrip("\r\n")
    if head.split("\t") != ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]:
        raise DataFormatError(inter, 1,
                              "the header 'user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float'",
                              head)
    df = read_table(inter, "\t", names, numeric=names, header=True)
    _check_ratings(df, inter, 1, 5, header=True)
    items = None
    if (folder / "ml-100k.item").exists():
        raw = read_table(folder / "ml-100k.item", "\t", ["item", "title", "year", "genres"], numeric=["item"],
                         header=True)
        items = pd.DataFrame({"title": raw["title"].to_numpy(),
                              "year": pd.to_numeric(raw["year"], errors="coerce").to_numpy()},  # 'unkonwn' → NaN
                             index=pd.Index(raw["item"].astype(np.int64).to_numpy(), name="item"))
    return _ratings_interactions(df, items, "ml-100k")


def load_movielens_csv(folder) -> Interactions:
    """Read the ml-latest-small layout: ``ratings.csv`` (userId,movieId,rating,timestamp) and ``movies.csv``.

    ``movies.csv`` quotes titles that contain commas (``"American President, The (1995)"``); the csv reader
    handles them. Used by: Chapter 1 (the readers), for readers who bring a larger MovieLens.
    """
    folder = Path(folder)
    path = folder / "ratings.csv"
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist: expected the ratings.csv of a MovieLens 'latest' download "
                                "(https://grouplens.org/datasets/movielens/)")
    expected = ["userId", "movieId", "rating", "timestamp"]
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.readline().rstrip("\r\n")
    if head.split(",") != expected:
        raise DataFormatError(path, 1, f"the header {','.join(expected)}", head)
    names = ["user", "item", "rating", "timestamp"]
    df = read_table(path, ",", names, numeric=names, header=True,
                    expected="4 comma-separated fields (userId,movieId,rating,timestamp)")
    _check_ratings(df, path, 0.5, 5, header=True)
    items = None
    if (folder / "movies.csv").exists():
        movies_path = folder / "movies.csv"
        try:  # quoted titles with commas: the csv reader handles them
            movies = pd.read_csv(movies_path, dtype=str, keep_default_na=False)
        except pd.errors.ParserError as e:
            raise DataFormatError(movies_path, None, "3 comma-separated fields (movieId,title,genres)", str(e)) from e
        if list(movies.columns) != ["movieId", "title", "genres"]:
            raise DataFormatError(movies_path, 1, "the header movieId,title,genres", ",".join(movies.columns))
        ids = pd.to_numeric(movies["movieId"], errors="coerce")
        if ids.isna().any():
            i = int(np.flatnonzero(ids.isna().to_numpy())[0])
            raise DataFormatError(movies_path, i + 2, "a number in column movieId", ",".join(movies.iloc[i]))
        parts = movies["title"].str.extract(r"^(.*?)\s*\((\d{4})\)\s*$")
        items = pd.DataFrame({"title": parts[0].fillna(movies["title"]).to_numpy(),
                              "year": pd.to_numeric(parts[1]).to_numpy()},
                             index=pd.Index(ids.to_numpy(np.int64), name="item"))
    return _ratings_interactions(df, items, folder.name)


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
    path = Path(path)
    if (path / "u.data").exists():
        return read_grouplens_100k(path)
    if (path / "ml-100k.inter").exists():
        return read_recbole_100k(path)
    raise DataNotFoundError(f"{path} holds neither u.data (GroupLens layout) nor ml-100k.inter (RecBole layout). "
                            + HOW_TO_GET.format(cache=data_home(cache_dir) / "ml-100k", wheel=RECBOLE_WHEEL))
