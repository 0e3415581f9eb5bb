"""iALS options of the one weighted-ALS solver (WeightedMF): normalised frequency-scaled λ, init σ = 0.1/√d."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mfkit.data import Interactions
from mfkit.implicit import WeightedMF, row_regularisation


def _data(seed=0, n_users=50, n_items=40):
    rng = np.random.default_rng(seed)
    same = (np.arange(n_users)[:, None] % 2) == (np.arange(n_items)[None, :] % 2)
    u, i = np.nonzero(rng.random((n_users, n_items)) < np.where(same, 0.4, 0.1))
    return Interactions.from_raw(u, i)


def _fit(data, **kw):
    base = dict(n_factors=6, unobserved_weight=0.2, n_epochs=4, device="cpu", show_progress=False)
    return WeightedMF(**{**base, **kw}).fit(data)


def test_normalised_reg_at_nu_zero_is_plain_reg():
    data = _data()
    a, b = _fit(data, reg=3.0, reg_scaling=0.0), _fit(data, reg=3.0, reg_scaling=0.0, reg_normalised=True)
    assert torch.allclose(a.user_factors_, b.user_factors_, atol=1e-6)


def test_normalised_reg_divides_by_the_mean_multiplier():
    data = _data()
    users, items = np.bincount(data.user, minlength=data.n_users), np.bincount(data.item, minlength=data.n_items)
    mean = np.concatenate([row_regularisation(users, data.n_items, 0.2, 1.0),
                           row_regularisation(items, data.n_users, 0.2, 1.0)]).mean()
    a = _fit(data, reg=5.0, reg_scaling=1.0, reg_normalised=True)
    b = _fit(data, reg=5.0 / mean, reg_scaling=1.0)
    assert torch.allclose(a.item_factors_, b.item_factors_, atol=1e-4, rtol=1e-4)


def test_auto_init_scale_is_point_one_over_sqrt_d():
    data = _data()
    a = _fit(data, init_scale="auto", n_factors=16)
    b = _fit(data, init_scale=0.1 / 4.0, n_factors=16)
    assert torch.equal(a.user_factors_, b.user_factors_)
    with pytest.raises(ValueError, match="init_scale"):
        WeightedMF(init_scale="big")
