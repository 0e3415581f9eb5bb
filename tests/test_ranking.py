"""Chapter 9's models and evaluation: BPR, item kNN, EASE, confidence-weighted ALS, sampled metrics, beyond accuracy."""
import numpy as np
import pytest
import torch

from mfkit.data import Interactions
from mfkit.implicit import Popularity
from mfkit.metrics import ranking_metrics
from mfkit.observed import observed_pairs
from mfkit.ranking import (BPR, EASE, ConfidenceMF, ItemKNN, _gini, beyond_accuracy, bpr_loss, ease_memory_bytes,
                           fit_and_score, sample_negatives, sampled_ranking_metrics)
from mfkit.training import DivergenceError


def planted_low_rank(n_users=120, n_items=80, rank=3, per_user=12, seed=0, ratings=False):
    """An implicit matrix drawn from a planted low-rank preference plus a popularity tilt: each user's items are the
    ``per_user`` of highest ``u·v + noise``; a quarter of each user's items held out at random."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    pop = rng.normal(size=n_items) * 0.5
    affinity = U @ V.T + pop[None, :] + 0.3 * rng.normal(size=(n_users, n_items))
    items = np.argsort(-affinity, axis=1)[:, :per_user]
    u = np.repeat(np.arange(n_users), per_user)
    i = items.reshape(-1)
    r = np.clip(np.round(3 + affinity[u, i] / 2), 1, 5) if ratings else None
    data = Interactions.from_raw(u, i, r)
    held_out = rng.random(len(data)) < 0.25
    return data.subset(~held_out), data.subset(held_out)


def tiny(rows):
    """Interactions from a list of (user, item) pairs with users 0.. and items 0.. (every index present)."""
    u, i = np.array(rows).T
    return Interactions.from_raw(u, i)


# -- EASE --------------------------------------------------------------------------------------------------------------
def test_ease_matches_a_direct_numpy_solve(device):
    train, _ = planted_low_rank(n_users=30, n_items=12, per_user=4)
    X = train.to_csr("ones").toarray().astype(np.float64)
    lam = 5.0
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    model = EASE(reg=lam, dtype="float64", device=device).fit(train)
    np.testing.assert_allclose(model.weights_.cpu().numpy(), B, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.score_users(np.arange(5)).cpu().numpy(), (X @ B)[:5], rtol=1e-5, atol=1e-6)
    # the constrained least-squares optimality: the gradient vanishes off the diagonal
    grad = -X.T @ (X - X @ B) + lam * B
    off = ~np.eye(len(B), dtype=bool)
    assert np.abs(grad[off]).max() < 1e-8


def test_ease_refuses_a_catalogue_too_large_with_the_size_and_an_alternative():
    train, _ = planted_low_rank(n_users=30, n_items=12, per_user=4)
    need = ease_memory_bytes(12)
    assert need == 3 * 12 * 12 * 4
    with pytest.raises(ValueError, match=r"EASE on 12 items needs .*GiB.*ItemKNN"):
        EASE(max_bytes=need - 1, device="cpu").fit(train)
    assert ease_memory_bytes(100_000) > 100 * 2 ** 30  # 100k items: ~112 GiB, refused by the default limit
    with pytest.raises(ValueError, match="reg"):
        EASE(reg=0.0)


# -- item kNN ----------------------------------------------------------------------------------------------------------
def test_item_knn_similarities_match_a_hand_computation(device):
    # items 0..3; users: 0 has {0,1}, 1 has {0,1,2}, 2 has {0,2}, 3 has {3}
    train = tiny([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (3, 3)])
    shrink = 1.0
    model = ItemKNN(n_neighbors=3, shrink=shrink, device=device).fit(train)
    # |U_0| = 3, |U_1| = 2, |U_2| = 2, |U_3| = 1; co-occurrences: (0,1) = 2, (0,2) = 2, (1,2) = 1, item 3 none
    expect = {(0, 1): 2 / (np.sqrt(3 * 2) + shrink), (0, 2): 2 / (np.sqrt(3 * 2) + shrink),
              (1, 2): 1 / (np.sqrt(2 * 2) + shrink), (0, 3): 0.0}
    for (i, j), s in expect.items():
        assert model.similarity(i, j) == pytest.approx(s, abs=1e-6)
        assert model.similarity(j, i) == pytest.approx(s, abs=1e-6)
    # user 3 (item 3 only) scores item 1 by s_31 = 0; user 2 ({0, 2}) scores item 1 by s_01 + s_21
    scores = model.score_users([2]).cpu().numpy()[0]
    assert scores[1] == pytest.approx(expect[(0, 1)] + expect[(1, 2)], abs=1e-6)


def test_item_knn_keeps_only_the_nearest_neighbours(device):
    train = tiny([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (3, 3)])
    model = ItemKNN(n_neighbors=1, shrink=0.0, device=device).fit(train)
    assert tuple(model.neighbors_.shape) == (4, 1)
    # item 1's single nearest item is 0 (cosine 2/sqrt(6) > 1/2 for item 2)
    assert int(model.neighbors_[1, 0]) == 0
    assert model.similarity(2, 1) == 0.0


def test_item_knn_refuses_more_neighbours_than_items():
    train = tiny([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (3, 3)])
    with pytest.raises(ValueError, match=r"n_neighbors=4 is more than the 3 other items"):
        ItemKNN(n_neighbors=4, device="cpu").fit(train)
    with pytest.raises(ValueError, match="n_neighbors"):
        ItemKNN(n_neighbors=0)


def test_item_knn_blocks_give_the_same_model():
    train, _ = planted_low_rank(n_users=40, n_items=30, per_user=6)
    a = ItemKNN(n_neighbors=5, block_size=7, device="cpu").fit(train)
    b = ItemKNN(n_neighbors=5, block_size=4096, device="cpu").fit(train)
    torch.testing.assert_close(a.score_users(np.arange(40)), b.score_users(np.arange(40)))


# -- BPR ---------------------------------------------------------------------------------------------------------------
def test_bpr_loss_is_minus_log_sigmoid_of_the_difference():
    pos, neg = torch.tensor([2.0, -1.0, 30.0]), torch.tensor([0.5, 1.0, -40.0])
    expect = -torch.log(torch.sigmoid(pos - neg)).mean()
    torch.testing.assert_close(bpr_loss(pos, neg), expect)
    assert torch.isfinite(bpr_loss(torch.tensor([-100.0]), torch.tensor([100.0])))  # no overflow


@pytest.mark.parametrize("popularity", [False, True])
def test_negative_sampling_avoids_positives(popularity):
    train, _ = planted_low_rank()
    user, item = observed_pairs(train)
    keys = torch.from_numpy(user * train.n_items + item)
    probs = torch.from_numpy(np.bincount(item, minlength=train.n_items).astype(np.float64)) if popularity else None
    users = torch.from_numpy(user).repeat(5)
    gen = torch.Generator().manual_seed(0)
    neg = sample_negatives(users, keys, train.n_items, probabilities=probs, generator=gen)
    assert not np.isin(users.numpy() * train.n_items + neg.numpy(), keys.numpy()).any()
    if popularity:  # popular items are drawn more often than rare ones
        counts = np.bincount(neg.numpy(), minlength=train.n_items)
        pop = probs.numpy()
        assert counts[pop >= np.quantile(pop, 0.9)].mean() > 2 * counts[pop <= np.quantile(pop, 0.1)].mean()


def test_bpr_refuses_a_user_with_every_item():
    rows = [(0, i) for i in range(5)] + [(1, 0), (2, 1)]
    with pytest.raises(ValueError, match=r"user 0 .*has interacted with all 5 items: BPR has no negative"):
        BPR(n_factors=2, n_epochs=1, device="cpu").fit(tiny(rows))


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_bpr_loss_decreases_and_beats_popularity_on_a_planted_matrix(device, sampling):
    train, test = planted_low_rank()
    model = BPR(n_factors=8, lr=0.05, reg=1e-4, n_epochs=40, batch_size=256, sampling=sampling,
                pop_exponent=0.5, device=device).fit(train)
    loss = model.history_.loss
    assert loss[-1] < 0.5 * loss[0]
    ours = ranking_metrics(model, train, test, device=device)["ndcg"]
    pop = ranking_metrics(Popularity(device=device).fit(train), train, test, device=device)["ndcg"]
    assert ours > pop + 0.05, (ours, pop)


def test_bpr_is_reproducible_and_keeps_its_best_validation_epoch():
    train, test = planted_low_rank()
    a = BPR(n_factors=4, n_epochs=6, batch_size=256, device="cpu", random_state=3).fit(train, test)
    b = BPR(n_factors=4, n_epochs=6, batch_size=256, device="cpu", random_state=3).fit(train, test)
    torch.testing.assert_close(a.user_factors_, b.user_factors_)
    best = ranking_metrics(a, train, test, device="cpu")["ndcg"]
    assert best == pytest.approx(a.history_.best_metric, abs=1e-9)


def test_bpr_diverges_loudly():
    train, _ = planted_low_rank()
    with pytest.raises(DivergenceError):
        BPR(n_factors=4, n_epochs=5, lr=1e6, device="cpu").fit(train)


# -- confidence-weighted ALS ---------------------------------------------------------------------------------------
def test_confidence_mf_solves_hu_et_al_normal_equations():
    train, _ = planted_low_rank(n_users=20, n_items=15, per_user=5, ratings=True)
    model = ConfidenceMF(n_factors=3, alpha=2.0, reg=0.5, confidence="rating", n_epochs=3, device="cpu").fit(train)
    R = train.to_csr("rating").toarray().astype(np.float64)
    C = 1 + 2.0 * R
    Pref = (R > 0).astype(np.float64)
    X = model.user_factors_.double().numpy()
    Y = model.item_factors_.double().numpy()
    # the last half-sweep solved the items given the users: check item 0's normal equations directly
    j = 0
    A = X.T @ (C[:, j:j + 1] * X) + 0.5 * np.eye(3)
    b = X.T @ (C[:, j] * Pref[:, j])
    np.testing.assert_allclose(Y[j], np.linalg.solve(A, b), rtol=1e-4, atol=1e-5)
    assert model.history_.loss[-1] <= model.history_.loss[0] + 1e-9


def test_confidence_mf_binary_beats_popularity_and_rating_needs_ratings(device):
    train, test = planted_low_rank()
    model = ConfidenceMF(n_factors=8, alpha=5.0, reg=1.0, n_epochs=8, device=device).fit(train)
    ours = ranking_metrics(model, train, test, device=device)["ndcg"]
    pop = ranking_metrics(Popularity(device=device).fit(train), train, test, device=device)["ndcg"]
    assert ours > pop + 0.05
    with pytest.raises(ValueError, match="ratings"):
        ConfidenceMF(confidence="rating", device="cpu").fit(train)


# -- evaluation --------------------------------------------------------------------------------------------------------
class FixedScores:
    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def score_users(self, users):
        return self.scores[users.cpu()]


def _one_user_201_items():
    """One user, 201 items scored by their index; the held-out item 0 scores 189.5 (below items 190..200); item 200
    is the user's training item."""
    n = 201
    scores = np.arange(n, dtype=np.float32)[None, :].copy()
    scores[0, 0] = n - 11.5
    data = Interactions.from_raw(np.zeros(n, dtype=int), np.arange(n))
    return scores, data.subset(np.arange(n) == 0), data.subset(np.arange(n) == 200)


