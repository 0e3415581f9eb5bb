"""The interactions container shared by every chapter.

Raw ids (MovieLens item 242, Netflix customer 1488844) are mapped once to dense indices ``0..n-1``: embedding tables
are then sized by the number of distinct ids, not by the largest raw id (one of the seed notebooks' bugs).

Used by: Chapter 1 (built and summarised), and every later chapter (splits, CSR matrices, tensors).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

__all__ = ["Interactions", "dense_index"]


def dense_index(raw) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct raw ids and the dense index (int32) of each entry: ``np.unique(raw, return_inverse=True)``.

    For non-negative integer ids of moderate range (Netflix CustomerIDs go up to 2,649,429) a presence table and a
    cumulative sum give the same answer in linear time, without sorting 100 million values.
    """
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {raw.shape}")
    if raw.dtype.kind in "iu" and len(raw):
        lo, hi = int(raw.min()), int(raw.max())
        if lo >= 0 and hi < 4 * len(raw) + (1 << 22):
            present = np.zeros(hi + 1, dtype=bool)
            present[raw] = True
            ids = np.flatnonzero(present).astype(raw.dtype)
            lookup = np.cumsum(present, dtype=np.int32) - 1
            return ids, lookup[raw]
    ids, inverse = np.unique(raw, return_inverse=True)
    return ids, inverse.astype(np.int32).reshape(-1)


_DUPLICATES = ("raise", "first", "last", "mean", "sum")


