"""Shared reading helpers: data locations and table reading with errors that name the file and line."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DataFormatError", "DataNotFoundError", "check_file", "data_home", "read_table"]


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file, the line and what was expected."""

    def __init__(self, path, line: int | None, expected: str, got: str | None = None):
        self.path, self.line, self.expected, self.got = str(path), line, expected, got
        where = f"{path}, line {line}" if line is not None else f"{path}"
        msg = f"{where}: expected {expected}"
        if got is not None:
            msg += f", got {got!r}"
        super().__init__(msg)


class DataNotFoundError(FileNotFoundError):
    """A data set is not where it was looked for; the message says how to get it."""


def data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Where mfkit caches data sets: the argument, else ``$MFKIT_DATA_DIR``, else the user cache dir (``~/.cache/mfkit``)."""
    if data_home is None:
        data_home = os.environ.get("MFKIT_DATA_DIR")
    if data_home is None:
        from platformdirs import user_cache_dir

        data_home = user_cache_dir("mfkit")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_file(path) -> Path:
    """``path`` as a Path to an existing regular file: DataNotFoundError when it is missing, IsADirectoryError when
    it is a folder (not the misleading "does not exist")."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, expected a file")
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist")
    return path


_INTEGER = r"[0-9]{1,18}"
_DECIMAL = r"[0-9]{1,18}(?:\.[0-9]*)?|\.[0-9]+"


def read_table(path, sep: str, names: list[str], numeric: list[str], header: bool = False,
               encoding: str = "utf-8", expected: str | None = None, integer: list[str] | None = None) -> pd.DataFrame:
    """Read a delimited text file strictly: every non-blank line has exactly ``len(names)`` fields.

    ``numeric`` columns must hold plain decimal numbers (``3``, ``4.5``; no signs, exponents, ``nan`` or ``inf``),
    ``integer`` columns (a subset of ``numeric``) whole numbers of up to 18 digits, read as int64 without a detour
    through floats. Spaces around a number are allowed. Lines end with ``\n``, ``\r\n`` or ``\r``; lines of
    only spaces (and tabs, unless the separator is a tab) are skipped, as pandas does. With ``header`` the first
    line is skipped (the caller checks it). Anything else raises :class:`DataFormatError` naming the 1-based line
    and what was expected; a file with no data line raises it too.
    """
    path = check_file(path)
    integer = list(integer or [])
    expected = expected or f"{len(names)} fields separated by {sep!r} ({', '.join(names)})"
    if path.stat().st_size == 0:
        raise DataFormatError(path, None, expected, "an empty file")
    line_no, n_fields = _scan_lines(path, sep, header)
    if len(line_no) == 0:
        raise DataFormatError(path, None, f"at least one data line ({expected})",
                              "only a header line" if header else "only blank lines")
    wrong = n_fields != len(names)
    if wrong.any():
        i = int(np.argmax(wrong))
        raise DataFormatError(path, int(line_no[i]), expected, _line(path, int(line_no[i]), encoding))
    try:
        df = pd.read_csv(path, sep=sep, header=None, skiprows=1 if header else 0, names=names, index_col=False,
                         dtype=str, encoding=encoding, engine="c", quoting=3, keep_default_na=False, na_filter=False,
                         skip_blank_lines=True, on_bad_lines="error")
    except pd.errors.ParserError as e:  # cannot happen after the field counts above; kept as a clear error
        raise DataFormatError(path, None, expected, str(e)) from e
    except UnicodeDecodeError as e:
        raise DataFormatError(path, _decode_error_line(path, encoding), f"text in {encoding}", str(e)) from e
    if len(df) != len(line_no):  # our line scan and pandas disagree: refuse rather than guess which line is which
        raise DataFormatError(path, None, expected, f"{len(df)} rows read by pandas but {len(line_no)} non-blank "
                              "lines (unusual control characters?)")
    for col in numeric:
        text = df[col].str.strip(" ")
        pattern = _INTEGER if col in integer else _DECIMAL
        bad = ~text.str.fullmatch(pattern).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            kind = "a whole number" if col in integer else "a number"
            raise DataFormatError(path, int(line_no[i]), f"{kind} in column {col!r} ({expected})",
                                  _line(path, int(line_no[i]), encoding))
        df[col] = text.astype(np.int64) if col in integer else text.astype(np.float64)
    df.attrs["line_no"] = line_no
    return df


def _decode_error_line(path: Path, encoding: str) -> int | None:
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as e:
        head = data[:e.start]
        return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
    return None


def _scan_lines(path: Path, sep: str, skip_first: bool, block: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """1-based numbers and field counts of the non-blank lines, by a vectorised pass over the bytes.

    Lines end at ``\n``, ``\r\n`` or a lone ``\r`` (as pandas and Python's universal newlines); a line of only spaces
    and tabs (spaces only when ``sep`` is a tab) is blank. Reads ``block`` bytes at a time, cut after a newline.
    """
    sep_byte = ord(sep)
    blank_bytes = [b for b in (32, 9) if b != sep_byte]
    numbers, counts = [], []
    base = 0
    carry = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            eof = not data
            buf = carry + data
            if not eof:
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    carry = buf
                    continue
                buf, carry = buf[:cut], buf[cut:]
            elif not buf:
                break
            elif not buf.endswith((b"\n", b"\r")):
                buf += b"\n"
            b = np.frombuffer(buf, dtype=np.uint8)
            nxt = np.zeros_like(b)
            nxt[:-1] = b[1:]
            ends = np.flatnonzero((b == 10) | ((b == 13) & (nxt != 10)))
            starts = np.empty_like(ends)
            starts[0] = 0
            starts[1:] = ends[:-1] + 1
            crlf = (ends > starts) & (b[ends] == 10) & (b[np.maximum(ends - 1, 0)] == 13)
            cend = ends - crlf
            space = np.zeros(len(b) + 1, dtype=np.int32)
            np.cumsum(np.isin(b, blank_bytes), out=space[1:])
            seps = np.zeros(len(b) + 1, dtype=np.int32)
            np.cumsum(b == sep_byte, out=seps[1:])
            keep = (space[cend] - space[starts]) != (cend - starts)
            number = base + 1 + np.arange(len(ends), dtype=np.int64)
            if skip_first and base == 0:
                keep[0] = False
            numbers.append(number[keep])
            counts.append(1 + (seps[cend] - seps[starts])[keep])
            base += len(ends)
            if eof:
                break
    if not numbers:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(numbers), np.concatenate(counts)


def _line(path: Path, line_no: int | None, encoding: str) -> str | None:
    if line_no is None:
        return None
    with open(path, encoding=encoding, errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if n == line_no:
                return line.rstrip("\r\n")
    return None
