"""A seeded generator of Netflix-Prize-format data from a known low-rank model.

The real Netflix Prize data (Kaggle "netflix-prize-data", 2 GB) cannot ship with the book, so the chapters run on a
stand-in written in exactly its format (``combined_data_1..4.txt``, ``probe.txt``, ``qualifying.txt``,
``movie_titles.csv``: Latin-1 titles with commas, ``NULL`` years, sparse CustomerIDs) and drawn from a model whose
parameters are known, so a chapter can check what a fitted model recovers. The model is the biased matrix
factorization of Koren, Bell & Volinsky (2009, "Matrix factorization techniques for recommender systems"):

.. math:: r_{ui} = \\mathrm{clip}(\\mathrm{round}(\\mu + b_u + b_i + p_u^\\top q_i + \\varepsilon_{ui}), 1, 5),
   \\quad \\varepsilon_{ui} \\sim \\mathcal N(0, \\sigma^2)

with long-tailed (log-normal) user activity and item popularity, as in the real data.

Used by: Chapter 1 (format, parsing, splits), Chapter 6 (Netflix-shaped training), ``benchmarks/netflix_parse.py``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import data_home
from ._netflix_ratings import NetflixRatings

__all__ = ["NetflixGroundTruth", "simulate_netflix", "generate_netflix_sample", "netflix_sample_dir",
           "netflix_sample_truth", "SAMPLE_DEFAULTS", "NETFLIX_SHAPE", "NetflixModel", "generate_netflix_full",
           "netflix_full_truth", "netflix_full_dir"]

# The default sample: ~150k ratings, parsed and trained on in seconds.
SAMPLE_DEFAULTS = dict(n_users=3000, n_movies=600, n_factors=8, ratings_per_user=50, noise_std=0.5, seed=0)
_SAMPLE_VERSION = "2"  # bump when the generator changes: the cached sample is then regenerated

_FIRST_DAY = int(np.datetime64("1999-11-11", "D").astype(np.int64))  # the real data's date range
_LAST_DAY = int(np.datetime64("2005-12-31", "D").astype(np.int64))
_MAX_CUSTOMER_ID = 2_649_429


@dataclass
class NetflixModel:
    """A planted biased-MF model: what :func:`generate_netflix_full` keeps (its ratings are only in the files), and
    the model part of :class:`NetflixGroundTruth`.

    Attributes
    ----------
    user_ids : np.ndarray of int32
        Sorted raw CustomerIDs; row ``j`` of ``user_factors``/``user_bias`` belongs to ``user_ids[j]``.
    movie_ids : np.ndarray of int32
        Raw MovieIDs ``1..n_movies``; row ``j`` of ``item_factors``/``item_bias`` belongs to ``movie_ids[j]``.
    global_mean, user_bias, item_bias, user_factors, item_factors, noise_std
        The model :math:`\\mu + b_u + b_i + p_u^\\top q_i` and the noise level :math:`\\sigma`.
    join_day : np.ndarray or None
        Each user's first possible rating day (days since 1970-01-01), for the full-shape generator.
    """

    user_ids: np.ndarray
    movie_ids: np.ndarray
    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    noise_std: float
    join_day: np.ndarray | None = None

    def predict(self, users, movies) -> np.ndarray:
        """:math:`\\mu + b_u + b_i + p_u^\\top q_i` (before noise, rounding and clipping) for raw ids."""
        u = np.searchsorted(self.user_ids, np.asarray(users))
        i = np.searchsorted(self.movie_ids, np.asarray(movies))
        return _model(self.global_mean, self.user_bias, self.item_bias, self.user_factors, self.item_factors, u, i)

    def save(self, path) -> None:
        """The model's arrays to one ``.npz`` (the model fields only, also for a :class:`NetflixGroundTruth`)."""
        np.savez(path, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(NetflixModel)
                          if getattr(self, f.name) is not None})

    @classmethod
    def load(cls, path) -> "NetflixModel":
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        d["global_mean"], d["noise_std"] = float(d["global_mean"]), float(d["noise_std"])
        return cls(**d)


@dataclass(kw_only=True)
class NetflixGroundTruth(NetflixModel):
    """Everything :func:`generate_netflix_sample` drew: the model and every line it wrote.

    Attributes
    ----------
    user_ids, movie_ids, global_mean, user_bias, item_bias, user_factors, item_factors, noise_std
        The model, as in :class:`NetflixModel` (its ``predict`` gives the expected rating before noise).
    ratings : NetflixRatings
        Every rating written to ``combined_data_*.txt``, in file order (what the parser must return).
    probe : pandas.DataFrame
        ``movie, user`` pairs of ``probe.txt`` in file order (a subset of ``ratings``, from each user's latest dates).
    qualifying : pandas.DataFrame
        ``movie, user, date`` of ``qualifying.txt`` in file order (pairs not in ``ratings``), with the hidden
        ``rating`` drawn from the same model.
    titles : pandas.DataFrame
        ``year`` (nullable Int64) and ``title`` indexed by movie id, as :func:`read_movie_titles` returns them.
    """

    ratings: NetflixRatings
    probe: pd.DataFrame
    qualifying: pd.DataFrame
    titles: pd.DataFrame
    files: list = field(default_factory=list)


