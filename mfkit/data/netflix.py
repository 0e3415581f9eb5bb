"""Netflix Prize readers: ``combined_data_*.txt``, ``probe.txt``, ``qualifying.txt``, ``movie_titles.csv``.

The files (Kaggle data set "netflix-prize-data", the data of the Netflix Prize, Netflix Inc. 2006; Bennett & Lanning,
"The Netflix Prize", KDD Cup and Workshop 2007) hold 100,480,507 ratings as blocks: a line ``MovieID:`` and then one
line ``CustomerID,Rating,YYYY-MM-DD`` per rating of that movie. About 2 GB of text: a Python loop per line (the seed
notebook's ``re.match`` per line) spends half an hour on it, so this parser reads byte chunks and parses each chunk
as a whole with numpy:

1. the chunk is cut at its last newline (the rest is carried into the next chunk, so neither a rating line nor a
   ``MovieID:`` header is ever split, and a movie's block may run over any number of chunks);
2. one vectorised pass finds the newlines; a line ending in ``:`` is a movie header, any other a rating line;
3. the fields sit at fixed offsets from the end of a rating line (``,R,YYYY-MM-DD`` is 13 bytes), so each field is a
   gather at ``line_end - offset``; the variable-length CustomerID (at most 8 digits) is read as one little-endian
   64-bit word and converted with the SWAR digit trick (Lemire 2018, "Parsing series of integers with SIMD"), which
   also tells in a few integer operations whether all 8 bytes are digits;
4. every check (digits, separators, rating 1–5, a real calendar date, a header before the first rating) is a boolean
   array; the first failing line is then looked up and reported with its file name and 1-based line number.

Peak memory is the output arrays (11 bytes per rating, 1.1 GB for the full data) plus a few times one chunk. Chunks
of about a megabyte are faster than large ones: the per-line temporaries (a few 8-byte words per line) then stay in
the CPU cache instead of streaming through memory.

Used by: Chapter 1 (parsing, the Netflix sample), Chapter 6 (the probe hold-out, protocol N2).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import progress
from ._io import DataFormatError, DataNotFoundError, _line, data_home
from ._netflix_ratings import NetflixRatings
from .interactions import Interactions, dense_index
from .synthetic import netflix_sample_dir

__all__ = ["NetflixRatings", "parse_combined_data", "read_probe", "read_qualifying", "read_movie_titles",
           "load_netflix", "netflix_cache_path", "NETFLIX_HOW_TO_GET"]

logger = logging.getLogger("mfkit.data")

CHUNK_BYTES = 1 << 20  # small enough that the per-line temporaries stay in the CPU cache (measured fastest)
_PAD = 32  # bytes kept in front of each chunk so that gathers at (line start - 20) never leave the buffer
_CACHE_VERSION = "2"  # bump when the parser or the cache layout changes: old caches are then rebuilt

NETFLIX_HOW_TO_GET = (
    "The Netflix Prize data was not found{where}. Download the Kaggle data set \"netflix-prize-data\" "
    "(https://www.kaggle.com/datasets/netflix-inc/netflix-prize-data: combined_data_1.txt ... combined_data_4.txt, "
    "probe.txt, qualifying.txt, movie_titles.csv), unzip it, and either set the environment variable "
    "MFKIT_NETFLIX_DIR to that folder or pass the folder: load_netflix('/path/to/netflix-prize-data'). "
    "Without it, mfkit.data.netflix_sample_dir() gives a generated stand-in in exactly the same format."
)


# ---------------------------------------------------------------------------------------------------------------------
# Vectorised field parsing
# ---------------------------------------------------------------------------------------------------------------------
_U = np.uint64
_ZEROS = _U(0x3030303030303030)  # eight ASCII '0'
_HIGH = _U(0x8080808080808080)
_OVER9 = _U(0x7676767676767676)  # byte + 0x76 sets the high bit iff byte > 9
_BYTE = _U(0xFF)


def _word(text: bytes) -> np.uint64:
    """8 bytes as the little-endian word a gather reads (first character in the lowest byte)."""
    return _U(int.from_bytes(text, "little"))


def _u64_view(buf: np.ndarray) -> np.ndarray:
    """Every byte offset of ``buf`` as the start of a little-endian uint64: one gather reads 8 bytes of a line."""
    return np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))


def _not_digits(x: np.ndarray) -> np.ndarray:
    """For words XOR-ed with ASCII '0's: True where some byte is not 0..9 (i.e. was not a digit).

    A byte above 9 gets its high bit set by +0x76 (or has it already); a carry only reaches higher bytes, so the
    lowest offending byte is always caught.
    """
    return ((x | (x + _OVER9)) & _HIGH) != 0


def _parse_uint(u64: np.ndarray, end: np.ndarray, ndigits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse the ``ndigits`` (1..8) ASCII digits ending just before byte ``end``; returns (value, bad)."""
    window = u64[end - 8]
    nd = np.clip(ndigits, 1, 8)
    bad = nd != ndigits
    shift = ((8 - nd) * 8).astype(np.uint64)
    # XOR with '0' turns digits into 0..9; the shifts clear the bytes before the number (leading zeros)
    x = ((window ^ _ZEROS) >> shift) << shift
    bad |= _not_digits(x)
    # SWAR: pairs, then quadruples, then the 8-digit value (Lemire's parse_eight_digits_unrolled)
    v = x * _U(10) + (x >> _U(8))
    v = (((v & _U(0x000000FF000000FF)) * _U(0x000F424000000064))
         + (((v >> _U(16)) & _U(0x000000FF000000FF)) * _U(0x0000271000000001))) >> _U(32)
    return v, bad


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm, vectorised; years >= 1)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_FIRST_YEAR, _N_YEARS = 1800, 400  # dates from 1800-01-01 to 2199-12-31 are accepted
_INVALID_DAY = np.iinfo(np.int32).min
_DATE_TABLE: np.ndarray | None = None


