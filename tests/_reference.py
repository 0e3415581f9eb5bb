"""Slow, obviously-correct reference readers, test writers and file corruptions (issue 11).

The property tests (``test_properties.py``) and the bad-input census (``test_bad_input.py``) read every generated or
corrupted file twice: with mfkit and with these line-by-line readers written from the formats' specifications alone.
mfkit must return exactly what the reference returns, or raise a ``ValueError`` naming the file and a line where the
reference refuses the file. Nothing here imports mfkit's parsing code.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np


class Refused(Exception):
    """The reference reader refuses the input (``line``: 1-based, or None for the whole file)."""

    def __init__(self, line, why):
        super().__init__(f"line {line}: {why}")
        self.line = line


# -- Netflix Prize formats -----------------------------------------------------------------------------------------
_NETFLIX_LINE = {
    "combined": re.compile(r"([0-9]{1,8}),([1-5]),([0-9]{4})-([0-9]{2})-([0-9]{2})"),
    "qualifying": re.compile(r"([0-9]{1,8}),([0-9]{4})-([0-9]{2})-([0-9]{2})"),
    "probe": re.compile(r"([0-9]{1,8})"),
}
_EPOCH = dt.date(1970, 1, 1)


def _day(y, m, d, line):
    y, m, d = int(y), int(m), int(d)
    if not 1800 <= y <= 2199:
        raise Refused(line, "year")
    try:
        return (dt.date(y, m, d) - _EPOCH).days
    except ValueError:
        raise Refused(line, "date") from None


def read_netflix(data: bytes, kind: str) -> dict:
    """``MovieID:`` blocks of data lines. Lines end with ``\\n`` or ``\\r\\n`` (the last may lack it); blank lines
    only at the end; each block non-empty; each MovieID one block; each CustomerID once per block."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    text = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    while text and text[-1] == b"":
        text.pop()
    if not text:
        raise Refused(None, "empty")
    cols = {"movie": [], "user": [], "rating": [], "date": []}
    movie, block_users, block_line, seen_movies = None, set(), 0, set()
    pattern = _NETFLIX_LINE[kind]
    for n, raw in enumerate(text, start=1):
        try:
            s = raw.decode("ascii")
        except UnicodeDecodeError:
            raise Refused(n, "not ascii") from None
        m = re.fullmatch(r"([0-9]{1,8}):", s)
        if m:
            if movie is not None and not block_users:
                raise Refused(block_line, "empty block")
            movie = int(m.group(1))
            if movie in seen_movies:
                raise Refused(n, "second block of a movie")
            seen_movies.add(movie)
            block_users, block_line = set(), n
            continue
        m = pattern.fullmatch(s)
        if not m or movie is None:
            raise Refused(n, "bad line")
        user = int(m.group(1))
        if kind == "combined":
            cols["rating"].append(int(m.group(2)))
            cols["date"].append(_day(*m.group(3, 4, 5), n))
        elif kind == "qualifying":
            cols["date"].append(_day(*m.group(2, 3, 4), n))
        if user in block_users:
            raise Refused(n, "customer twice in a block")
        block_users.add(user)
        cols["movie"].append(movie)
        cols["user"].append(user)
    if not block_users:
        raise Refused(block_line, "empty block")
    return {k: np.asarray(v, dtype=np.int64) for k, v in cols.items() if v or k in ("movie", "user")}


def write_netflix(blocks: dict, kind: str, newline: str = "\n", final_newline: bool = True) -> bytes:
    """``{movie: [(user, rating, day), ...]}`` in the Kaggle layout."""
    out = []
    for movie, rows in blocks.items():
        out.append(f"{movie}:")
        for user, rating, day in rows:
            date = (_EPOCH + dt.timedelta(days=int(day))).isoformat()
            out.append({"combined": f"{user},{rating},{date}", "qualifying": f"{user},{date}",
                        "probe": f"{user}"}[kind])
    text = newline.join(out) + (newline if final_newline else "")
    return text.encode("ascii")


def read_titles(data: bytes) -> dict:
    """``MovieID,YearOfRelease,Title``: Latin-1, split on the first two commas; year digits (<= 4) or NULL."""
    text = data.decode("latin-1")
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise Refused(None, "empty")
    out = {}
    for n, line in enumerate(lines, start=1):
        parts = line.split(",", 2)
        if len(parts) < 3 or not re.fullmatch(r"[0-9]{1,9}", parts[0]) \
                or not (parts[1] == "NULL" or re.fullmatch(r"[0-9]{1,4}", parts[1])):
            raise Refused(n, "bad line")
        movie = int(parts[0])
        if movie < 1 or movie in out:
            raise Refused(n, "movie id")
        out[movie] = (None if parts[1] == "NULL" else int(parts[1]), parts[2])
    return out


