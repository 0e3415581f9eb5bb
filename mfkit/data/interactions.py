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
                 name: str = "") -> "Interactions":
        """Build from raw id columns; dense indices follow the sorted order of the distinct raw ids."""
        users, items = np.asarray(users), np.asarray(items)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(f"users and items must be 1-D arrays of one length, got {users.shape} and {items.shape}")
        user_ids, user = dense_index(users)
        item_ids, item = dense_index(items)
        return cls(
            user=user,
            item=item,
            rating=None if ratings is None else np.asarray(ratings, dtype=np.float32),
            timestamp=None if timestamps is None else np.asarray(timestamps, dtype=np.int64),
            user_ids=user_ids,
            item_ids=item_ids,
            items=item_meta,
            name=name,
        )

    def __post_init__(self):
        n = len(self.user)
        for attr in ("item", "rating", "timestamp"):
            v = getattr(self, attr)
            if v is not None and len(v) != n:
                raise ValueError(f"{attr} has {len(v)} entries, user has {n}")

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
        return len(self) / (self.n_users * self.n_items)

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
        pick = lambda v: None if v is None else v[rows]  # noqa: E731
        return Interactions(self.user[rows], self.item[rows], pick(self.rating), self.user_ids, self.item_ids,
                            pick(self.timestamp), self.items, self.name)

    # -- conversions -------------------------------------------------------------------------------------------------
    def to_csr(self, values: str = "rating", dtype=np.float32) -> sp.csr_matrix:
        """Users × items scipy CSR matrix of ``values``: ``"rating"`` or ``"ones"`` (implicit 0/1).

        Duplicate (user, item) pairs are summed, as scipy does; :meth:`duplicates` counts them.
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
            "per user: median": float(np.median(uc)),
            "per user: max": int(uc.max()) if len(uc) else 0,
            "per item: median": float(np.median(ic)),
            "per item: max": int(ic.max()) if len(ic) else 0,
        }
        if self.rating is not None and len(self):
            s["mean rating"] = float(self.rating.mean())
        return pd.Series(s, name=self.name or "interactions")

    def __repr__(self) -> str:
        kind = "ratings" if self.rating is not None else "implicit"
        return (f"Interactions({self.name + ', ' if self.name else ''}{len(self):,} {kind}, "
                f"{self.n_users:,} users × {self.n_items:,} items, density {self.density:.4%})")