def _model(mu, bu, bi, P, Q, u, i, block: int = 1 << 20) -> np.ndarray:
    """mu + b_u + b_i + p_u.q_i for index arrays, in blocks so the (n, k) temporaries stay small."""
    out = np.empty(len(u), dtype=np.float64)
    for s in range(0, len(u), block):
        uu, ii = u[s:s + block], i[s:s + block]
        out[s:s + block] = mu + bu[uu] + bi[ii] + np.einsum("nk,nk->n", P[uu], Q[ii])
    return out


def _unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a diff: faster than np.unique's hash path on these int64 keys)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def _draw(rng: np.random.Generator, p: np.ndarray, size: int, shuffle: bool = True) -> np.ndarray:
    """``size`` i.i.d. indices with probabilities ``p``: multinomial counts, repeated, then shuffled.

    Same distribution as ``rng.choice(len(p), size, p=p)`` but much faster for millions of draws; with
    ``shuffle=False`` the draws come sorted (pairing a sorted draw with a shuffled one is still i.i.d.).
    """
    counts = rng.multinomial(size, p)
    idx = np.repeat(np.arange(len(p), dtype=np.int64), counts)
    return rng.permutation(idx) if shuffle else idx


def _shuffled_order(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """A permutation sorting by ``groups`` with a random order inside each group (a stable radix sort)."""
    perm = rng.permutation(len(groups))
    small = groups[perm].astype(np.int16 if groups.max(initial=0) < 32768 else np.int32)
    return perm[np.argsort(small, kind="stable")]


def simulate_netflix(n_users: int = 3000, n_movies: int = 600, n_factors: int = 8, ratings_per_user: float = 50,
                     noise_std: float = 0.5, probe_frac: float = 0.014, seed: int = 0) -> NetflixGroundTruth:
    """Draw a Netflix-shaped data set in memory (no files): see :func:`generate_netflix_sample`."""
    if n_users < 1 or n_movies < 1 or n_factors < 1:
        raise ValueError(f"n_users, n_movies and n_factors must be >= 1, got {n_users}, {n_movies}, {n_factors}")
    n_target = int(round(n_users * ratings_per_user))
    if not max(n_users, n_movies) <= n_target <= 0.5 * n_users * n_movies:
        raise ValueError(f"n_users * ratings_per_user = {n_target} ratings must lie between max(n_users, n_movies) = "
                         f"{max(n_users, n_movies)} and half of n_users * n_movies = {n_users * n_movies // 2}")
    rng = np.random.default_rng(seed)

    # Sparse CustomerIDs like the real ones (1..2,649,429 with gaps), consecutive MovieIDs 1..n_movies.
    id_range = max(_MAX_CUSTOMER_ID, 2 * n_users)
    user_ids = np.sort(rng.choice(id_range, size=n_users, replace=False) + 1).astype(np.int32)
    movie_ids = np.arange(1, n_movies + 1, dtype=np.int32)

    # Long-tailed activity and popularity (log-normal weights): a few users and movies carry most ratings.
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = rng.lognormal(0.0, 1.2, n_movies)
    p_user, p_item = activity / activity.sum(), popularity / popularity.sum()

    # Pairs: every user and every movie gets at least one rating, the rest drawn by activity x popularity.
    n_m = np.int64(n_movies)
    base = np.concatenate([np.arange(n_users) * n_m + _draw(rng, p_item, n_users),
                           _draw(rng, p_user, n_movies) * n_m + np.arange(n_movies)])
    base = _unique(base)
    keys = base
    while len(keys) < n_target:
        m = int(1.3 * (n_target - len(keys))) + 16
        extra = _draw(rng, p_user, m, shuffle=False) * n_m + _draw(rng, p_item, m)
        keys = _unique(np.concatenate([keys, extra]))
    if len(keys) > n_target:  # keep the base pairs, a random subset of the others
        others = np.setdiff1d(keys, base, assume_unique=True)
        keep = rng.permutation(len(others))[:n_target - len(base)]
        keys = np.sort(np.concatenate([base, others[keep]]))
    u, i = keys // n_m, keys % n_m

    # The model: biases (popular movies rated a little higher, as in the real data) and factors.
    mu = 3.6
    bu = rng.normal(0.0, 0.35, n_users)
    log_pop = np.log(popularity)
    bi = rng.normal(0.0, 0.4, n_movies) + 0.15 * (log_pop - log_pop.mean()) / (log_pop.std() + 1e-12)
    scale = (0.3 / n_factors) ** 0.25  # p.q then has variance 0.3
    P = rng.normal(0.0, scale, (n_users, n_factors))
    Q = rng.normal(0.0, scale, (n_movies, n_factors))

    def draw(uu, ii):
        r = _model(mu, bu, bi, P, Q, uu, ii) + rng.normal(0.0, noise_std, len(uu))
        return np.clip(np.rint(r), 1, 5).astype(np.int8)

    rating = draw(u, i)
    # Dates: each user joins on a day of the real range and rates between then and its end.
    join = rng.integers(_FIRST_DAY, _LAST_DAY - 30, n_users)
    date = (join[u] + np.floor(rng.random(len(u)) * (_LAST_DAY + 1 - join[u]))).astype(np.int32)

    # File order: by movie, shuffled within a movie.
    order = _shuffled_order(rng, i)
    u, i, rating, date = u[order], i[order], rating[order], date[order]
    ratings = NetflixRatings(user=user_ids[u], movie=movie_ids[i].astype(np.int16 if n_movies < 32768 else np.int32),
                             rating=rating, date=date)

    # Probe: like the real one, drawn from each user's most recent ratings (up to 3, keeping one in train).
    counts = np.bincount(u, minlength=n_users)
    # one int64 key: user, then latest date first, then a random tie-break (a single fast integer sort)
    key = ((u << 40) | ((_LAST_DAY - date.astype(np.int64)) << 20)
           | rng.integers(0, 1 << 20, len(u)))
    recent_first = np.argsort(key)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(u), dtype=np.int64)
    rank[recent_first] = np.arange(len(u)) - np.repeat(starts, counts)
    candidates = np.flatnonzero(rank < np.minimum(3, counts[u] - 1))
    n_probe = min(len(candidates), int(round(probe_frac * len(u))))
    probe_rows = np.sort(rng.choice(candidates, n_probe, replace=False))  # sorted rows keep the movie order
    probe = pd.DataFrame({"movie": movie_ids[i[probe_rows]], "user": user_ids[u[probe_rows]]})

    # Qualifying: other pairs (not rated), dated after the user's last rating, with hidden ratings.
    n_qual = 2 * n_probe
    rated = np.sort(u * n_m + i)
    qual = np.empty(0, dtype=np.int64)
    for _ in range(100):  # a few rounds of vectorised rejection sampling
        if len(qual) >= n_qual:
            break
        m = 2 * (n_qual - len(qual)) + 16
        cand = _draw(rng, p_user, m, shuffle=False) * n_m + _draw(rng, p_item, m)
        pos = np.minimum(np.searchsorted(rated, cand), len(rated) - 1)
        cand = _unique(cand[rated[pos] != cand])
        qual = _unique(np.concatenate([qual, cand]))
    qual = np.sort(rng.permutation(qual)[:n_qual])
    qu, qi = qual // n_m, qual % n_m
    last = np.zeros(n_users, dtype=np.int64)  # each user's latest date: first in the recent-first order
    has = counts > 0
    last[has] = date[recent_first[starts[has]]]
    qdate = (last[qu] + np.floor(rng.random(len(qu)) * (_LAST_DAY + 1 - last[qu]))).astype(np.int32)
    qorder = _shuffled_order(rng, qi)
    qu, qi, qdate = qu[qorder], qi[qorder], qdate[qorder]
    qualifying = pd.DataFrame({"movie": movie_ids[qi], "user": user_ids[qu], "date": qdate,
                               "rating": draw(qu, qi)})

    titles = _titles(rng, n_movies, movie_ids)
    return NetflixGroundTruth(user_ids=user_ids, movie_ids=movie_ids, global_mean=mu, user_bias=bu, item_bias=bi,
                              user_factors=P, item_factors=Q, noise_std=noise_std, ratings=ratings, probe=probe,
                              qualifying=qualifying, titles=titles)


