"""The parsed Netflix Prize ratings (:class:`NetflixRatings`), shared by the reader and the generator.

Kept apart from :mod:`mfkit.data.netflix` so that the generator (:mod:`mfkit.data.synthetic`) and the reader import it
without importing each other: ``_io``, ``interactions`` -> ``_netflix_ratings`` -> ``synthetic`` -> ``netflix``.

Used by: Chapter 1 (through :func:`mfkit.data.parse_combined_data` and :func:`mfkit.data.generate_netflix_sample`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .interactions import Interactions, dense_index

__all__ = ["NetflixRatings"]


@dataclass
class NetflixRatings:
    """Ratings as parsed from ``combined_data_*.txt``, in file order.

    Attributes
    ----------
    user : np.ndarray of int32
        Raw CustomerID.
    movie : np.ndarray of int16 (int32 when a MovieID exceeds 32,767)
        Raw MovieID.
    rating : np.ndarray of int8
        Stars, 1 to 5.
    date : np.ndarray of int32
        Days since 1970-01-01 (``pd.to_datetime(date, unit="D")`` gives dates back).
    """

    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    date: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.user, self.movie, self.rating, self.date))

    def to_interactions(self, titles: pd.DataFrame | None = None, name: str = "netflix") -> Interactions:
        """Users = CustomerID, items = MovieID, float32 ratings, timestamps in days (int32, to halve their memory)."""
        user_ids, user = dense_index(self.user)
        item_ids, item = dense_index(self.movie)
        return Interactions(user=user, item=item, rating=self.rating.astype(np.float32), user_ids=user_ids,
                            item_ids=item_ids, timestamp=self.date, items=titles, name=name)