def test_sampled_metrics_rank_against_the_sampled_items_only():
    scores, test, train = _one_user_201_items()
    model = FixedScores(scores)
    full = ranking_metrics(model, train, test, k=10, device="cpu")
    assert full["hit_rate"] == 0.0  # 190..199 outrank it (200 is in train): rank 11
    sampled = sampled_ranking_metrics(model, train, test, n_negatives=100, k=10, seed=0, device="cpu")
    # 100 of the 199 unobserved negatives hold about 5 of the 10 better ones: a hit near rank 6
    assert sampled["hit_rate"] == 1.0 and sampled["n_rows"] == 1
    ranks = [sampled_ranking_metrics(model, train, test, n_negatives=100, k=10, seed=s, device="cpu")["ndcg"]
             for s in range(20)]
    assert 0.2 < np.mean(ranks) < 0.5


def test_sampled_metrics_split_ties_and_validate():
    n = 50
    data = Interactions.from_raw(np.zeros(n, dtype=int), np.arange(n))
    test, train = data.subset(np.arange(n) == 0), data.subset(np.arange(n) == 1)
    flat = FixedScores(np.zeros((1, n)))
    out = sampled_ranking_metrics(flat, train, test, n_negatives=40, k=30, device="cpu")
    assert out["hit_rate"] == 1.0  # rank 20 (half of 40 ties) < 30
    assert sampled_ranking_metrics(flat, train, test, n_negatives=40, k=20, device="cpu")["hit_rate"] == 0.0
    with pytest.raises(ValueError, match="n_negatives=49"):
        sampled_ranking_metrics(flat, train, test, n_negatives=49, device="cpu")