def _date_table() -> np.ndarray:
    """Days since 1970-01-01 at index ``(year - 1800) << 9 | month << 5 | day``; ``_INVALID_DAY`` where no date.

    A 800 KB table turns date conversion and calendar checks (February 30th...) into one gather per rating.
    """
    global _DATE_TABLE
    if _DATE_TABLE is None:
        y = np.arange(_FIRST_YEAR, _FIRST_YEAR + _N_YEARS)[:, None, None]
        m = np.arange(16)[None, :, None]
        d = np.arange(32)[None, None, :]
        leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
        month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0, 0, 0])[m] + ((m == 2) & leap)
        valid = (d >= 1) & (d <= month_days)
        days = _days_from_civil(y, np.clip(m, 1, 12), d)
        _DATE_TABLE = np.where(valid, days, _INVALID_DAY).astype(np.int32).reshape(-1)
    return _DATE_TABLE


# The 8 bytes "YY-MM-DD" ending a line; '0' at digits so that XOR leaves digits 0..9 and separators 0.
_DATE_PATTERN, _DATE_SEPS = _word(b"00-00-00"), _word(b"\0\0\xff\0\0\xff\0\0")
# The 8 bytes before them: ",R,YYYY-" in combined_data (R: the rating) and ",YYYY-MM" in qualifying.
_HEAD = {"combined": (13, _word(b",0,0000-"), _word(b"\xff\0\xff\0\0\0\0\xff"), 24),
         "qualifying": (11, _word(b",0000-00"), _word(b"\xff\0\0\0\0\xff\0\0"), 8)}