def _py(v):
    """A numpy scalar as the Python value it holds (so messages read ``7``, not ``np.int64(7)``)."""
    return v.item() if isinstance(v, np.generic) else v


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_raw_ids(values, what: str) -> np.ndarray:
    """Raw ids as a 1-D array; NaN, ±inf and None are refused with their position."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of raw ids, got shape {values.shape}")
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"{what}[{i}] is {values[i]}: expected a raw id ({int(bad.sum())} missing or "
                             "non-finite ids)")
    elif values.dtype.kind == "O":
        bad = pd.isna(values)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"{what}[{i}] is {_py(values[i])!r}: expected a raw id ({int(bad.sum())} missing ids)")
    elif values.dtype.kind not in "iuUSb":
        raise ValueError(f"{what} must hold integer or string ids, got dtype {values.dtype}")
    return values


def _check_values(values, n: int, what: str, dtype=np.float32) -> np.ndarray:
    """Finite numbers, one per row (NaN and ±inf refused with their position)."""
    raw = np.asarray(values)
    if raw.ndim != 1 or len(raw) != n:
        raise ValueError(f"{what} must be a 1-D array with one entry per interaction ({n}), got shape {raw.shape}")
    if raw.dtype.kind not in "iufb":
        try:
            raw = raw.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{what} must be numbers, got dtype {raw.dtype} ({e})") from e
    out = raw.astype(dtype, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{what}[{i}] is {raw[i]}: expected a finite number ({int(bad.sum())} non-finite; "
                         "drop or impute them first)")
    return out


def _check_timestamps(values, n: int) -> np.ndarray:
    raw = np.asarray(values)
    if raw.ndim != 1 or len(raw) != n:
        raise ValueError(f"timestamps must be a 1-D array with one entry per interaction ({n}), got shape "
                         f"{raw.shape}")
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "M":
        return raw.astype("datetime64[s]").astype(np.int64)
    try:
        f = raw.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"timestamps must be whole numbers, got dtype {raw.dtype} ({e})") from e
    bad = ~np.isfinite(f) | (f != np.round(f)) | (np.abs(f) >= 2.0 ** 62)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"timestamps[{i}] is {_py(raw[i])!r}: expected a whole number (timestamps are stored as "
                         "int64)")
    return f.astype(np.int64)


def _check_item_meta(meta) -> None:
    if not isinstance(meta, pd.DataFrame):
        raise ValueError(f"item metadata must be a pandas DataFrame indexed by raw item id, got {type(meta).__name__}")
    dup = meta.index.duplicated()
    if dup.any():
        raise ValueError(f"item metadata repeats item id {_py(meta.index[_first_bad(dup)])!r}: expected each id once")


def _as_index(values, ids: np.ndarray, what: str) -> np.ndarray:
    """Map raw ids to dense indices through the sorted id array; unknown ids raise KeyError."""
    values = np.asarray(values)
    pos = np.searchsorted(ids, values)
    pos_clipped = np.minimum(pos, len(ids) - 1)
    bad = (pos >= len(ids)) | (ids[pos_clipped] != values)
    if bad.any():
        missing = np.atleast_1d(values)[np.atleast_1d(bad)][:5]
        raise KeyError(f"unknown {what} id(s): {missing.tolist()}")
    return pos_clipped.astype(np.int64)


@dataclass
class Interactions:
    """User–item interactions with raw id ↔ dense index maps in both directions.

    Attributes
    ----------
    user : np.ndarray of int32
        Dense user index of each interaction.
    item : np.ndarray of int32
        Dense item index of each interaction.
    rating : np.ndarray of float32 or None
        Explicit rating of each interaction (``None`` for purely implicit data).
    timestamp : np.ndarray of int64 (int32 for Netflix) or None
        Time of each interaction (Unix seconds for MovieLens; days since 1970-01-01 for Netflix, kept as int32 to
        save 400 MB on the full data), if known.
    user_ids, item_ids : np.ndarray
        Sorted raw ids; ``user_ids[i]`` is the raw id of dense user ``i``.
    items : pandas.DataFrame or None
        Item metadata indexed by raw item id (``title``, ``year``...), if known.

    Splits (see :mod:`mfkit.data.splits`) keep the id maps of the full data, so train and test share one index space
    and a model trained on one scores the other.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamp: np.ndarray | None = None
    items: pd.DataFrame | None = field(default=None, repr=False)
    name: str = ""

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_raw(cls, users, items, ratings=None, timestamps=None, item_meta: pd.DataFrame | None = None,
                 name: str = "", duplicates: str = "raise") -> "Interactions":
        """Build from raw id columns; dense indices follow the sorted order of the distinct raw ids.

        Parameters
        ----------
        users, items : array-like, 1-D, one length
            Raw ids (integers, strings...). Missing ids (NaN, None) are refused.
        ratings : array-like or None
            Finite numbers (NaN and ±inf are refused, naming the first position).
        timestamps : array-like of whole numbers or None
            Stored as int64; non-finite or fractional values are refused rather than truncated.
        item_meta : pandas.DataFrame or None
            Item metadata indexed by raw item id; a repeated id is refused.
        name : str
        duplicates : {"raise", "first", "last", "mean", "sum"}
            What to do with rows repeating a (user, item) pair: ``"raise"`` (default) refuses them, naming the first
            pair; ``"first"``/``"last"`` keep the first/last row of each pair; ``"mean"``/``"sum"`` keep one row per
            pair (at its first position) with the mean/sum of its ratings and its latest timestamp.
            See :meth:`deduplicate`.

        An empty input gives an empty data set (0 users, 0 items), which prints as such.

        Used by: Chapter 1 (readers), Chapters 2 and 5 (building data by hand).
        """
        users = _check_raw_ids(users, "users")
        items = _check_raw_ids(items, "items")
        if users.shape != items.shape:
            raise ValueError(f"users and items must be 1-D arrays of one length, got {users.shape} and {items.shape}")
        n = len(users)
        rating = None if ratings is None else _check_values(ratings, n, "ratings")
        timestamp = None if timestamps is None else _check_timestamps(timestamps, n)
        if duplicates not in _DUPLICATES:
            raise ValueError(f"duplicates must be one of {_DUPLICATES}, got {duplicates!r}")
        if item_meta is not None:
            _check_item_meta(item_meta)
        user_ids, user = dense_index(users)
        item_ids, item = dense_index(items)
        data = cls(user=user, item=item, rating=rating, timestamp=timestamp, user_ids=user_ids, item_ids=item_ids,
                   items=item_meta, name=name)
        return data.deduplicate(duplicates) if len(data) else data

    def deduplicate(self, how: str = "raise") -> "Interactions":
        """Resolve rows repeating a (user, item) pair (the id maps stay the same).

        ``how``: ``"raise"`` refuses them (ValueError naming the first repeated pair and its rows); ``"first"`` or
        ``"last"`` keeps the first or last row of each pair; ``"mean"`` or ``"sum"`` keeps one row per pair, at the
        pair's first position, with the mean or sum of its ratings and its latest timestamp. Without duplicates the
        data come back unchanged.
        """
        if how not in _DUPLICATES:
            raise ValueError(f"duplicates must be one of {_DUPLICATES}, got {how!r}")
        key = self._pair_key()
        uniq, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
        if len(uniq) == len(key):
            return self
        if how == "raise":
            j = int(np.flatnonzero(counts > 1)[0])
            rows = np.flatnonzero(inverse == j)[:5].tolist()
            u, i = _py(self.user_ids[self.user[rows[0]]]), _py(self.item_ids[self.item[rows[0]]])
            raise ValueError(f"{len(key) - len(uniq):,} row(s) repeat a (user, item) pair, e.g. user {u!r}, item "
                             f"{i!r} at rows {rows}; expected each pair once. Resolve them explicitly with "
                             "duplicates='first', 'last', 'mean' or 'sum' (Interactions.from_raw or .deduplicate)")
        if how in ("first", "last"):
            if how == "first":
                keep = first
            else:
                last = np.empty(len(uniq), dtype=np.int64)
                last[inverse] = np.arange(len(key))  # the last write of each pair wins
                keep = last
            return self._take(np.sort(keep))
        order = np.argsort(first)  # pairs in order of their first row
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[order] = np.arange(len(uniq))
        group = rank[inverse]
        rows = first[order]
        rating = None
        if self.rating is not None:
            total = np.bincount(group, weights=self.rating.astype(np.float64), minlength=len(uniq))
            rating = (total if how == "sum" else total / counts[order]).astype(np.float32)
        elif how == "sum":
            raise ValueError("duplicates='sum' needs ratings; these interactions are implicit (use 'first')")
        timestamp = None
        if self.timestamp is not None:
            timestamp = np.full(len(uniq), np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(timestamp, group, self.timestamp.astype(np.int64))
            timestamp = timestamp.astype(self.timestamp.dtype)
        return Interactions._trusted(self.user[rows], self.item[rows], rating, self.user_ids, self.item_ids,
                                     timestamp, self.items, self.name)

    def __post_init__(self):
        """Check what a direct construction gives: one length, integer indices within the id maps, sorted
        distinct ids, finite ratings (a ValueError names the first offending entry)."""
        for attr in ("user", "item", "user_ids", "item_ids"):
            v = getattr(self, attr)
            if not isinstance(v, np.ndarray) or v.ndim != 1:
                raise ValueError(f"{attr} must be a 1-D numpy array, got {type(v).__name__} "
                                 f"of shape {getattr(v, 'shape', None)}")
        n = len(self.user)
        for attr in ("item", "rating", "timestamp"):
            v = getattr(self, attr)
            if v is not None and len(v) != n:
                raise ValueError(f"{attr} has {len(v)} entries, user has {n}")
        for attr, ids in (("user", self.user_ids), ("item", self.item_ids)):
            v = getattr(self, attr)
            if v.dtype.kind not in "iu":
                raise ValueError(f"{attr} must hold integer dense indices, got dtype {v.dtype}")
            if n and (int(v.min()) < 0 or int(v.max()) >= len(ids)):
                bad = int(np.flatnonzero((v < 0) | (v >= len(ids)))[0])
                raise ValueError(f"{attr}[{bad}] = {int(v[bad])} is outside 0..{len(ids) - 1} "
                                 f"(the {attr} id map has {len(ids)} ids)")
            if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
                bad = int(np.flatnonzero(~(ids[1:] > ids[:-1]))[0])
                raise ValueError(f"{attr}_ids must be sorted and distinct; {attr}_ids[{bad}] = {_py(ids[bad])!r} is "
                                 f"followed by {_py(ids[bad + 1])!r}")
        if self.rating is not None:
            self.rating = _check_values(self.rating, n, "rating", dtype=self.rating.dtype
                                        if isinstance(self.rating, np.ndarray) and self.rating.dtype.kind == "f"
                                        else np.float32)
        if self.items is not None:
            _check_item_meta(self.items)

    @classmethod
    def _trusted(cls, user, item, rating, user_ids, item_ids, timestamp=None, items=None, name=""):
        """Build without the checks of ``__post_init__``, for parts of data already checked (subsets, caches)."""
        obj = object.__new__(cls)
        obj.__dict__.update(user=user, item=item, rating=rating, user_ids=user_ids, item_ids=item_ids,
                            timestamp=timestamp, items=items, name=name)
        return obj

    # -- sizes ---------------------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    @property
    def density(self) -> float:
        """Share of the users × items cells holding an interaction (0.0 when there are no cells)."""
        cells = self.n_users * self.n_items
        return len(self) / cells if cells else 0.0

    # -- id maps ---------------------------------------------------------------------------------------------------
    def user_index(self, raw_ids) -> np.ndarray:
        """Dense indices of raw user ids (KeyError for unknown ids)."""
        return _as_index(raw_ids, self.user_ids, "user")

    def item_index(self, raw_ids) -> np.ndarray:
        """Dense indices of raw item ids (KeyError for unknown ids)."""
        return _as_index(raw_ids, self.item_ids, "item")

    def item_titles(self, item_idx=None) -> np.ndarray:
        """Titles of dense item indices (all items when ``item_idx`` is None); raw ids where no title is known."""
        idx = np.arange(self.n_items) if item_idx is None else np.asarray(item_idx)
        raw = self.item_ids[idx]
        if self.items is None or "title" not in self.items:
            return raw.astype(str)
        titles = self.items["title"].reindex(raw)
        return np.where(titles.isna(), raw.astype(str), titles.astype(str))

    # -- subsets ---------------------------------------------------------------------------------------------------
    def subset(self, rows) -> "Interactions":
        """The interactions at ``rows`` (a boolean mask or integer positions), with the same id maps."""
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise ValueError(f"a boolean mask must have one entry per interaction ({len(self)}), got shape "
                             f"{rows.shape}")
        if rows.dtype != bool and rows.dtype.kind not in "iu":
            raise ValueError(f"rows must be a boolean mask or integer positions, got dtype {rows.dtype}")
        return self._take(rows)

    def _take(self, rows) -> "Interactions":
        pick = lambda v: None if v is None else v[rows]  # noqa: E731
        return Interactions._trusted(self.user[rows], self.item[rows], pick(self.rating), self.user_ids,
                                     self.item_ids, pick(self.timestamp), self.items, self.name)

    def _pair_key(self) -> np.ndarray:
        return self.user.astype(np.int64) * np.int64(max(self.n_items, 1)) + self.item

    # -- conversions -------------------------------------------------------------------------------------------------
    def to_csr(self, values: str = "rating", dtype=np.float32) -> sp.csr_matrix:
        """Users × items scipy CSR matrix of ``values``: ``"rating"`` or ``"ones"`` (implicit 0/1).

        With ``"rating"``, a (user, item) pair held twice raises ValueError (scipy would sum the two ratings into an
        out-of-scale value): resolve them first with :meth:`deduplicate`. With ``"ones"`` every held pair is 1.
        """
        if values == "rating":
            if self.rating is None:
                raise ValueError("these interactions carry no ratings; use values='ones'")
            data = self.rating.astype(dtype)
        elif values == "ones":
            data = np.ones(len(self), dtype=dtype)
        else:
            raise ValueError(f"values must be 'rating' or 'ones', got {values!r}")
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        if m.nnz < len(self):  # scipy summed repeated pairs (nnz counts distinct pairs, explicit zeros included)
            if values == "ones":
                m.data[:] = 1
            else:
                self.deduplicate("raise")
        return m

    def to_tensors(self, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(user, item, rating)`` as torch tensors on ``device`` (int64 indices, float32 ratings)."""
        device = torch.device(device)
        u = torch.from_numpy(self.user.astype(np.int64)).to(device)
        i = torch.from_numpy(self.item.astype(np.int64)).to(device)
        r = None if self.rating is None else torch.from_numpy(self.rating.astype(np.float32)).to(device)
        return u, i, r

    def to_frame(self, raw_ids: bool = True) -> pd.DataFrame:
        """A pandas DataFrame with one row per interaction (raw ids by default)."""
        cols = {"user": self.user_ids[self.user] if raw_ids else self.user,
                "item": self.item_ids[self.item] if raw_ids else self.item}
        if self.rating is not None:
            cols["rating"] = self.rating
        if self.timestamp is not None:
            cols["timestamp"] = self.timestamp
        return pd.DataFrame(cols)

    # -- statistics ----------------------------------------------------------------------------------------------------
    def user_counts(self) -> np.ndarray:
        """Interactions per dense user index."""
        return np.bincount(self.user, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per dense item index."""
        return np.bincount(self.item, minlength=self.n_items)

    def duplicates(self) -> int:
        """Number of rows repeating an earlier (user, item) pair."""
        key = self.user.astype(np.int64) * self.n_items + self.item
        return len(key) - len(np.unique(key))

    def stats(self) -> pd.Series:
        """Counts, density and the spread of per-user and per-item counts."""
        uc, ic = self.user_counts(), self.item_counts()
        s = {
            "interactions": len(self),
            "users": self.n_users,
            "items": self.n_items,
            "density": self.density,
            "users with none": int((uc == 0).sum()),
            "items with none": int((ic == 0).sum()),
            "per user: median": float(np.median(uc)) if len(uc) else 0.0,
            "per user: max": int(uc.max()) if len(uc) else 0,
            "per item: median": float(np.median(ic)) if len(ic) else 0.0,
            "per item: max": int(ic.max()) if len(ic) else 0,
        }
        if self.rating is not None and len(self):
            s["mean rating"] = float(self.rating.mean())
        return pd.Series(s, name=self.name or "interactions")

    def __repr__(self) -> str:
        kind = "ratings" if self.rating is not None else "implicit"
        if len(self) == 0:
            return (f"Interactions({self.name + ', ' if self.name else ''}empty: 0 {kind}, "
                    f"{self.n_users:,} users × {self.n_items:,} items)")
        return (f"Interactions({self.name + ', ' if self.name else ''}{len(self):,} {kind}, "
                f"{self.n_users:,} users × {self.n_items:,} items, density {self.density:.4%})")
