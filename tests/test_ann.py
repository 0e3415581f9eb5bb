"""ANNIndex's filtered search (over-fetching) and catalogue_like (Chapter 10)."""
import numpy as np
import pytest

from mfkit import serving as S

pytest.importorskip("faiss")


def _data(n_items=500, d=8, n_q=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_items, d)).astype(np.float32), rng.standard_normal((n_q, d)).astype(np.float32)


def test_search_excluding_returns_full_top_k_without_excluded():
    items, queries = _data()
    index = S.ANNIndex(items, M=16, ef_construction=100, ef_search=100)
    _, exact = S.top_k_exact(queries, items, k=len(items), device="cpu")
    exact = exact.numpy()
    exclude = [exact[q, :40] for q in range(len(queries))]  # each query's 40 best items are "seen"
    scores, found = index.search(queries, 10, exclude=exclude, overfetch=0)  # the retry loop must cover it
    assert (found >= 0).all() and np.isfinite(scores).all()
    for q in range(len(queries)):
        assert not set(found[q]) & set(exclude[q])
        assert len(set(found[q]) & set(exact[q, 40:50])) >= 9
    assert index.ef_search == 100  # restored after the call


def test_search_excluding_everything_leaves_missing_slots():
    items, queries = _data(n_items=30, n_q=2)
    index = S.ANNIndex(items)
    scores, found = index.search(queries, 5, exclude=[np.arange(28), np.arange(30)])
    assert (found[0, :2] >= 0).all() and (found[0, 2:] == -1).all()
    assert (found[1] == -1).all() and np.isneginf(scores[1]).all()


def test_search_excluding_checks_arguments():
    items, queries = _data(n_q=3)
    index = S.ANNIndex(items)
    with pytest.raises(ValueError, match="one array of item indices per query"):
        index.search(queries, 5, exclude=[[1]])
    with pytest.raises(ValueError, match="overfetch"):
        index.search(queries, 5, exclude=[[1]] * 3, overfetch=-1)


def test_catalogue_like_keeps_the_norm_distribution():
    rng = np.random.default_rng(1)
    heavy = rng.standard_normal((2000, 16)) * rng.lognormal(0, 0.8, (2000, 1))  # heavy-tailed norms
    fake = S.catalogue_like(heavy, 20_000, noise=0.05, seed=0)
    assert fake.shape == (20_000, 16) and fake.dtype == np.float32
    q = [0.5, 0.9, 0.99]
    ratio = np.quantile(np.linalg.norm(fake, axis=1), q) / np.quantile(np.linalg.norm(heavy, axis=1), q)
    assert np.allclose(ratio, 1, atol=0.08)
    with pytest.raises(ValueError, match="at least two vectors"):
        S.catalogue_like(np.zeros(3), 5)