def _parse_date(u64: np.ndarray, end: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Parse the line tail (",R,YYYY-MM-DD" or ",YYYY-MM-DD") ending before byte ``end``: (days, bad, rating)."""
    offset, pattern, seps, century_shift = _HEAD[kind]
    xa = u64[end - offset] ^ pattern
    xb = u64[end - 8] ^ _DATE_PATTERN
    bad = ((xa & seps) | (xb & _DATE_SEPS)) != 0
    bad |= _not_digits(xa) | _not_digits(xb)
    rating = None
    if kind == "combined":
        rating = (xa >> _U(8)) & _BYTE
        bad |= (rating - _U(1)) > _U(4)  # 1..5 (0 wraps around to a huge number)
    pa = xa * _U(10) + (xa >> _U(8))  # byte j: 10 * digit j + digit j+1
    pb = xb * _U(10) + (xb >> _U(8))
    year = ((pa >> _U(century_shift)) & _BYTE) * _U(100) + (pb & _BYTE) - _U(_FIRST_YEAR)
    month = (pb >> _U(24)) & _BYTE
    day = (pb >> _U(48)) & _BYTE
    bad |= (year >= _U(_N_YEARS)) | (month > _U(15)) | (day > _U(31))
    index = (year << _U(9)) | (month << _U(5)) | day
    days = _date_table()[np.where(bad, _U(0), index)]
    bad |= days == _INVALID_DAY
    return days, bad, rating


# ---------------------------------------------------------------------------------------------------------------------
# The chunked reader, shared by combined_data, probe and qualifying files
# ---------------------------------------------------------------------------------------------------------------------
# kind -> (bytes after the CustomerID, shortest valid line with its newline, text used in error messages)
_KINDS = {
    "combined": (13, 15, "CustomerID,Rating,YYYY-MM-DD"),
    "qualifying": (11, 13, "CustomerID,YYYY-MM-DD"),
    "probe": (0, 2, "CustomerID"),
}


def _describe(kind: str, line: str, has_movie: bool) -> str:
    """What was expected on one offending line (only runs once, to word the error)."""
    layout = _KINDS[kind][2]
    if line.strip() == "":
        return f"no blank line before the end of the file (a 'MovieID:' header or a '{layout}' line)"
    if line.endswith(":"):
        return "a movie header 'MovieID:' with a MovieID of 1 to 8 digits"
    if not has_movie:
        return f"a 'MovieID:' header line before the first '{layout}' line"
    fields = line.split(",")
    n_fields = layout.count(",") + 1
    if len(fields) != n_fields:
        plural = "s" if n_fields > 1 else ""
        return f"a '{layout}' line ({n_fields} comma-separated field{plural}) or a 'MovieID:' header"
    if not re.fullmatch(r"[0-9]{1,8}", fields[0]):
        return f"a numeric CustomerID of 1 to 8 digits in a '{layout}' line"
    if kind == "combined" and not re.fullmatch(r"[1-5]", fields[1]):
        return "a rating from 1 to 5 in a 'CustomerID,Rating,YYYY-MM-DD' line"
    if kind != "probe":
        return f"a valid calendar date YYYY-MM-DD (years 1800 to 2199) in a '{layout}' line"
    return f"a '{layout}' line"


class _ChunkParser:
    """Parses one file chunk by chunk; keeps the state that crosses chunks (current movie, line count)."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self.movie = -1  # MovieID of the block in progress (-1: no header seen yet)
        self.lines_before = 0  # lines in earlier chunks
        self.blank_line = 0  # 1-based number of a blank line seen before any later content (0: none pending)
        self.n_content = 0  # non-blank lines seen
        self.pending_header = 0  # 1-based line of a header still waiting for its first data line (0: none)
        self.pending_text = ""
        self.header_ids: list[np.ndarray] = []  # MovieIDs of the headers, per chunk
        self.header_lines: list[np.ndarray] = []  # and their 1-based line numbers

    def empty_block(self, line_no: int, text: str):
        layout = _KINDS[self.kind][2]
        raise DataFormatError(self.path, line_no, f"at least one '{layout}' line after the movie header "
                              "(a header with no lines below it)", text)

    def _fail(self, buf, starts, ends, i, has_movie):
        line_no = self.lines_before + int(i) + 1
        text = bytes(buf[starts[i]:ends[i]]).decode("latin-1")
        raise DataFormatError(self.path, line_no, _describe(self.kind, text, has_movie), text)

    def parse(self, buf: np.ndarray, n: int) -> dict[str, np.ndarray]:
        """Parse ``buf[_PAD:_PAD + n]``, which ends with a newline; returns this chunk's columns."""
        data = buf[:_PAD + n]  # the pad holds spaces: no newline, no ':'
        u64 = _u64_view(data)
        nl = np.flatnonzero(data == 10)
        n_lines = len(nl)
        starts = np.empty(n_lines, dtype=np.int64)
        starts[0] = _PAD
        starts[1:] = nl[:-1] + 1
        cr = data[nl - 1] == 13
        ends = nl - cr if cr.any() else nl  # Windows line endings: drop the \r
        header = data[ends - 1] == 58  # ':' (a blank line's "last byte" is the previous newline or the pad)
        first_bad = n_lines  # index of the first offending line in this chunk

        blank = starts == ends
        any_blank = bool(blank.any())
        if self.blank_line:  # a blank line in an earlier chunk, and content follows: not the file's end
            if not blank.all():
                raise DataFormatError(self.path, self.blank_line, _describe(self.kind, "", True), "")
        if any_blank:  # blank lines are only accepted at the end of the file
            b = int(np.argmax(blank))
            if not blank[b:].all():
                first_bad = b
            elif not self.blank_line:
                self.blank_line = self.lines_before + b + 1
            rating_line = ~(header | blank)
        else:
            rating_line = ~header

        h = np.flatnonzero(header)
        # a movie header must be followed by a data line: an empty block (or a header-only file) is refused
        if self.pending_header and n_lines and not rating_line[0]:
            self.empty_block(self.pending_header, self.pending_text)
        self.pending_header = 0
        empty_block = n_lines
        if len(h):
            nxt = h + 1
            inside = nxt < n_lines
            empty = np.zeros(len(h), dtype=bool)
            empty[inside] = ~rating_line[nxt[inside]]
            if empty.any():
                empty_block = int(h[np.argmax(empty)])
        hend = ends[h] - 1
        movie_ids, hbad = _parse_uint(u64, hend, hend - starts[h])
        movie_ids = movie_ids.astype(np.int64)
        if hbad.any():
            first_bad = min(first_bad, int(h[np.argmax(hbad)]))

        r = np.flatnonzero(rating_line)
        e = ends[r]
        suffix = _KINDS[self.kind][0]
        user, bad = _parse_uint(u64, e - suffix, e - suffix - starts[r])
        out = {"user": user}
        if self.kind != "probe":
            days, dbad, rating = _parse_date(u64, e, self.kind)
            bad |= dbad
            out["date"] = days
            if rating is not None:
                out["rating"] = rating
        if bad.any():
            first_bad = min(first_bad, int(r[np.argmax(bad)]))

        # The block of each rating line: the number of headers above it, minus one (-1: the block carried in).
        # Before the first blank line every line is a header or a rating line, so that count is r - rank.
        block = r - np.arange(len(r)) - 1
        if self.movie < 0 and len(r) and block[0] < 0:
            first_bad = min(first_bad, int(r[0]))
        if empty_block < first_bad:
            i = empty_block
            self.empty_block(self.lines_before + i + 1, bytes(data[starts[i]:ends[i]]).decode("latin-1"))
        if first_bad < n_lines:
            has_movie = self.movie >= 0 or bool(len(h) and h[0] < first_bad)
            self._fail(data, starts, ends, first_bad, has_movie)
        if len(h):
            self.header_ids.append(movie_ids)
            self.header_lines.append(self.lines_before + h + 1)
            if h[-1] == n_lines - 1:  # the chunk ends with a header: its first data line must open the next chunk
                self.pending_header = self.lines_before + int(h[-1]) + 1
                self.pending_text = bytes(data[starts[h[-1]]:ends[h[-1]]]).decode("latin-1")
        carried = np.append(movie_ids, self.movie)  # index -1 picks the carried movie
        out["movie"] = carried[block]
        if len(h):
            self.movie = int(movie_ids[-1])
        self.n_content += n_lines - (int(blank.sum()) if any_blank else 0)
        self.lines_before += n_lines
        return out


def _check_unique_movies(parsed: list) -> None:
    """Each MovieID heads one block in all the files together (a repeated block would add its lines twice)."""
    ids = [np.concatenate(p.header_ids) for _, p in parsed]
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    _, first, counts = np.unique(all_ids, return_index=True, return_counts=True)
    if not (counts > 1).any():
        return
    movie = all_ids[first[np.argmax(counts > 1)]]
    where = [(path, int(line)) for (path, p), i in zip(parsed, ids)
             for line in np.concatenate(p.header_lines)[i == movie]]
    (path, line), (path0, line0) = where[1], where[0]
    raise DataFormatError(path, line, f"each MovieID to head one block (MovieID {int(movie)} already heads the block "
                          f"at {path0}, line {line0})", f"{int(movie)}:")


def _check_blocks(path: Path, parser: "_ChunkParser", user: np.ndarray, movie: np.ndarray) -> None:
    """No CustomerID twice in one movie's block (a repeated line would count a rating twice).

    One scatter and one gather per block of two or more lines: ``pos[user] = 0..m-1`` keeps one position per
    CustomerID, so a CustomerID listed twice reads back a position other than its own at least once (whichever
    write wins).
    """
    n = len(user)
    if n < 2:
        return
    starts = np.flatnonzero(np.r_[True, movie[1:] != movie[:-1]])
    ends = np.r_[starts[1:], n]
    big = np.flatnonzero(ends - starts > 1)
    if not len(big):
        return
    ids = user
    if int(user.max()) >= 4 * n + (1 << 22):  # very sparse ids: a dense index keeps the table small
        ids = dense_index(user)[1]
    pos = np.empty(int(ids.max()) + 1, dtype=np.int32)
    arange = np.arange(int((ends - starts).max()), dtype=np.int32)
    for b, s, e in zip(big.tolist(), starts[big].tolist(), ends[big].tolist()):
        u = ids[s:e]
        pos[u] = arange[:e - s]
        if (pos[u] != arange[:e - s]).any():
            seen = {}
            for j, x in enumerate(u.tolist()):
                if x in seen:
                    break
                seen[x] = j
            # the line of rating row r: the ratings above it plus the headers of its block and those before
            row = s + j
            line = row + int(b) + 2
            first_line = s + seen[x] + int(b) + 2
            layout = _KINDS[parser.kind][2]
            raise DataFormatError(path, line, f"each CustomerID once per movie (CustomerID {int(user[row])} already "
                                  f"has a '{layout}' line for MovieID {int(movie[row])} at line {first_line})",
                                  _line(path, line, "latin-1"))


def _after_last_newline(buf: np.ndarray, lo: int, hi: int) -> int:
    """Index just after the last newline in ``buf[lo:hi]`` (``lo`` when there is none), searching from the end."""
    window = 4096
    while hi > lo:
        start = max(lo, hi - window)
        pos = bytes(buf[start:hi]).rfind(b"\n")
        if pos >= 0:
            return start + pos + 1
        hi, window = start, window * 4
    return lo


def _read_chunks(paths: list[Path], kind: str, columns: dict[str, np.dtype], show_progress, chunk_bytes: int,
                 desc: str) -> dict[str, np.ndarray]:
    """Run :class:`_ChunkParser` over the files, filling preallocated output arrays (no concatenation copy)."""
    sizes = [p.stat().st_size for p in paths]
    min_line = _KINDS[kind][1]
    # an upper bound on the number of data lines; untouched pages of np.empty cost no memory and are freed below
    capacity = sum(s // min_line + 1 for s in sizes)
    out = {name: np.empty(capacity, dtype=dt) for name, dt in columns.items()}
    n_out = 0
    bar = progress(total=sum(sizes), unit="B", unit_scale=True, desc=desc, enabled=show_progress)
    try:
        headers = []
        for path, size in zip(paths, sizes):
            file_start = n_out
            if size == 0:
                raise DataFormatError(path, None, f"'MovieID:' headers and '{_KINDS[kind][2]}' lines", "an empty file")
            parser = _ChunkParser(path, kind)
            buf = np.empty(_PAD + chunk_bytes + 1, dtype=np.uint8)
            buf[:_PAD] = 32
            n_carry = 0
            with open(path, "rb") as f:
                while True:
                    if len(buf) - 1 - _PAD - n_carry < max(chunk_bytes // 2, 1):  # a line longer than a chunk
                        buf = np.concatenate([buf, np.empty(max(chunk_bytes, 1), np.uint8)])
                    n_read = f.readinto(memoryview(buf)[_PAD + n_carry:len(buf) - 1])
                    bar.update(n_read)
                    n = n_carry + n_read
                    eof = n_read == 0
                    if eof:
                        if n == 0:
                            break
                        if buf[_PAD + n - 1] != 10:  # no final newline
                            buf[_PAD + n] = 10
                            n += 1
                        cut = n
                    else:
                        # cut after the last newline; what follows is carried into the next chunk
                        cut = _after_last_newline(buf, _PAD, _PAD + n) - _PAD
                        if cut <= 0:
                            n_carry = n
                            continue
                    cols = parser.parse(buf, cut)
                    k = len(cols["user"])
                    if n_out + k > capacity:  # cannot happen for valid lines; guard against a wrong bound
                        raise RuntimeError("internal error: output capacity exceeded")
                    for name in columns:
                        if name == "movie" and out[name].dtype == np.int16 and len(cols[name]) \
                                and cols[name].max() > np.iinfo(np.int16).max:
                            out[name] = out[name].astype(np.int32)  # MovieIDs beyond int16: widen once
                        out[name][n_out:n_out + k] = cols[name]
                    n_out += k
                    rest = n - cut
                    if rest:
                        buf[_PAD:_PAD + rest] = buf[_PAD + cut:_PAD + n].copy()
                    n_carry = rest
                    if eof:
                        break
            if parser.n_content == 0:
                raise DataFormatError(path, None, f"'MovieID:' headers and '{_KINDS[kind][2]}' lines",
                                      "an empty file")
            if parser.pending_header:
                parser.empty_block(parser.pending_header, parser.pending_text)
            headers.append((path, parser))
            _check_unique_movies(headers)  # first: then each movie's lines form one run of the output
            _check_blocks(path, parser, out["user"][file_start:n_out], out["movie"][file_start:n_out])
    finally:
        bar.close()
    for name in columns:  # shrink in place (realloc): no second copy of the output
        try:
            out[name].resize(n_out, refcheck=False)
        except ValueError:
            out[name] = out[name][:n_out].copy()
    return out


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p).expanduser() for p in paths]
    if not paths:
        raise ValueError("no files given")
    for p in paths:
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a directory, expected a file (to read a whole Netflix folder use "
                                    "load_netflix(folder))")
        if not p.is_file():
            raise DataNotFoundError(f"{p} does not exist. " + NETFLIX_HOW_TO_GET.format(where=f" at {p}"))
    resolved = [p.resolve() for p in paths]
    for j, p in enumerate(resolved):
        if p in resolved[:j]:
            raise ValueError(f"{paths[j]} is given twice: its ratings would be read twice")
    return paths


def parse_combined_data(paths, show_progress: bool | None = None, chunk_bytes: int = CHUNK_BYTES) -> NetflixRatings:
    """Parse Netflix Prize ``combined_data_*.txt`` files, vectorised, in bounded memory.

    Parameters
    ----------
    paths : path or list of paths
        One or more files of ``MovieID:`` blocks of ``CustomerID,Rating,YYYY-MM-DD`` lines, parsed in order.
    show_progress : bool, optional
        Progress bar over bytes; default on unless ``$MFKIT_PROGRESS=0``.
    chunk_bytes : int
        Bytes read and parsed at a time (1 MB by default, fastest on the machines measured). Peak memory is the
        output (11 bytes per rating) plus a few times this. Any size works: lines longer than a chunk grow it.

    Returns
    -------
    NetflixRatings
        One entry per rating line, in file order: nothing is dropped.

    Raises
    ------
    DataFormatError
        On a malformed line, a rating line before any ``MovieID:`` header, a rating outside 1–5, a non-numeric
        field, an impossible date, a blank line before the end, a header with no lines below it (a header-only
        file included), a MovieID heading a second block, a CustomerID listed twice in one block, or an empty file
        — naming the file, the 1-based line and what was expected. Windows line endings, a missing final newline
        and trailing blank lines are fine.
    IsADirectoryError, DataNotFoundError, ValueError
        A path that is a folder, a missing file (the message says how to get the data), a file given twice.

    Notes
    -----
    Used by Chapter 1 (timed against the seed's ``re.match`` per line) and by :func:`load_netflix`.
    Data: the Netflix Prize (Bennett & Lanning 2007).
    """
    paths = _as_paths(paths)
    cols = _read_chunks(paths, "combined", {"user": np.int32, "movie": np.int16, "rating": np.int8,
                                            "date": np.int32}, show_progress, chunk_bytes, "parsing Netflix ratings")
    return NetflixRatings(cols["user"], cols["movie"], cols["rating"], cols["date"])


def read_probe(path, chunk_bytes: int = CHUNK_BYTES) -> pd.DataFrame:
    """Read ``probe.txt`` (``MovieID:`` blocks of ``CustomerID`` lines) as a DataFrame with columns movie, user.

    Used by: Chapter 1 and Chapter 6 (:func:`mfkit.data.probe_split`, protocol N2). Errors as in
    :func:`parse_combined_data`.
    """
    cols = _read_chunks(_as_paths(path), "probe", {"movie": np.int32, "user": np.int32}, False, chunk_bytes,
                        "probe")
    return pd.DataFrame({"movie": cols["movie"], "user": cols["user"]})


def read_qualifying(path, chunk_bytes: int = CHUNK_BYTES) -> pd.DataFrame:
    """Read ``qualifying.txt`` (``MovieID:`` blocks of ``CustomerID,YYYY-MM-DD`` lines): columns movie, user, date.

    ``date`` is in days since 1970-01-01 (int32), as in :class:`NetflixRatings`. Used by: Chapter 1.
    """
    cols = _read_chunks(_as_paths(path), "qualifying", {"movie": np.int32, "user": np.int32, "date": np.int32},
                        False, chunk_bytes, "qualifying")
    return pd.DataFrame({"movie": cols["movie"], "user": cols["user"], "date": cols["date"]})


def read_movie_titles(path) -> pd.DataFrame:
    """Read ``movie_titles.csv``: ISO-8859-1, ``MovieID,YearOfRelease,Title`` without quoting.

    Titles may contain commas (the line is split on its first two commas only) and the year may be ``NULL``.

    Returns
    -------
    pandas.DataFrame
        Indexed by movie id (``movie``), columns ``year`` (nullable ``Int64``) and ``title``.

    Raises
    ------
    DataFormatError
        A line with fewer than three fields, a non-numeric MovieID or year, a repeated MovieID, or an empty file.

    Notes
    -----
    Used by: Chapter 1 and every chapter that prints titles (via ``Interactions.items``).
    """
    path = _as_paths(path)[0]
    text = path.read_bytes().decode("latin-1")  # Latin-1 maps every byte: decoding cannot fail
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    expected = "'MovieID,YearOfRelease,Title' (year a number or NULL)"
    while lines and not lines[-1].strip():  # trailing blank lines are fine
        lines.pop()
    if not lines:
        raise DataFormatError(path, None, expected, "an empty file")
    # one str.split per movie (17,770 lines: milliseconds); only the first two commas separate fields
    parts = [line.split(",", 2) for line in lines]
    n_fields = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    if (n_fields < 3).any():
        i = int(np.argmax(n_fields < 3))
        raise DataFormatError(path, i + 1, expected, lines[i])
    movie_col, year_col, title = zip(*parts)  # titles stay Python strings: numpy's would drop a trailing NUL
    movie_text, year_text = np.array(movie_col), np.array(year_col)
    no_year = year_text == "NULL"
    bad = ~np.strings.isdecimal(movie_text) | ~(np.strings.isdecimal(year_text) | no_year)
    bad |= np.array(["\x00" in m or "\x00" in y for m, y in zip(movie_col, year_col)])
    bad |= (np.strings.str_len(movie_text) > 9) | (np.strings.str_len(year_text) > 4)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, i + 1, expected, lines[i])
    movie = movie_text.astype(np.int64)
    year = pd.array(np.where(no_year, "0", year_text).astype(np.int64), dtype="Int64")
    year[no_year] = pd.NA
    if (movie < 1).any():
        i = int(np.argmax(movie < 1))
        raise DataFormatError(path, i + 1, "a MovieID of 1 or more", lines[i])
    dup = pd.Series(movie).duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        raise DataFormatError(path, i + 1, "each MovieID once", lines[i])
    return pd.DataFrame({"year": year, "title": np.array(title, dtype=object)},
                        index=pd.Index(movie, name="movie"))


