"""The paired comparison of two models (mfkit.metrics.paired_comparison): a hand-computed example for each design,
and Hypothesis properties (swapping A and B flips the sign and the verdict; identical models always tie)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfkit.metrics import paired_comparison


def test_over_seeds_matches_a_hand_computed_t_interval():
    # per-seed differences 0.1, 0.15, 0.2: mean 0.15, sd 0.05, t(0.975, 2) = 4.302653 -> half-width 0.124207
    c = paired_comparison([0.5, 0.6, 0.7], [0.4, 0.45, 0.5], names=("X", "Y"), metric="nDCG@10")
    assert c.unit == "split seeds" and c.n == 3
    assert c.difference == pytest.approx(0.15)
    assert c.low == pytest.approx(0.15 - 0.124207, abs=1e-6)
    assert c.high == pytest.approx(0.15 + 0.124207, abs=1e-6)
    assert c.verdict == "A ahead" and c.winner == "X"
    assert "X ahead" in str(c) and "[+0.0258, +0.2742]" in str(c)


def test_over_seeds_wide_spread_is_a_tie_and_lower_is_better_for_errors():
    tie = paired_comparison([0.50, 0.40], [0.45, 0.46])  # differences +0.05 and -0.06
    assert tie.verdict == "tie" and tie.winner is None and tie.low < 0 < tie.high
    rmse = paired_comparison([0.90, 0.91, 0.92], [0.95, 0.97, 0.96], metric="RMSE", higher_is_better=False)
    assert rmse.high < 0 and rmse.verdict == "A ahead"


def test_over_users_constant_difference_has_a_degenerate_interval():
    c = paired_comparison(np.full(50, 0.3), np.full(50, 0.2))
    assert c.unit == "users" and c.n == 50
    assert (c.low, c.difference, c.high) == pytest.approx((0.1, 0.1, 0.1))
    assert c.verdict == "A ahead"


def test_over_users_bootstrap_interval_covers_the_mean_and_shrinks_with_users():
    rng = np.random.default_rng(0)
    small = paired_comparison(rng.normal(0.01, 0.2, 100), np.zeros(100))
    large = paired_comparison(rng.normal(0.01, 0.2, 10_000), np.zeros(10_000))
    assert small.low < small.difference < small.high
    assert (large.high - large.low) < (small.high - small.low) / 5  # ~ 1/sqrt(n): 10x fewer, with slack
    # the bootstrap standard error is close to the analytic one, sd / sqrt(n)
    d = rng.normal(0.0, 1.0, 400)
    c = paired_comparison(d, np.zeros(400), n_boot=20_000)
    assert (c.high - c.low) / (2 * 1.96) == pytest.approx(d.std(ddof=1) / 20, rel=0.08)


def test_series_are_aligned_by_user_and_different_users_are_refused():
    a = pd.Series([0.3, 0.1, 0.2], index=[7, 3, 5])
    b = pd.Series([0.2, 0.3, 0.0], index=[5, 7, 3])  # same users, another order
    c = paired_comparison(a, b)
    assert c.difference == pytest.approx(((0.3 - 0.3) + (0.1 - 0.0) + (0.2 - 0.2)) / 3)
    with pytest.raises(ValueError, match="different users"):
        paired_comparison(a, pd.Series([0.1, 0.2, 0.3], index=[7, 3, 9]))


@pytest.mark.parametrize("a, b, match", [
    ([0.5], [0.4], "at least two split seeds"),
    ([0.5, 0.6], [0.4], "pair them seed by seed"),
    (np.array([0.1, np.nan]), np.array([0.1, 0.2]), "non-finite"),
    (np.array([0.1, 0.2]), np.array([0.1, 0.2, 0.3]), "one value per unit"),
    (np.array([]), np.array([]), "non-empty"),
])
def test_bad_input_is_refused_with_a_reason(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(a, b)


values = st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=2, max_size=40)


@settings(max_examples=60, deadline=None, database=None)
@given(st.data())
def test_swapping_flips_sign_and_verdict(data):
    a = data.draw(values)
    b = data.draw(st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=len(a), max_size=len(a)))
    over = data.draw(st.sampled_from(["users", "seeds"]))
    if over == "users":
        a, b = np.array(a), np.array(b)
    ab = paired_comparison(a, b, over=over, n_boot=200)
    ba = paired_comparison(b, a, over=over, n_boot=200)
    assert ba.difference == pytest.approx(-ab.difference, abs=1e-12)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low), abs=1e-12)
    swapped = {"A ahead": "B ahead", "B ahead": "A ahead", "tie": "tie"}
    assert ba.verdict == swapped[ab.verdict]


@settings(max_examples=40, deadline=None, database=None)
@given(values, st.sampled_from(["users", "seeds"]))
def test_identical_models_always_tie(a, over):
    x = np.array(a) if over == "users" else a
    c = paired_comparison(x, x, over=over, n_boot=200)
    assert c.difference == 0 and c.verdict == "tie"