_ADJ = ["Silent", "Last", "Red", "Lost", "Hidden", "Broken", "Golden", "Dark", "Wild", "Secret", "Little", "Final",
        "Crimson", "Frozen", "Electric", "Quiet", "Endless", "Burning", "Distant", "Bitter"]
_NOUN = ["River", "Summer", "Night", "Empire", "Garden", "Road", "Storm", "Kingdom", "Island", "Letter", "Harbor",
         "Promise", "Mirror", "Station", "Horizon", "Echo", "Winter", "Journey", "Shadow", "Machine"]
_LATIN1 = ["Amélie", "Café", "Señor", "Niño", "Crème Brûlée", "Déjà Vu", "Mañana", "Fête", "Garçon", "Façade",
           "Müller", "Smörgåsbord"]


def _titles(rng: np.random.Generator, n_movies: int, movie_ids: np.ndarray) -> pd.DataFrame:
    """Made-up titles with the real file's quirks: commas, Latin-1 letters, NULL years."""
    a = rng.integers(0, len(_ADJ), n_movies)
    b = rng.integers(0, len(_NOUN), n_movies)
    c = rng.integers(0, len(_NOUN), n_movies)
    d = rng.integers(0, len(_LATIN1), n_movies)
    kind = rng.integers(0, 6, n_movies)
    kind[0], kind[min(1, n_movies - 1)] = 2, 3  # at least one title with commas and one with Latin-1 letters
    patterns = [
        lambda j: f"The {_ADJ[a[j]]} {_NOUN[b[j]]}",
        lambda j: f"{_NOUN[b[j]]} of the {_NOUN[c[j]]}",
        lambda j: f"{_NOUN[b[j]]}, {_NOUN[c[j]]}, and the {_ADJ[a[j]]} {_NOUN[b[j]]}",
        lambda j: f"{_LATIN1[d[j]]}",
        lambda j: f"{_LATIN1[d[j]]}: {_ADJ[a[j]]} {_NOUN[c[j]]}",
        lambda j: f"{_ADJ[a[j]]} {_NOUN[b[j]]}: Season {1 + c[j] % 5}",
    ]
    title = [patterns[kind[j]](j) for j in range(n_movies)]  # one per movie, not per rating
    year = pd.array(rng.integers(1920, 2006, n_movies), dtype="Int64")
    no_year = rng.random(n_movies) < 0.005
    no_year[n_movies - 1] = True  # at least one NULL year, as in the real file
    year[no_year] = pd.NA
    return pd.DataFrame({"year": year, "title": np.array(title, dtype=object)},
                        index=pd.Index(movie_ids.astype(np.int64), name="movie"))