# ---------------------------------------------------------------------------------------------------------------------
# Loading with a cache
# ---------------------------------------------------------------------------------------------------------------------
_COMBINED = re.compile(r"combined_data_([1-9][0-9]*)\.txt")
_FINGERPRINT_BYTES = 1 << 20  # bytes hashed at each end of a source file


def _combined_files(folder: Path) -> list[Path]:
    """``combined_data_1.txt``, ``combined_data_2.txt``, ... of ``folder``, numbered from 1 without gaps.

    Only those exact names count: a look-alike (a browser's ``combined_data_1 (1).txt``, ``combined_data_1.txt.bak``)
    is left out with a warning, since reading it would add its ratings a second time.
    """
    numbered, ignored = {}, []
    for p in folder.iterdir():
        m = _COMBINED.fullmatch(p.name)
        if m and p.is_file():
            numbered[int(m.group(1))] = p
        elif p.name.lower().startswith("combined_data"):
            ignored.append(p.name)
    if ignored:
        logger.warning("%s: ignoring %s (only combined_data_1.txt, combined_data_2.txt, ... are read)", folder,
                       ", ".join(sorted(ignored)))
    missing = [f"combined_data_{k}.txt" for k in range(1, max(numbered, default=0) + 1) if k not in numbered]
    if missing:
        raise DataNotFoundError(f"{folder} has {', '.join(numbered[k].name for k in sorted(numbered))} but not "
                                f"{', '.join(missing)}: expected combined_data_1.txt, combined_data_2.txt, ... "
                                "numbered from 1 without gaps (reading the others alone would drop ratings)")
    return [numbered[k] for k in sorted(numbered)]


