"""Shared reading helpers: data locations and table reading with errors that name the file and line."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DataFormatError", "DataNotFoundError", "data_home", "read_table"]


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


def read_table(path, sep: str, names: list[str], numeric: list[str], header: bool = False,
               encoding: str = "utf-8", expected: str | None = None) -> pd.DataFrame:
    """Read a delimited text file, checking that every row has ``len(names)`` fields and ``numeric`` columns parse.

    Blank lines (trailing ones included) are skipped, as pandas does; anything else malformed raises
    :class:`DataFormatError` with the 1-based line number.
    """
    path = Path(path)
    expected = expected or f"{len(names)} fields separated by {sep!r} ({', '.join(names)})"
    if path.stat().st_size == 0:
        raise DataFormatError(path, None, expected, "an empty file")
    try:
        df = pd.read_csv(path, sep=sep, header=0 if header else None, names=names, dtype=str, encoding=encoding,
                         engine="c", quoting=3, keep_default_na=False, skip_blank_lines=True,
                         on_bad_lines="error")
    except pd.errors.ParserError as e:  # too many fields; pandas names the line in its message
        m = re.search(r"line (\d+)", str(e))
        line = int(m.group(1)) if m else None
        raise DataFormatError(path, line, expected, _line(path, line, encoding) if line else str(e)) from e
    except UnicodeDecodeError as e:
        raise DataFormatError(path, None, f"text in {encoding}", str(e)) from e
    # Too few fields come back as empty strings (keep_default_na=False); pandas does not complain, so we do.
    line_no = _line_numbers(path, encoding, header, len(df))
    short = (df[names[-1]] == "") if len(names) > 1 else np.zeros(len(df), bool)
    if short.any():
        i = int(np.flatnonzero(short.to_numpy())[0])
        raise DataFormatError(path, line_no[i], expected, _line(path, line_no[i], encoding))
    for col in numeric:
        values = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(path, line_no[i], f"a number in column {col!r} ({expected})",
                                  _line(path, line_no[i], encoding))
        df[col] = values
    return df


def _line_numbers(path: Path, encoding: str, header: bool, n_rows: int) -> np.ndarray:
    """1-based file line numbers of the non-blank data rows (only computed when an error must be reported)."""

    class _Lazy:
        def __getitem__(self, i):
            with open(path, encoding=encoding, newline=None) as f:
                seen = -1 if header else 0
                for n, line in enumerate(f, start=1):
                    if header and n == 1:
                        seen = 0
                        continue
                    if line.strip() == "":
                        continue
                    if seen == i:
                        return n
                    seen += 1
            return None

    return _Lazy()


def _line(path: Path, line_no: int | None, encoding: str) -> str | None:
    if line_no is None:
        return None
    with open(path, encoding=encoding, errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if n == line_no:
                return line.rstrip("\r\n")
    return None