# ---------------------------------------------------------------------------------------------------------------------
# Writing, vectorised: each line is a row of a byte matrix, a mask drops the unused columns
# ---------------------------------------------------------------------------------------------------------------------
_FOUR_DIGITS = np.frombuffer("".join(f"{k:04d}" for k in range(10000)).encode(), dtype=np.uint8).reshape(-1, 4)


def _digit_bytes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ASCII digits of integers 0..99,999,999 right-aligned in 8 columns, and the mask of the used ones.

    Two divisions and two lookups in a table of "0000".."9999" per value (no per-digit division).
    """
    v = values.astype(np.int64)
    if len(v) and (v.min() < 0 or v.max() >= 10 ** 8):
        raise ValueError("ids must lie in 0..99,999,999 (at most 8 digits)")
    digits = np.hstack([_FOUR_DIGITS[v // 10000], _FOUR_DIGITS[v % 10000]])
    n_digits = 1 + (v[:, None] >= 10 ** np.arange(1, 8, dtype=np.int64)).sum(axis=1)
    mask = np.arange(8) >= (8 - n_digits)[:, None]
    return digits, mask


def _const(n: int, text: str) -> tuple[np.ndarray, np.ndarray]:
    b = np.frombuffer(text.encode(), dtype=np.uint8)
    return np.broadcast_to(b, (n, len(b))), np.ones((n, len(b)), dtype=bool)


def _date_bytes(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = int(days.min()), int(days.max())
    table = np.datetime_as_string(np.arange(lo, hi + 1).astype("datetime64[D]"), unit="D").astype("S10")
    table = np.frombuffer(table.tobytes(), dtype=np.uint8).reshape(-1, 10)
    return table[days - lo], np.ones((len(days), 10), dtype=bool)


def _format_lines(movie: np.ndarray, fields: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """The text of ``MovieID:`` blocks: rows are sorted by movie; ``fields`` are (bytes, mask) column groups."""
    n = len(movie)
    body = np.hstack([f[0] for f in fields] + [_const(n, "\n")[0]])
    body_mask = np.hstack([f[1] for f in fields] + [_const(n, "\n")[1]])
    first = np.ones(n, dtype=bool)
    first[1:] = movie[1:] != movie[:-1]
    heads = np.flatnonzero(first)
    hd, hm = _digit_bytes(movie[heads])
    head = np.hstack([hd, _const(len(heads), ":\n")[0]])
    head_mask = np.hstack([hm, _const(len(heads), ":\n")[1]])
    width = max(body.shape[1], head.shape[1])
    rows = np.zeros((n + len(heads), width), dtype=np.uint8)
    mask = np.zeros((n + len(heads), width), dtype=bool)
    row_of = np.arange(n) + np.cumsum(first)  # each rating line comes after its block's header
    rows[row_of, :body.shape[1]] = body
    mask[row_of, :body.shape[1]] = body_mask
    rows[row_of[heads] - 1, :head.shape[1]] = head
    mask[row_of[heads] - 1, :head.shape[1]] = head_mask
    return rows[mask].tobytes()


def _write_blocks(path: Path, movie: np.ndarray, make_fields, block: int = 1 << 20) -> None:
    """Write rows sorted by movie to a new file (see :func:`_append_blocks`)."""
    with open(path, "wb") as f:
        _append_blocks(f, movie, make_fields, block)


def _append_blocks(f, movie: np.ndarray, make_fields, block: int = 1 << 20) -> None:
    """Write rows sorted by movie into an open file in slices of ``block`` rows, each starting at a movie boundary
    (a movie never spans two calls)."""
    bounds = np.flatnonzero(np.r_[True, movie[1:] != movie[:-1]])
    s = 0
    while s < len(movie):
        # the first movie boundary at or after s + block (a slice never splits a movie's header from its lines)
        k = np.searchsorted(bounds, s + block)
        e = int(bounds[k]) if k < len(bounds) else len(movie)
        f.write(_format_lines(movie[s:e], make_fields(slice(s, e))))
        s = e


def _write_titles(folder: Path, titles: pd.DataFrame) -> None:
    """``movie_titles.csv`` as Kaggle's: ``MovieID,YearOfRelease,Title`` in Latin-1, ``NULL`` for a missing year."""
    year = titles["year"].astype(object).where(titles["year"].notna(), "NULL").astype(str)
    lines = titles.index.astype(str) + "," + year.to_numpy() + "," + titles["title"].to_numpy(dtype=str)
    (folder / "movie_titles.csv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def write_netflix_files(folder, truth: NetflixGroundTruth, n_files: int = 4) -> list[Path]:
    """Write ``truth`` in the Kaggle layout; returns the ``combined_data`` paths (movie ranges of similar size)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = truth.ratings
    movie = r.movie.astype(np.int64)
    # split the movies into n_files ranges holding similar numbers of ratings, as the four Kaggle files do
    n_files = max(1, min(n_files, len(_unique(movie))))
    cuts = np.searchsorted(movie, np.quantile(movie, np.arange(1, n_files) / n_files), side="right")
    edges = _unique(np.concatenate([[0], cuts, [len(movie)]]))
    paths = []
    for j, (s, e) in enumerate(zip(edges[:-1], edges[1:]), start=1):
        p = folder / f"combined_data_{j}.txt"
        _write_blocks(p, movie[s:e], lambda sl, s=s: [
            _digit_bytes(r.user[s:][sl]), _const(sl.stop - sl.start, ","),
            ((r.rating[s:][sl].astype(np.uint8) + 48)[:, None], np.ones((sl.stop - sl.start, 1), bool)),
            _const(sl.stop - sl.start, ","), _date_bytes(r.date[s:][sl])])
        paths.append(p)
    pr = truth.probe
    _write_blocks(folder / "probe.txt", pr["movie"].to_numpy(np.int64),
                  lambda sl: [_digit_bytes(pr["user"].to_numpy()[sl])])
    q = truth.qualifying
    _write_blocks(folder / "qualifying.txt", q["movie"].to_numpy(np.int64),
                  lambda sl: [_digit_bytes(q["user"].to_numpy()[sl]), _const(sl.stop - sl.start, ","),
                              _date_bytes(q["date"].to_numpy()[sl])])
    _write_titles(folder, truth.titles)
    return paths


def generate_netflix_sample(folder, n_users: int = 3000, n_movies: int = 600, n_factors: int = 8,
                            ratings_per_user: float = 50, noise_std: float = 0.5, probe_frac: float = 0.014,
                            seed: int = 0) -> NetflixGroundTruth:
    """Write a Netflix Prize stand-in in exactly the Kaggle format, drawn from a known biased-MF model.

    Writes ``combined_data_1..4.txt`` (movie ranges of similar size), ``probe.txt`` (about ``probe_frac`` of the
    ratings, from each user's latest dates, as the real probe), ``qualifying.txt`` (unrated pairs dated after the
    user's ratings) and ``movie_titles.csv`` (Latin-1, titles with commas, at least one ``NULL`` year).

    Parameters
    ----------
    folder : path
        Created if needed; existing files of those names are overwritten.
    n_users, n_movies, n_factors : int
        Sizes of the model. CustomerIDs are sparse (drawn from 1..2,649,429 like the real ones); MovieIDs are
        ``1..n_movies``.
    ratings_per_user : float
        Mean ratings per user (activity is log-normal, so medians are lower and a few users rate a lot).
        The defaults give 150,000 ratings; 10 million (the N1 benchmark) take about a minute.
    noise_std : float
        Standard deviation :math:`\\sigma` of the Gaussian noise before rounding: an RMSE floor for any model.
    probe_frac : float
        Fraction of the ratings listed in ``probe.txt`` (the real probe holds 1.4%).
    seed : int
        Everything is drawn from ``numpy.random.default_rng(seed)``.

    Returns
    -------
    NetflixGroundTruth
        Ids, factors, biases, noise level and every written line, so a parser round trip can be checked exactly.

    Notes
    -----
    Used by: Chapter 1 (the default sample, :func:`netflix_sample_dir`) and ``benchmarks/netflix_parse.py`` (N1).
    Model: Koren, Bell & Volinsky (2009). Writing is vectorised per block of about a million lines.
    """
    truth = simulate_netflix(n_users, n_movies, n_factors, ratings_per_user, noise_std, probe_frac, seed)
    truth.files = write_netflix_files(folder, truth)
    return truth


def netflix_sample_truth() -> NetflixGroundTruth:
    """The ground truth of the default sample of :func:`netflix_sample_dir` (drawn in memory, no files written)."""
    return simulate_netflix(**SAMPLE_DEFAULTS)


def netflix_sample_dir(cache_dir=None) -> Path:
    """The folder of the default generated Netflix sample, written once into the cache (deterministic).

    Used by: Chapter 1 and :func:`mfkit.data.load_netflix` when no Netflix folder is given or set in
    ``$MFKIT_NETFLIX_DIR``.
    """
    target = data_home(cache_dir) / f"netflix-sample-v{_SAMPLE_VERSION}"
    if (target / ".complete").exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".netflix-sample-", dir=target.parent))
    try:
        generate_netflix_sample(tmp, **SAMPLE_DEFAULTS)
        (tmp / ".complete").write_text("generated by mfkit.data.generate_netflix_sample\n")
        if (target / ".complete").exists():  # another process finished first: use its copy
            return target
        if target.exists():  # a partial folder from an interrupted run
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / ".complete").exists():  # not a concurrent writer finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------------------------------
# Full Netflix shape, streamed: the model in memory, the ratings drawn and written movie range by movie range
# ---------------------------------------------------------------------------------------------------------------------
#: The size of the real Netflix Prize training data (Bennett & Lanning 2007): users, movies, ratings.
NETFLIX_SHAPE = dict(n_users=480_189, n_movies=17_770, n_ratings=100_480_507)
FULL_DEFAULTS = dict(n_factors=3, noise_std=0.9, user_sigma=1.1, movie_sigma=1.8, probe_frac=0.014, seed=0)
_TRUTH_FILE = "mfkit_truth.npz"


class _Alias:
    """Walker's alias table: O(1) draws from a fixed discrete distribution (vectorised)."""

    def __init__(self, p: np.ndarray):
        n = len(p)
        prob = np.asarray(p, dtype=np.float64) * n / np.sum(p)
        alias = np.arange(n, dtype=np.int64)
        small = list(np.flatnonzero(prob < 1.0))
        large = list(np.flatnonzero(prob >= 1.0))
        while small and large:  # O(n) Python loop, run once per data set (n = 480k users: well under a second)
            s, g = small.pop(), large[-1]
            alias[s] = g
            prob[g] -= 1.0 - prob[s]
            if prob[g] < 1.0:
                small.append(large.pop())
        prob[large] = 1.0
        prob[small] = 1.0
        self.prob, self.alias = prob, alias

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        j = rng.integers(0, len(self.prob), size)
        return np.where(rng.random(size) < self.prob[j], j, self.alias[j])


def _largest_remainder(total: int, w: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, proportional to ``w`` (Hamilton's method)."""
    x = total * w / w.sum()
    c = np.floor(x).astype(np.int64)
    rest = int(total - c.sum())
    if rest:
        c[np.argsort(c - x, kind="stable")[:rest]] += 1
    return c


def _full_plan(n_users, n_movies, n_ratings, n_factors, noise_std, user_sigma, movie_sigma, seed):
    """The model and the per-movie rating counts (everything drawn before any rating)."""
    rng = np.random.default_rng([seed, 0])
    id_range = max(_MAX_CUSTOMER_ID, 2 * n_users)
    user_ids = np.sort(rng.choice(id_range, size=n_users, replace=False) + 1).astype(np.int32)
    movie_ids = np.arange(1, n_movies + 1, dtype=np.int32)
    activity = rng.lognormal(0.0, user_sigma, n_users)
    popularity = rng.lognormal(0.0, movie_sigma, n_movies)
    # each movie rated by at most a quarter of the users, and expected to be rated at least a few times
    cap = max(1.0, 0.25 * n_users)
    for _ in range(50):
        share = n_ratings * popularity / popularity.sum()
        if share.max() <= cap * 1.0001:
            break
        popularity = np.minimum(popularity, popularity * cap / share)
    popularity = np.maximum(popularity, popularity.sum() * min(5.0, n_ratings / n_movies / 4) / n_ratings)
    counts = _largest_remainder(n_ratings - n_users, popularity)  # plus one "base" rating per user below
    base_movie = _Alias(popularity).draw(rng, n_users)  # every user rates at least this movie
    counts += np.bincount(base_movie, minlength=n_movies)
    counts = np.minimum(counts, n_users)  # (only binds for tiny sizes)
    mu = 3.6
    bu = rng.normal(0.0, 0.35, n_users)
    log_pop = np.log(popularity)
    bi = rng.normal(0.0, 0.4, n_movies) + 0.15 * (log_pop - log_pop.mean()) / (log_pop.std() + 1e-12)
    scale = (0.3 / n_factors) ** 0.25
    P = rng.normal(0.0, scale, (n_users, n_factors))
    Q = rng.normal(0.0, scale, (n_movies, n_factors))
    join = rng.integers(_FIRST_DAY, _LAST_DAY - 30, n_users)
    model = NetflixModel(user_ids, movie_ids, mu, bu, bi, P, Q, float(noise_std), join)
    return model, activity, popularity, counts, base_movie


def _movie_pairs(seed, c0, c1, counts, base_movie, alias, p_user, n_users):
    """Users rating movies ``c0..c1-1`` (each movie exactly ``counts[m]`` distinct users, the base pairs kept),
    in file order (by movie, shuffled within a movie), with their dates drawn by :func:`_movie_dates`."""
    rng = np.random.default_rng([seed, 1, c0])
    n_u = np.int64(n_users)
    in_range = (base_movie >= c0) & (base_movie < c1)
    base = (base_movie[in_range] - c0) * n_u + np.flatnonzero(in_range)
    target = counts[c0:c1]
    keys = np.sort(base)
    for _ in range(200):
        movie = keys // n_u
        have = np.bincount(movie, minlength=c1 - c0)
        deficit = target - have
        if (deficit <= 0).all():
            break
        seen = np.bincount(movie, weights=p_user[keys % n_u], minlength=c1 - c0)
        m = np.where(deficit > 0, np.ceil(1.1 * deficit / np.maximum(1.0 - seen, 0.02)) + 1, 0).astype(np.int64)
        extra = np.repeat(np.arange(c1 - c0, dtype=np.int64), m) * n_u + alias.draw(rng, int(m.sum()))
        keys = _unique(np.concatenate([keys, extra]))
    else:
        raise RuntimeError("could not draw enough distinct users per movie")
    # keep the base pairs and a random subset of the others; order: movie, then a random key (a shuffle per movie)
    prio = rng.random(len(keys))
    prio[np.isin(keys, base, assume_unique=True)] = -1.0
    movie = keys // n_u
    order = np.lexsort((prio, movie))
    starts = np.concatenate([[0], np.cumsum(np.bincount(movie, minlength=c1 - c0))[:-1]])
    rank = np.arange(len(keys)) - starts[movie[order]]
    kept = order[rank < target[movie[order]]]
    kept = kept[np.lexsort((rng.random(len(kept)), movie[kept]))]
    return movie[kept] + c0, keys[kept] % n_u, rng


def _movie_dates(rng, user, join):
    """Each rating's day: uniform between the user's join day and the end of the real range."""
    j = join[user]
    return (j + np.floor(rng.random(len(user)) * (_LAST_DAY + 1 - j))).astype(np.int32)


def _chunks_by_count(counts: np.ndarray, per_chunk: int) -> list[tuple[int, int]]:
    """Consecutive movie ranges holding about ``per_chunk`` ratings each."""
    cum = np.cumsum(counts)
    cuts = np.searchsorted(cum, np.arange(per_chunk, cum[-1], per_chunk), side="left") + 1
    edges = _unique(np.concatenate([[0], cuts, [len(counts)]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def generate_netflix_full(folder, scale: float = 1.0, n_factors: int = 3, noise_std: float = 0.9,
                          user_sigma: float = 1.1, movie_sigma: float = 1.8, probe_frac: float = 0.014,
                          seed: int = 0, chunk_ratings: int = 4_000_000, n_files: int = 4) -> NetflixModel:
    """Write a data set of the full Netflix Prize shape (or ``scale`` of it) in the Kaggle format, streamed.

    At ``scale=1`` it writes :data:`NETFLIX_SHAPE`: 480,189 users, 17,770 movies and 100,480,507 ratings in
    ``combined_data_1..4.txt``, with ``probe.txt`` (about ``probe_frac`` of the ratings, from each user's three
    latest days, as the real probe), ``qualifying.txt`` (unrated pairs dated after the user's last rating),
    ``movie_titles.csv`` and the planted model in ``mfkit_truth.npz`` (see :func:`netflix_full_truth`). Smaller
    ``scale`` keeps the 17,770 movies and the per-user distribution and scales users and ratings.

    The model is that of :func:`generate_netflix_sample` (biased MF with Gaussian noise, rounded and clipped to
    1..5); activity and popularity are log-normal (``user_sigma``, ``movie_sigma``). At full size the median user
    rates 129 movies against a mean of 209 (real data: 96 and 209), every user at least one, every movie at least
    a few, and no movie is rated by more than a quarter of the users (the real top movie: about half). The
    defaults plant rank 3 with noise 0.9, so that the noise floor sits near the best real Netflix RMSEs
    (about 0.86).

    Memory stays bounded: only the model (O(users + movies)) and one movie range of about ``chunk_ratings``
    ratings are held at a time. Two passes draw the same ranges from per-range seeds: the first finds each user's
    latest dates (the probe candidates), the second writes. At full size: about 3 minutes of CPU time (6 minutes
    wall on a shared 2-core machine), 1.2 GB peak resident memory, 2.1 GB of files.

    Used by: Chapter 8 (``benchmarks/netflix_full.py`` and the chapter's slice). The small default sample of
    :func:`netflix_sample_dir` is drawn by :func:`simulate_netflix` and does not change.

    Returns
    -------
    NetflixModel
        The planted model (also written to ``folder/mfkit_truth.npz``).
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale must lie in (0, 1], got {scale}")
    n_movies = NETFLIX_SHAPE["n_movies"]
    n_users = max(1, int(round(NETFLIX_SHAPE["n_users"] * scale)))
    n_ratings = int(round(NETFLIX_SHAPE["n_ratings"] * scale))
    if n_ratings < 2 * n_users or n_ratings < n_movies:
        raise ValueError(f"scale={scale} is too small: {n_ratings} ratings for {n_users} users and {n_movies} "
                         "movies (need at least 2 per user and 1 per movie)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, activity, popularity, counts, base_movie = _full_plan(
        n_users, n_movies, n_ratings, n_factors, noise_std, user_sigma, movie_sigma, seed)
    p_user = activity / activity.sum()
    alias = _Alias(p_user)
    chunks = _chunks_by_count(counts, chunk_ratings)

    # pass 1: each user's three latest (day, random tie-break) keys, merged chunk by chunk
    top = np.full((n_users, 3), -1, dtype=np.int64)
    n_rated = np.zeros(n_users, dtype=np.int64)
    for c0, c1 in chunks:
        movie, user, rng = _movie_pairs(seed, c0, c1, counts, base_movie, alias, p_user, n_users)
        day = _movie_dates(rng, user, model.join_day)
        key = (day.astype(np.int64) << 40) | (np.arange(len(user), dtype=np.int64) + (np.int64(c0) << 25))
        n_rated += np.bincount(user, minlength=n_users)
        o = np.lexsort((-key, user))  # this range's keys by user, latest first
        us, ks = user[o], key[o]
        starts = np.flatnonzero(np.r_[True, us[1:] != us[:-1]])
        rank = np.arange(len(us)) - np.repeat(starts, np.diff(np.r_[starts, len(us)]))
        new = np.full((n_users, 3), -1, dtype=np.int64)
        new[us[rank < 3], rank[rank < 3]] = ks[rank < 3]
        both = np.sort(np.concatenate([top, new], axis=1), axis=1)
        top = both[:, :-4:-1].copy()  # the three largest, latest first
    # probe: among each user's latest ratings (up to 3, always keeping one for training)
    n_cand = np.minimum(3, n_rated - 1)
    cand_mask = np.arange(3)[None, :] < n_cand[:, None]
    cand = top[cand_mask]
    rng = np.random.default_rng([seed, 2])
    n_probe = min(len(cand), int(round(probe_frac * n_ratings)))
    probe_keys = np.sort(rng.choice(cand, n_probe, replace=False))
    last_day = (top[:, 0] >> 40).astype(np.int64)

    # pass 2: the same ranges again, now with ratings, written as they come
    # combined_data files: movie ranges holding similar numbers of ratings, as the four Kaggle files do
    before = np.cumsum(counts) - counts
    file_of = np.minimum(before * n_files // counts.sum(), n_files - 1)
    files = {}
    qual_rng = np.random.default_rng([seed, 3])
    q_counts = _largest_remainder(2 * n_probe, popularity)
    q_alias = alias
    probe_file = open(folder / "probe.txt", "wb")
    qual_file = open(folder / "qualifying.txt", "wb")
    try:
        for c0, c1 in chunks:
            movie, user, rng = _movie_pairs(seed, c0, c1, counts, base_movie, alias, p_user, n_users)
            day = _movie_dates(rng, user, model.join_day)
            key = (day.astype(np.int64) << 40) | (np.arange(len(user), dtype=np.int64) + (np.int64(c0) << 25))
            r = _model(model.global_mean, model.user_bias, model.item_bias, model.user_factors,
                       model.item_factors, user, movie) + rng.normal(0.0, noise_std, len(user))
            rating = np.clip(np.rint(r), 1, 5).astype(np.int8)
            raw_user, raw_movie = model.user_ids[user], model.movie_ids[movie].astype(np.int64)
            for f in np.unique(file_of[c0:c1]):
                rows = np.flatnonzero(file_of[movie] == f)
                if f not in files:
                    files[f] = open(folder / f"combined_data_{f + 1}.txt", "wb")
                _append_blocks(files[f], raw_movie[rows], lambda sl, rows=rows: [
                    _digit_bytes(raw_user[rows][sl]), _const(sl.stop - sl.start, ","),
                    ((rating[rows][sl].astype(np.uint8) + 48)[:, None], np.ones((sl.stop - sl.start, 1), bool)),
                    _const(sl.stop - sl.start, ","), _date_bytes(day[rows][sl])])
            pos = np.searchsorted(probe_keys, key)
            is_probe = probe_keys[np.minimum(pos, len(probe_keys) - 1)] == key if len(probe_keys) else key < 0
            pr = np.flatnonzero(is_probe)
            if len(pr):
                _append_blocks(probe_file, raw_movie[pr], lambda sl, pr=pr: [_digit_bytes(raw_user[pr][sl])])
            # qualifying: unrated pairs of these movies, dated after the user's last rating
            qn = q_counts[c0:c1]
            qm = np.repeat(np.arange(c0, c1, dtype=np.int64), qn)
            qu = q_alias.draw(qual_rng, len(qm))
            rated = np.sort(movie.astype(np.int64) * n_users + user)
            qk = qm * n_users + qu
            hit = rated[np.minimum(np.searchsorted(rated, qk), len(rated) - 1)] == qk
            qk = _unique(qk[~hit])
            qm, qu = qk // n_users, qk % n_users
            qo = np.lexsort((qual_rng.random(len(qm)), qm))
            qm, qu = qm[qo], qu[qo]
            qday = (last_day[qu] + np.floor(qual_rng.random(len(qu)) * (_LAST_DAY + 1 - last_day[qu]))).astype(
                np.int32)
            if len(qm):
                q_raw_user = model.user_ids[qu]
                _append_blocks(qual_file, model.movie_ids[qm].astype(np.int64), lambda sl: [
                    _digit_bytes(q_raw_user[sl]), _const(sl.stop - sl.start, ","), _date_bytes(qday[sl])])
    finally:
        for f in files.values():
            f.close()
        probe_file.close()
        qual_file.close()
    titles = _titles(np.random.default_rng([seed, 4]), n_movies, model.movie_ids)
    _write_titles(folder, titles)
    model.save(folder / _TRUTH_FILE)
    return model


def netflix_full_truth(folder) -> NetflixModel:
    """The planted model that :func:`generate_netflix_full` wrote into ``folder`` (``mfkit_truth.npz``).

    With :func:`mfkit.scale.noise_floor_rmse` it gives the noise floor on the probe pairs without holding the
    ratings. Raises FileNotFoundError for a folder that the generator did not write (e.g. the real data).
    """
    path = Path(folder) / _TRUTH_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: only folders written by generate_netflix_full carry the "
                                "planted model (the real Netflix data has no known ground truth)")
    return NetflixModel.load(path)


_FULL_VERSION = "2"  # bump when generate_netflix_full changes: cached folders are then regenerated


def netflix_full_dir(scale: float = 1.0, cache_dir=None, **kwargs) -> Path:
    """The folder of :func:`generate_netflix_full` at ``scale`` (default settings), written once into the cache.

    Used by: Chapter 8 and ``benchmarks/netflix_full.py`` (generation is excluded from their timings). Other
    settings of :func:`generate_netflix_full` may be passed; they become part of the folder's name.
    """
    extra = "".join(f"-{k}{v}" for k, v in sorted(kwargs.items()))
    target = data_home(cache_dir) / f"netflix-full-v{_FULL_VERSION}-s{scale:g}{extra}"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".netflix-full-", dir=target.parent))
    try:
        generate_netflix_full(tmp, scale=scale, **kwargs)
        (tmp / ".complete").write_text("generated by mfkit.data.generate_netflix_full\n")
        if (target / ".complete").exists():
            return target
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