def _fingerprint(folder: Path, files: list[Path]) -> str:
    """A fast content fingerprint: each file's name, size, modification time and a hash of its first and last MiB."""
    h = hashlib.sha256(f"mfkit-netflix-cache-v{_CACHE_VERSION}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        with open(p, "rb") as f:
            h.update(f.read(_FINGERPRINT_BYTES))
            if st.st_size > _FINGERPRINT_BYTES:
                f.seek(max(_FINGERPRINT_BYTES, st.st_size - _FINGERPRINT_BYTES))
                h.update(f.read(_FINGERPRINT_BYTES))
        h.update(b"\n")
    return h.hexdigest()


def _folder_key(folder: Path) -> str:
    return hashlib.sha256(str(Path(folder).expanduser().resolve()).encode()).hexdigest()[:12]


def netflix_cache_path(folder, cache_dir=None) -> Path:
    """The cache file for a Netflix folder: keyed by the folder's resolved path and its files' contents.

    The name is ``netflix-<folder>-<content>.npz``: ``<folder>`` hashes the resolved folder path (two folders never
    share a cache), ``<content>`` a fast fingerprint of ``combined_data_*.txt`` and ``movie_titles.csv``: names,
    sizes, modification times and a SHA-256 of each file's first and last MiB (hashing all 2 GB would take longer
    than parsing it). A changed, added or removed file changes the name.
    """
    folder = Path(folder).expanduser()
    sources = _combined_files(folder) + [p for p in [folder / "movie_titles.csv"] if p.is_file()]
    return (data_home(cache_dir) / "netflix"
            / f"netflix-{_folder_key(folder)}-{_fingerprint(folder, sources)[:20]}.npz")


def _load_npz_fast(path: Path) -> dict[str, np.ndarray]:
    """Read an uncompressed .npz by seeking to each member and reading it straight into its array.

    ``np.load`` would stream each member through ``zipfile`` in small pieces; reading at the member's offset is
    several times faster and the file stays an ordinary .npz.
    """
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                return dict(np.load(path))
            f.seek(info.header_offset)
            local = f.read(30)
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
            if arr.nbytes and f.readinto(memoryview(arr.reshape(-1, order="A")).cast("B")) != arr.nbytes:
                raise ValueError(f"member {info.filename} is truncated")
            out[info.filename[:-4] if info.filename.endswith(".npy") else info.filename] = arr
    return out


def load_netflix(folder=None, cache: bool = True, cache_dir=None, show_progress: bool | None = None) -> Interactions:
    """The Netflix Prize ratings as :class:`~mfkit.data.Interactions` (users = CustomerID, items = MovieID).

    Parameters
    ----------
    folder : path, optional
        The folder of the Kaggle data set "netflix-prize-data". Default: ``$MFKIT_NETFLIX_DIR``, else the generated
        sample of :func:`mfkit.data.netflix_sample_dir`.
    cache : bool
        Save the parsed arrays as an uncompressed ``.npz`` in the cache (see :func:`netflix_cache_path`) and reuse
        them while the source files are unchanged: the full data reloads in about a second instead of half a minute.
    cache_dir : path, optional
        Cache folder; default :func:`mfkit.data.data_home`.
    show_progress : bool, optional
        Progress bar while parsing.

    Returns
    -------
    Interactions
        float32 ratings, ``timestamp`` in days since 1970-01-01 (int32), ``items`` the titles (``title``, ``year``)
        when ``movie_titles.csv`` is present, name ``"netflix"``.

    Raises
    ------
    DataNotFoundError
        When the folder or its ``combined_data_*.txt`` files are missing (the message says how to get them), or the
        numbering has a gap (``combined_data_1.txt`` and ``combined_data_3.txt`` without ``_2``).
    NotADirectoryError
        When ``folder`` is a file.
    DataFormatError
        As :func:`parse_combined_data` and :func:`read_movie_titles`.

    Notes
    -----
    Only the exact names ``combined_data_<n>.txt`` are read; a look-alike such as a browser's second download
    ``combined_data_1 (1).txt`` is ignored with a warning (logger ``mfkit.data``). A cache that cannot be read, or
    one written before the files changed, is rebuilt with a warning; a first build is logged at INFO level.

    Used by: Chapter 1 and Chapter 6 (protocol N2). Data: the Netflix Prize (Bennett & Lanning 2007).
    """
    if folder is None:
        folder = os.environ.get("MFKIT_NETFLIX_DIR") or None
    if folder is None:
        folder = netflix_sample_dir(cache_dir)
    folder = Path(folder).expanduser()
    if folder.is_file():
        raise NotADirectoryError(f"{folder} is a file: load_netflix expects the folder holding combined_data_1.txt "
                                 "... (to parse single files use parse_combined_data)")
    if not folder.is_dir():
        raise DataNotFoundError(NETFLIX_HOW_TO_GET.format(where=f" (no folder {folder})"))
    files = _combined_files(folder)
    if not files:
        raise DataNotFoundError(NETFLIX_HOW_TO_GET.format(where=f" (no combined_data_*.txt in {folder})"))
    titles_path = folder / "movie_titles.csv"

    cache_path = netflix_cache_path(folder, cache_dir) if cache else None
    if cache_path is not None and cache_path.exists():
        try:
            a = _load_npz_fast(cache_path)
            n = len(a["user"])
            if any(len(a[k]) != n for k in ("item", "rating", "date")):
                raise ValueError("arrays of different lengths")
            # written by this code from checked arrays: only the cheap checks above
            return Interactions._trusted(a["user"], a["item"], a["rating"].astype(np.float32), a["user_ids"],
                                         a["item_ids"], a["date"], _titles_from_arrays(a), "netflix")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            logger.warning("the Netflix cache %s cannot be read (%s: %s); re-parsing %s and rewriting it",
                           cache_path, type(e).__name__, e, folder)
    stale = []
    if cache_path is not None:
        stale = [p for p in cache_path.parent.glob(f"netflix-{_folder_key(folder)}-*.npz") if p != cache_path]
        if stale:
            logger.warning("the Netflix files in %s changed since they were cached; re-parsing them (the old cache "
                           "%s is replaced)", folder, ", ".join(p.name for p in stale))
        else:
            logger.info("no cache for the Netflix files in %s yet: parsing them (cache: %s)", folder, cache_path)
    titles = read_movie_titles(titles_path) if titles_path.exists() else None
    ratings = parse_combined_data(files, show_progress=show_progress)
    user_ids, user = dense_index(ratings.user)
    item_ids, item = dense_index(ratings.movie)
    rating, date = ratings.rating, ratings.date
    del ratings
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(cache_path.stem + f".{os.getpid()}.part.npz")
        np.savez(tmp, user=user, item=item, rating=rating, date=date, user_ids=user_ids, item_ids=item_ids,
                 **_titles_to_arrays(titles))
        os.replace(tmp, cache_path)  # never leave a half-written cache under the real name
        for p in stale:
            p.unlink(missing_ok=True)
    return Interactions(user=user, item=item, rating=rating.astype(np.float32), user_ids=user_ids, item_ids=item_ids,
                        timestamp=date, items=titles, name="netflix")


def _titles_to_arrays(titles: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """The titles as plain arrays for the cache (re-reading the CSV would cost more than the ratings' arrays)."""
    if titles is None:
        return {"title_movie": np.zeros(0, np.int64), "title_year": np.zeros(0, np.int64),
                "title_text": np.zeros(0, "S1"), "title_present": np.array(False)}
    return {"title_movie": titles.index.to_numpy(np.int64),
            "title_year": titles["year"].fillna(-1).to_numpy(np.int64),
            "title_text": np.array([t.encode("utf-8") for t in titles["title"]], dtype=bytes),
            "title_present": np.array(True)}


def _titles_from_arrays(a: dict[str, np.ndarray]) -> pd.DataFrame | None:
    if not bool(a["title_present"]):
        return None
    year = pd.array(a["title_year"], dtype="Int64")
    year[a["title_year"] < 0] = pd.NA
    return pd.DataFrame({"year": year, "title": np.char.decode(a["title_text"], "utf-8").astype(object)},
                        index=pd.Index(a["title_movie"], name="movie"))
