"""Bayesian SVD++ and the flipped model: options of the one Gibbs sampler (mfkit.explicit.BayesianMF)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mfkit.data import Interactions
from mfkit.explicit import BayesianMF, _ImplicitLinks, evaluate


def _svdpp_data(n_users=120, n_items=60, seed=0):
    """Ratings driven by WHICH items a user rated: the user's taste is the mean of the rated items' vectors."""
    rng = np.random.default_rng(seed)
    y, q = rng.normal(size=(n_items, 2)), rng.normal(size=(n_items, 2))
    group = rng.integers(0, 2, n_items)
    users, items, ratings = [], [], []
    for u in range(n_users):
        # a user picks items of one group mostly: the choice says something about the taste
        p = np.where(group == u % 2, 0.45, 0.05)
        chosen = np.flatnonzero(rng.random(n_items) < p)
        taste = y[chosen].sum(0) / np.sqrt(len(chosen))
        r = 3 + q[chosen] @ taste + rng.normal(0, 0.3, len(chosen))
        users += [u] * len(chosen)
        items += list(chosen)
        ratings += list(np.clip(r, 1, 5))
    return Interactions.from_raw(np.array(users), np.array(items), ratings=np.array(ratings, dtype=np.float32))


def test_implicit_links_sums_and_scan_lists_match_a_hand_computation():
    rows, cols = np.array([0, 0, 1, 2, 2, 2, 0]), np.array([1, 3, 3, 0, 1, 3, 1])  # (0, 1) twice: counted once
    links = _ImplicitLinks(rows, cols, 4, 5, "cpu", torch.float32)
    y = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    expect = torch.stack([(y[1] + y[3]) / np.sqrt(2), y[3], (y[0] + y[1] + y[3]) / np.sqrt(3), torch.zeros(2)])
    assert torch.allclose(links.sums(y), expect, atol=1e-6)
    assert links.used.tolist() == [True, True, False, True, False]
    j = 3  # item 3 is in the sets of rows 0, 1, 2
    lo, hi = links.indptr[j], links.indptr[j + 1]
    assert links.rows[lo:hi].tolist() == [0, 1, 2]
    assert np.allclose(links.w[lo:hi], [1 / np.sqrt(2), 1, 1 / np.sqrt(3)])


def test_implicit_none_is_bayesian_mf_and_bad_option_raises():
    data = _svdpp_data(40, 30)
    a = BayesianMF(n_factors=3, n_samples=4, burn_in=2, device="cpu").fit(data)
    b = BayesianMF(n_factors=3, n_samples=4, burn_in=2, implicit="none", device="cpu").fit(data, implicit_pairs=data)
    assert torch.equal(a.score_users([0, 1, 2]), b.score_users([0, 1, 2]))
    with pytest.raises(ValueError, match="implicit"):
        BayesianMF(implicit="users")


@pytest.mark.parametrize("implicit", ["user", "item", "both"])
def test_implicit_variants_are_deterministic_and_finite(implicit):
    data = _svdpp_data(40, 30)
    fit = lambda: BayesianMF(n_factors=3, n_samples=4, burn_in=2, implicit=implicit, device="cpu").fit(data)  # noqa
    a, b = fit(), fit()
    assert torch.isfinite(a.score_users(list(range(40)))).all()
    assert torch.equal(a.score_users([0, 5]), b.score_users([0, 5]))
    assert a.user_factors_.shape == (40, 4 * 3)


def test_svdpp_uses_which_items_were_rated():
    """Held-out ratings of users with few training ratings: SVD++ that sees the held-out pairs without their ratings
    (transductive) beats Bayesian MF."""
    data = _svdpp_data()
    rng = np.random.default_rng(1)
    test_mask = rng.random(len(data)) < 0.5
    train, test = data.subset(~test_mask), data.subset(test_mask)
    kw = dict(n_factors=2, n_samples=30, burn_in=15, alpha=4.0, device="cpu")
    bmf = evaluate(BayesianMF(**kw).fit(train), test)["rmse"]
    trans = evaluate(BayesianMF(implicit="user", **kw).fit(train, implicit_pairs=test), test)["rmse"]
    assert trans < bmf - 0.02, (bmf, trans)


def test_cold_user_with_implicit_pairs_gets_a_personal_prediction():
    data = _svdpp_data(40, 30)
    cold = data.user == 0
    train, pairs = data.subset(~cold), data.subset(cold)
    model = BayesianMF(n_factors=3, n_samples=4, burn_in=2, implicit="user", device="cpu").fit(train,
                                                                                             implicit_pairs=pairs)
    scores = model.score_users([0])[0]
    plain = model.global_mean_ + model.item_bias_  # what a cold user gets without implicit information
    assert model.user_bias_[0] == 0 and not torch.allclose(scores, plain)
