"""Tests of mfkit.neural: NCF (GMF, MLP, NeuMF) and the two-tower model (Chapter 7)."""
import math

import numpy as np
import pytest
import torch

from mfkit.data import Interactions
from mfkit.metrics import ranking_metrics, rmse
from mfkit.neural import (GMF, MLP, NCF, NeuMF, Tower, TwoTower, in_batch_softmax_loss, positive_keys,
                          sample_negatives)


# -- planted data ----------------------------------------------------------------------------------------------------
def planted_implicit(n_users=60, n_items=40, n_groups=4, per_user=8, seed=0):
    """Users and items fall in ``n_groups`` groups; each user interacts with items of its own group only.

    Returns (train, test): per user, 6 interactions to train and 2 to test. A model that learns the groups ranks the
    test items among the ~4 unseen items of the user's group; random ranking puts them among all ~34 unseen items.
    """
    rng = np.random.default_rng(seed)
    group_size = n_items // n_groups
    users, items = [], []
    for u in range(n_users):  # building the fixture row by row is fine: 60 users
        g = u % n_groups
        own = rng.choice(np.arange(g * group_size, (g + 1) * group_size), size=per_user, replace=False)
        users += [u] * per_user
        items += own.tolist()
    users, items = np.array(users), np.array(items)
    data = Interactions.from_raw(users, items, ratings=np.full(len(users), 4.0))
    test = np.zeros(len(users), dtype=bool)
    test[np.arange(len(users)) % per_user >= per_user - 2] = True
    return data.subset(~test), data.subset(test)