# -- delimited MovieLens files -------------------------------------------------------------------------------------
def read_delimited(data: bytes, sep: str, n_fields: int, header: bool, integer: list[int], decimal: list[int],
                   rating_range: tuple[float, float], rating_col: int, pair: tuple[int, int],
                   encoding: str = "utf-8") -> list[tuple]:
    """Lines end with ``\\n``, ``\\r\\n`` or ``\\r``; lines of only spaces (and tabs, unless ``sep`` is a tab) are
    skipped; every other line has ``n_fields`` fields; integer fields are 1-18 digits, decimal fields digits with an
    optional fraction (spaces around both allowed); ratings within range; each (user, item) pair once."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise Refused(None, "encoding") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blank = " " if sep == "\t" else " \t"
    rows, seen = [], {}
    for n, line in enumerate(lines, start=1):
        if header and n == 1:
            continue
        if line.strip(blank) == "" and all(c in blank for c in line):
            continue
        fields = line.split(sep)
        if len(fields) != n_fields:
            raise Refused(n, "field count")
        values = list(fields)
        for j in integer + decimal:
            f = fields[j].strip(" ")
            ok = re.fullmatch(r"[0-9]{1,18}", f) if j in integer else \
                re.fullmatch(r"[0-9]{1,18}(?:\.[0-9]*)?|\.[0-9]+", f)
            if not ok:
                raise Refused(n, f"field {j}")
            values[j] = int(f) if j in integer else float(f)
        if not rating_range[0] <= values[rating_col] <= rating_range[1]:
            raise Refused(n, "rating range")
        key = (values[pair[0]], values[pair[1]])
        if key in seen:
            raise Refused(n, "duplicate pair")
        seen[key] = n
        rows.append(tuple(values))
    if not rows:
        raise Refused(None, "no data lines")
    return rows


RATING_LAYOUTS = {  # name -> (file name, separator, header line, rating range)
    "u.data": ("u.data", "\t", None, (1, 5)),
    "ratings.csv": ("ratings.csv", ",", "userId,movieId,rating,timestamp", (0.5, 5)),
    "ml-100k.inter": ("ml-100k.inter", "\t", "user_id:token\titem_id:token\trating:float\ttimestamp:float", (1, 5)),
}


def read_ratings(data: bytes, layout: str) -> list[tuple]:
    """A MovieLens ratings file of one of ``RATING_LAYOUTS``: (user, item, rating as float32, timestamp) rows."""
    _, sep, header, scale = RATING_LAYOUTS[layout]
    if header is not None:
        first = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n").split("\n")[0]
        if first != header:
            raise Refused(1, "header")
    rows = read_delimited(data, sep, 4, header is not None, integer=[0, 1, 3], decimal=[2],
                          rating_range=scale, rating_col=2, pair=(0, 1))
    return [(u, i, float(np.float32(r)), t) for u, i, r, t in rows]


# -- corruptions ---------------------------------------------------------------------------------------------------
ALPHABET = b"0123456789,:-\n\r\t .|x\x00\xe9\"NULL"
MUTATIONS = ("flip", "delete", "insert", "delete_line", "duplicate_line", "swap_lines", "truncate", "repeat_block")


def corrupt(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One random corruption of ``data`` (a byte flipped, deleted or inserted; a line deleted, repeated or moved;
    the file truncated; a stretch repeated)."""
    if not data:
        return bytes([ALPHABET[rng.integers(len(ALPHABET))]])
    pos = int(rng.integers(len(data)))
    byte = bytes([ALPHABET[rng.integers(len(ALPHABET))]])
    lines = data.split(b"\n")
    i, j = int(rng.integers(len(lines))), int(rng.integers(len(lines)))
    if kind == "flip":
        return data[:pos] + byte + data[pos + 1:]
    if kind == "delete":
        return data[:pos] + data[pos + 1:]
    if kind == "insert":
        return data[:pos] + byte + data[pos:]
    if kind == "delete_line":
        return b"\n".join(lines[:i] + lines[i + 1:])
    if kind == "duplicate_line":
        return b"\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
    if kind == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if kind == "truncate":
        return data[:pos]
    if kind == "repeat_block":
        lo, hi = sorted((i, j))
        return b"\n".join(lines[:hi + 1] + lines[lo:hi + 1] + lines[hi + 1:])
    raise ValueError(kind)