def test_beyond_accuracy_of_popularity_and_a_personal_model():
    train, _ = planted_low_rank()
    pop = beyond_accuracy(Popularity(device="cpu").fit(train), train, k=5, device="cpu")
    assert pop["popular_overlap"] == 1.0
    knn = beyond_accuracy(ItemKNN(n_neighbors=20, device="cpu").fit(train), train, k=5, device="cpu")
    assert knn["coverage"] > pop["coverage"] and knn["popular_overlap"] < 1.0
    assert knn["mean_popularity"] < pop["mean_popularity"]
    assert 0 <= knn["gini"] <= pop["gini"] <= 1


def test_gini_known_values():
    assert _gini(np.ones(10)) == pytest.approx(0.0)
    assert _gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert _gini(np.zeros(3)) == 0.0


def test_fit_and_score_fits_in_place_and_adds_sampled_columns():
    train, test = planted_low_rank(n_items=200)
    models = {"popularity": Popularity(device="cpu"), "EASE": EASE(reg=10.0, device="cpu")}
    table = fit_and_score(models, train, test, sampled=True, device="cpu")
    assert list(table.index) == ["popularity", "EASE"] and models["EASE"].is_fitted
    assert {"ndcg", "precision", "recall", "hit_rate", "sampled_hr", "sampled_ndcg", "fit_s"} <= set(table.columns)
    assert table.loc["EASE", "ndcg"] == pytest.approx(ranking_metrics(models["EASE"], train, test)["ndcg"])


def test_sampled_metrics_draws_repeat_the_single_draw_sequence():
    scores, test, train = _one_user_201_items()
    many = sampled_ranking_metrics(FixedScores(scores), train, test, n_draws=4, seed=3, device="cpu")
    first = sampled_ranking_metrics(FixedScores(scores), train, test, seed=3, device="cpu")
    assert len(many["ndcg_draws"]) == 4 and many["ndcg_draws"][0] == pytest.approx(first["ndcg"])
    assert many["ndcg"] == pytest.approx(np.mean(many["ndcg_draws"]))