def planted_ratings(n_users=80, n_items=60, k=3, per_user=30, seed=1):
    """Ratings from a rank-``k`` model plus biases and noise; returns (train, test) with 80/20 rows."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 0.7, (n_users, k)), rng.normal(0, 0.7, (n_items, k))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    r = 3.5 + bu[users] + bi[items] + (p[users] * q[items]).sum(1) + rng.normal(0, 0.2, len(users))
    data = Interactions.from_raw(users, items, ratings=np.clip(r, 1, 5))
    test = rng.random(len(users)) < 0.2
    return data.subset(~test), data.subset(test)


# -- networks --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: GMF(7, 9, 4), lambda: MLP(7, 9, (8, 6, 3)), lambda: NeuMF(7, 9, 4, (8, 5))])
def test_shapes_and_all_items_scoring_matches_pairwise(make, device):
    torch.manual_seed(0)
    net = make().to(device)
    with torch.no_grad():
        for p in net.parameters():  # non-trivial weights, so the MLP's split first layer is really exercised
            p.normal_(0, 0.5)
    users = torch.tensor([0, 3, 6], device=device)
    all_scores = net.score_all(users)
    assert all_scores.shape == (3, 9)
    u = users.repeat_interleave(9)
    i = torch.arange(9, device=device).repeat(3)
    pairwise = net(u, i)
    assert pairwise.shape == (27,)
    torch.testing.assert_close(all_scores.reshape(-1), pairwise, rtol=1e-5, atol=1e-5)


def test_gmf_with_identity_output_is_a_dot_product(device):
    net = GMF(5, 6, 3).to(device)
    with torch.no_grad():
        net.output.weight.fill_(1.0)
        net.output.bias.zero_()
    u = torch.tensor([0, 1, 4, 4], device=device)
    i = torch.tensor([5, 0, 2, 3], device=device)
    expected = (net.user_embedding.weight[u] * net.item_embedding.weight[i]).sum(1)
    torch.testing.assert_close(net(u, i), expected)
    torch.testing.assert_close(net.score_all(u), net.user_embedding.weight[u] @ net.item_embedding.weight.T)


def test_mlp_rejects_odd_first_layer():
    with pytest.raises(ValueError, match="even first"):
        MLP(3, 3, (7, 4))


def test_neumf_from_pretrained_averages_the_two_outputs(device):
    torch.manual_seed(1)
    gmf, mlp = GMF(6, 8, 4).to(device), MLP(6, 8, (8, 4)).to(device)
    neumf = NeuMF(6, 8, 4, (8, 4)).to(device).load_pretrained(gmf, mlp, alpha=0.3)
    u, i = torch.tensor([0, 2, 5], device=device), torch.tensor([7, 1, 3], device=device)
    torch.testing.assert_close(neumf(u, i), 0.3 * gmf(u, i) + 0.7 * mlp(u, i))
    with pytest.raises(ValueError, match="alpha"):
        neumf.load_pretrained(gmf, mlp, alpha=1.5)


# -- negative sampling -----------------------------------------------------------------------------------------------
def test_negative_sampling_avoids_positives_and_has_the_right_count(device):
    gen = torch.Generator(device=device).manual_seed(0)
    n_items = 10
    # user 0 has 9 of the 10 items: only item 4 is a valid negative; user 1 has two items
    user = torch.tensor([0] * 9 + [1, 1], device=device)
    item = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8, 9, 2, 7], device=device)
    keys = positive_keys(user, item, n_items)
    neg_user, neg_item, left = sample_negatives(user, keys, n_items, n_negatives=5, generator=gen,
                                                return_collisions=True)
    assert left == 0
    assert neg_user.shape == neg_item.shape == (len(user) * 5,)
    torch.testing.assert_close(neg_user, user.repeat_interleave(5))
    assert not torch.isin(neg_user * n_items + neg_item, keys).any()
    assert (neg_item[neg_user == 0] == 4).all()
    assert ((neg_item >= 0) & (neg_item < n_items)).all()


def test_negative_sampling_is_roughly_uniform_over_the_unobserved_items(device):
    gen = torch.Generator(device=device).manual_seed(0)
    user = torch.zeros(3, dtype=torch.long, device=device)
    keys = positive_keys(user, torch.tensor([0, 1, 2], device=device), 8)
    _, neg_item = sample_negatives(user.repeat(2000), keys, 8, n_negatives=2, generator=gen)
    share = torch.bincount(neg_item, minlength=8).float() / neg_item.numel()
    assert (share[:3] == 0).all()
    assert torch.allclose(share[3:], torch.full((5,), 0.2, device=device), atol=0.02)


def test_negative_sampling_rejects_a_user_with_every_item():
    user = torch.zeros(3, dtype=torch.long)
    keys = positive_keys(user, torch.arange(3), 3)
    with pytest.raises(ValueError, match="every item"):
        sample_negatives(user, keys, 3)
    with pytest.raises(ValueError, match="n_negatives"):
        sample_negatives(user, keys, 4, n_negatives=0)


# -- in-batch softmax ------------------------------------------------------------------------------------------------
def test_in_batch_softmax_loss_matches_hand_computation(device):
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]], device=device)
    v = torch.tensor([[1.0, 1.0], [0.5, -1.0]], device=device)
    # logits / temperature 0.5: [[1, .5], [2, -2]] / .5 = [[2, 1], [4, -4]]
    expected = -0.5 * (math.log(math.exp(2) / (math.exp(2) + math.exp(1)))
                       + math.log(math.exp(-4) / (math.exp(4) + math.exp(-4))))
    assert in_batch_softmax_loss(u, v, temperature=0.5).item() == pytest.approx(expected, rel=1e-5)
    # logQ correction: subtract log Q of each column's item
    log_q = torch.log(torch.tensor([0.5, 0.25], device=device))
    a = [2 - math.log(0.5), 1 - math.log(0.25)]
    b = [4 - math.log(0.5), -4 - math.log(0.25)]
    expected_q = -0.5 * (a[0] - math.log(sum(map(math.exp, a))) + b[1] - math.log(sum(map(math.exp, b))))
    assert in_batch_softmax_loss(u, v, 0.5, item_log_q=log_q).item() == pytest.approx(expected_q, rel=1e-5)
    # the same item twice in a batch is not its own negative: each row is then a softmax over one logit
    assert in_batch_softmax_loss(u, v, 0.5, item_ids=torch.tensor([3, 3], device=device)).item() == \
        pytest.approx(0.0, abs=1e-6)


def test_in_batch_softmax_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="batch, d"):
        in_batch_softmax_loss(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="temperature"):
        in_batch_softmax_loss(torch.zeros(2, 2), torch.zeros(2, 2), temperature=0.0)


# -- estimators ------------------------------------------------------------------------------------------------------
def random_ranking_precision(train, test, k=5):
    """Expected precision@k of a uniformly random ranking of each user's unseen items."""
    seen = np.bincount(train.user, minlength=train.n_users)
    rel = np.bincount(test.user, minlength=train.n_users)
    users = rel > 0
    return float(np.mean(rel[users] / (train.n_items - seen[users])))


@pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
def test_ncf_implicit_learns_planted_groups(kind, device):
    train, test = planted_implicit()
    # an MLP needs more steps than GMF to find "same group" from a concatenation (the point of Rendle et al. 2020)
    model = NCF(kind, "implicit", n_factors=8, layers=(32, 16), n_negatives=4, lr=0.01, n_epochs=40, batch_size=128,
                device=device, random_state=0).fit(train)
    losses = model.history_.loss
    assert losses[-1] < 0.8 * losses[0]
    got = ranking_metrics(model, train, test, k=5, device=device)["precision"]
    baseline = random_ranking_precision(train, test, k=5)
    assert baseline < 0.08
    assert got > 2.5 * baseline, (got, baseline)


def test_two_tower_learns_planted_groups_and_caches_item_vectors(device):
    train, test = planted_implicit()
    model = TwoTower(n_factors=8, tower_layers=(16, 8), temperature=0.2, lr=0.01, n_epochs=30, batch_size=64,
                     device=device, random_state=0).fit(train)
    losses = model.history_.loss
    assert losses[-1] < 0.8 * losses[0]
    got = ranking_metrics(model, train, test, k=5, device=device)["precision"]
    assert got > 2.5 * random_ranking_precision(train, test, k=5)
    # the cached item vectors give the towers' scores
    cache = model.item_vectors()
    assert model.item_vectors() is cache
    users = torch.arange(train.n_users, device=device)
    scores = model.score_users(users)
    u, i = users.repeat_interleave(train.n_items), torch.arange(train.n_items, device=device).repeat(train.n_users)
    torch.testing.assert_close(scores.reshape(-1), model.predict(u, i), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cache, model.net_.item_tower(torch.arange(train.n_items, device=device)))


def test_two_tower_options_change_training_and_validate_input():
    train, _ = planted_implicit()
    a = TwoTower(n_factors=4, n_epochs=2, batch_size=32, device="cpu", logq_correction=True).fit(train)
    b = TwoTower(n_factors=4, n_epochs=2, batch_size=32, device="cpu", logq_correction=False).fit(train)
    assert a.history_.loss != b.history_.loss
    n = TwoTower(n_factors=4, n_epochs=2, batch_size=32, normalize=True, device="cpu").fit(train)
    torch.testing.assert_close(n.item_vectors().norm(dim=1), torch.ones(train.n_items), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        TwoTower(batch_size=1)
    with pytest.raises(ValueError, match="temperature"):
        TwoTower(temperature=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        TwoTower().item_vectors()


@pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
def test_ncf_rating_task_beats_the_global_mean(kind, device):
    train, test = planted_ratings()
    model = NCF(kind, "rating", n_factors=8, layers=(16, 8), lr=0.01, reg=1e-3, n_epochs=30, batch_size=256,
                device=device).fit(train, test, patience=5)
    assert model.history_.loss[-1] < 0.8 * model.history_.loss[0]
    tu, ti, tr = test.to_tensors(device)
    baseline = rmse(torch.full_like(tr, float(train.rating.mean())), tr)
    got = rmse(model.predict(tu, ti), tr, clip=(1, 5))
    assert got < 0.85 * baseline, (got, baseline)
    assert model.history_.best_metric == pytest.approx(got, abs=1e-6)  # the best epoch was restored


def test_rating_prediction_for_unseen_users_falls_back_to_mean_and_biases():
    train, _ = planted_ratings()
    keep = train.user != 0  # user 0 is never seen in training
    model = NCF("mlp", "rating", layers=(8, 4), n_epochs=3, batch_size=512, device="cpu").fit(train.subset(keep))
    item = torch.tensor([1, 2, 3])
    pred = model.predict(torch.zeros(3, dtype=torch.long), item)
    expected = model.net_.global_mean + model.net_.item_bias.weight[item, 0]
    torch.testing.assert_close(pred, expected)


def test_neumf_estimator_starts_from_pretrained_parts():
    train, test = planted_implicit()
    common = dict(n_factors=8, layers=(16, 8), lr=0.01, n_epochs=10, batch_size=256, device="cpu")
    gmf = NCF("gmf", "implicit", **common).fit(train)
    mlp = NCF("mlp", "implicit", **common).fit(train)
    # a pretrained NeuMF starts where its parts ended: its first-epoch loss is below a cold start's
    warm = NCF("neumf", "implicit", pretrained=(gmf, mlp), **{**common, "n_epochs": 1}).fit(train)
    cold = NCF("neumf", "implicit", **{**common, "n_epochs": 1}).fit(train)
    assert warm.history_.loss[0] < 0.8 * cold.history_.loss[0]
    with pytest.raises(ValueError, match="pretrained"):
        NCF("neumf", "implicit", pretrained=(mlp, gmf), **common).fit(train)
    with pytest.raises(ValueError, match="only applies"):
        NCF("gmf", pretrained=(gmf, mlp))


def test_recommend_excludes_training_items_and_validates():
    train, _ = planted_implicit()
    model = NCF("gmf", "implicit", n_factors=4, n_epochs=2, batch_size=256, device="cpu").fit(train)
    raw_user = train.user_ids[5]
    top = model.recommend(raw_user, k=7)
    assert len(top) == 7 and list(top.columns) == ["user_id", "item_id", "title", "score", "rank"]
    seen = set(train.item_ids[train.item[train.user == 5]])
    assert not seen & set(top["item_id"])
    assert np.all(np.diff(top["score"].to_numpy()) <= 0)
    with pytest.raises(ValueError, match="indices"):
        model.score_users([train.n_users])
    with pytest.raises(ValueError, match="kind"):
        NCF("deep")
    with pytest.raises(ValueError, match="task"):
        NCF("gmf", task="ranking")
    with pytest.raises(ValueError, match="ratings"):
        NCF("gmf", "rating").fit(Interactions.from_raw(np.array([1, 2]), np.array([1, 1])))


def test_tower_without_layers_is_its_embedding():
    tower = Tower(5, 3)
    idx = torch.tensor([4, 0])
    torch.testing.assert_close(tower(idx), tower.embedding.weight[idx])
    assert Tower(5, 3, (8, 2)).out_features == 2


def test_in_batch_softmax_loss_with_extra_negatives(device):
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]], device=device)
    v = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], device=device)  # two batch items, one extra negative
    # logits [[2, 0, 1], [0, 1, 1]]; extra item id 7 equals row 0's item, so row 0 masks it
    ids = torch.tensor([7, 8, 7], device=device)
    row0 = 2 - math.log(math.exp(2) + math.exp(0))
    row1 = 1 - math.log(math.exp(0) + math.exp(1) + math.exp(1))
    assert in_batch_softmax_loss(u, v, 1.0, item_ids=ids).item() == pytest.approx(-(row0 + row1) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="batch"):
        in_batch_softmax_loss(u, v[:1])


def test_two_tower_with_uniform_negatives_learns():
    train, test = planted_implicit()
    model = TwoTower(n_factors=8, temperature=0.2, lr=0.01, n_epochs=30, batch_size=64, n_uniform_negatives=16,
                     device="cpu").fit(train)
    assert ranking_metrics(model, train, test, k=5, device="cpu")["precision"] > \
        2.5 * random_ranking_precision(train, test, k=5)
    with pytest.raises(ValueError, match="n_uniform_negatives"):
        TwoTower(n_uniform_negatives=-1)


def test_tune_selects_on_validation_and_sets_the_epochs():
    from mfkit.training import tune

    train, _ = planted_implicit()
    result = tune(NCF, train, {"reg": [0.0, 10.0]},
                  base_params={"kind": "gmf", "n_factors": 8, "lr": 0.01, "n_epochs": 15, "batch_size": 128,
                               "device": "cpu"})
    best, table = result.best_params, result.table
    assert list(table["reg"]) == [0.0, 10.0]  # a huge penalty keeps every score near 0: worse nDCG
    assert table["ndcg"].iloc[0] > table["ndcg"].iloc[1]
    assert best["reg"] == 0.0 and best["n_epochs"] == table["best_epoch"].iloc[0]
    with pytest.raises(ValueError, match="grid"):
        tune(NCF, train, [], base_params={"kind": "gmf"})


def test_an_mlp_approximates_a_dot_product_only_roughly():
    from mfkit.neural import mlp_learns_dot_product

    small = mlp_learns_dot_product(n_factors=4, hidden=8, n_train=2000, n_test=2000, n_steps=300, device="cpu")
    wide = mlp_learns_dot_product(n_factors=4, hidden=128, n_train=2000, n_test=2000, n_steps=300, device="cpu")
    assert 0.9 < small["target_std"] < 1.1
    # it learns something, more with more units, and is still far from the exact answer (RMSE 0) a dot product gives
    assert wide["test_rmse"] < small["test_rmse"] < small["target_std"]
    assert wide["test_rmse"] > 0.05
    with pytest.raises(ValueError, match=">= 1"):
        mlp_learns_dot_product(hidden=0)
