"""Weighted MF for implicit feedback: the loss three ways, the ALS step, the estimator and its helpers."""
import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import Interactions
from mfkit import als
from mfkit.implicit import (Popularity, WeightedMF, autograd_saved_bytes,
                            row_regularisation, weighted_loss_dense, weighted_loss_gram)
from mfkit.metrics import ranking_metrics, top_k_items
from mfkit.training import DivergenceError, tune


def random_problem(n_users=9, n_items=13, k=4, density=0.3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(n_users, k, generator=gen, dtype=dtype)
    V = torch.randn(n_items, k, generator=gen, dtype=dtype)
    R = (torch.rand(n_users, n_items, generator=gen) < density).to(dtype)
    user, item = R.nonzero(as_tuple=True)
    return U, V, R, user, item


def block_data(n_users=60, n_items=40, p=0.5, seed=0):
    """Two taste groups: users of group g interact with items of group g only (with probability p)."""
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % 2
    item_group = np.arange(n_items) % 2
    cells = (user_group[:, None] == item_group[None, :]) & (rng.random((n_users, n_items)) < p)
    u, i = np.nonzero(cells)
    items = pd.DataFrame({"title": [f"movie {j}" for j in range(n_items)]}, index=1000 + np.arange(n_items))
    data = Interactions.from_raw(100 + u, 1000 + i, item_meta=items)
    held_out = rng.random(len(data)) < 0.25
    return data.subset(~held_out), data.subset(held_out)


# -- the loss ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("scaled", [False, True])
def test_gram_loss_and_gradients_equal_dense(device, reduction, scaled):
    U, V, R, user, item = (t.to(device) for t in random_problem())
    user_reg = torch.linspace(0.5, 2.0, U.shape[0], dtype=U.dtype, device=device) if scaled else None
    item_reg = torch.linspace(1.0, 3.0, V.shape[0], dtype=U.dtype, device=device) if scaled else None
    grads = []
    for fn in (lambda A, B: weighted_loss_dense(A, B, R, 0.07, 0.3, user_reg=user_reg, item_reg=item_reg,
                                                reduction=reduction),
               lambda A, B: weighted_loss_gram(A, B, user, item, 0.07, 0.3, user_reg=user_reg, item_reg=item_reg,
                                               reduction=reduction)):
        A, B = U.clone().requires_grad_(), V.clone().requires_grad_()
        loss = fn(A, B)
        loss.backward()
        grads.append((loss.detach(), A.grad, B.grad))
    (l1, gu1, gv1), (l2, gu2, gv2) = grads
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gu1, gu2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gv1, gv2, rtol=1e-10, atol=1e-12)


def test_dense_loss_is_the_seeds_formula():
    U, V, R, _, _ = random_problem()
    X = U @ V.T
    w, reg = 0.005, 0.2
    want = ((1 - X[R > 0]) ** 2).sum() + w * (X[R == 0] ** 2).sum() + reg * ((U ** 2).sum() + (V ** 2).sum())
    assert float(weighted_loss_dense(U, V, R, w, reg, reduction="sum")) == pytest.approx(float(want), rel=1e-12)
    assert float(weighted_loss_dense(U, V, R, w, reg)) == pytest.approx(float(want) / R.numel(), rel=1e-12)


def test_sigmoid_and_logistic_losses():
    U, V, R, _, _ = random_problem()
    w = 0.1
    P = torch.sigmoid(U @ V.T)
    weight = torch.where(R > 0, torch.ones_like(R), torch.full_like(R, w))
    sig = (weight * (R - P) ** 2).sum()
    assert float(weighted_loss_dense(U, V, R, w, 0.0, loss="sigmoid", reduction="sum")) == pytest.approx(float(sig))
    bce = torch.nn.functional.binary_cross_entropy(P, R, weight=weight, reduction="sum")
    assert float(weighted_loss_dense(U, V, R, w, 0.0, loss="logistic", reduction="sum")) == pytest.approx(
        float(bce), rel=1e-9)


def test_loss_bad_input():
    U, V, R, user, item = random_problem()
    with pytest.raises(ValueError, match="unobserved_weight"):
        weighted_loss_gram(U, V, user, item, -1.0, 0.1)
    with pytest.raises(ValueError, match="R must be"):
        weighted_loss_dense(U, V, R[:, :-1], 0.1, 0.1)
    with pytest.raises(ValueError, match="loss must be"):
        weighted_loss_dense(U, V, R, 0.1, 0.1, loss="hinge")
    with pytest.raises(ValueError, match="reduction"):
        weighted_loss_gram(U, V, user, item, 0.1, 0.1, reduction="max")


def test_row_regularisation():
    counts = np.array([0, 2, 5])
    assert row_regularisation(counts, 10, 0.1, None).tolist() == [1, 1, 1]
    assert row_regularisation(counts, 10, 0.1, "count").tolist() == [1, 2, 5]
    np.testing.assert_allclose(row_regularisation(counts, 10, 0.1, 1.0), counts + 0.1 * (10 - counts))
    np.testing.assert_allclose(row_regularisation(counts, 10, 0.1, 0.5), np.sqrt(counts + 0.1 * (10 - counts)))
    with pytest.raises(ValueError, match="reg_scaling"):
        row_regularisation(counts, 10, 0.1, "log")


# -- the ALS step ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w", [0.05, 1.0])
def test_als_half_sweep_is_the_exact_minimiser(device, w):
    """After one half-sweep the gradient of the loss with respect to the solved side is zero (float64)."""
    U, V, R, user, item = (t.to(device) for t in random_problem(n_users=17, n_items=11, k=3, density=0.35))
    user_reg = torch.linspace(0.5, 2.0, U.shape[0], dtype=U.dtype, device=device)
    reg = 0.4
    # a tiny budget forces several chunks of padded rows
    layout = als.Observations(user.cpu().numpy(), item.cpu().numpy(), U.shape[0], V.shape[0], device=device,
                              budget=12)
    assert len(layout.chunks) > 2
    als.solve_rows(V, layout, U, reg * user_reg, unobserved_weight=w)
    A = U.clone().requires_grad_()
    weighted_loss_gram(A, V, user, item, w, reg, user_reg=user_reg, reduction="sum").backward()
    assert float(A.grad.abs().max()) < 1e-9


def test_als_loss_never_increases(device):
    train, _ = block_data()
    model = WeightedMF(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=6, device=device).fit(train)
    losses = np.array(model.history_.loss)
    assert np.all(np.diff(losses) <= 1e-6 * losses[:-1])
    assert model.user_factors_.device.type == torch.device(device).type


def test_dense_and_gram_solvers_follow_the_same_path(device):
    train, _ = block_data()
    common = dict(n_factors=4, unobserved_weight=0.1, reg=0.5, optimizer="adam", lr=0.02, n_epochs=15, device=device)
    dense = WeightedMF(solver="dense", **common).fit(train)
    gram = WeightedMF(solver="gram", **common).fit(train)
    np.testing.assert_allclose(dense.history_.loss, gram.history_.loss, rtol=1e-4)
    torch.testing.assert_close(dense.user_factors_, gram.user_factors_, rtol=1e-3, atol=1e-4)


def test_als_and_gram_reach_the_same_loss():
    train, _ = block_data()
    common = dict(n_factors=4, unobserved_weight=0.1, reg=0.5, device="cpu")
    als = WeightedMF(solver="als", n_epochs=30, **common).fit(train)
    gram = WeightedMF(solver="gram", optimizer="adam", lr=0.05, n_epochs=300, **common).fit(train)
    assert gram.history_.loss[-1] == pytest.approx(als.history_.loss[-1], rel=2e-2)


# -- the estimator -----------------------------------------------------------------------------------------------------
def test_learns_the_planted_groups(device):
    train, test = block_data()
    model = WeightedMF(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=8, device=device).fit(train)
    ours = ranking_metrics(model, train, test, k=5, device=device)
    popular = ranking_metrics(Popularity(device=device).fit(train), train, test, k=5, device=device)
    assert ours["ndcg"] > popular["ndcg"] + 0.05
    # every user's top 5 lies in the user's own group (popularity mixes both groups)
    users = np.arange(train.n_users)
    top, _ = top_k_items(model, train, users, k=5, device=device)
    assert ((top.cpu().numpy() % 2) == (users % 2)[:, None]).all()


def test_validation_history_and_best_epoch(device):
    train, test = block_data()
    model = WeightedMF(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=5, device=device).fit(
        train, valid=test, k=5)
    frame = model.history_.frame()
    assert list(frame["epoch"]) == [1, 2, 3, 4, 5]
    assert frame["metric"].max() == pytest.approx(model.history_.best_metric)
    # the kept factors are the best sweep's
    assert ranking_metrics(model, train, test, k=5, device=device)["ndcg"] == pytest.approx(
        model.history_.best_metric)
    assert (frame["seconds"].diff().dropna() >= 0).all()


def test_recommend_and_similar_items(device):
    train, _ = block_data()
    model = WeightedMF(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=8, device=device).fit(train)
    user_id = 100  # raw id; dense user 0 is in group 0, which likes the even items (raw ids 1000, 1002...)
    rec = model.recommend(user_id, k=5)
    assert list(rec.columns) == ["user_id", "item_id", "title", "score", "rank"] and len(rec) == 5
    assert (rec["user_id"] == user_id).all() and rec["rank"].tolist() == [1, 2, 3, 4, 5]
    seen = set(train.item_ids[train.item[train.user == 0]])
    assert not seen & set(rec["item_id"])
    assert (np.diff(rec["score"].to_numpy()) <= 0).all()
    assert all((rec["item_id"] - 1000) % 2 == 0)
    assert rec["title"].iloc[0] == f"movie {rec['item_id'].iloc[0] - 1000}"
    with_seen = model.recommend(user_id, k=5, exclude_seen=False)
    assert set(with_seen["item_id"]) & seen
    sim = model.similar_items(1000, k=5)
    assert list(sim.columns) == ["item_id", "title", "similarity", "rank"]
    assert 1000 not in set(sim["item_id"]) and all((sim["item_id"] - 1000) % 2 == 0)
    assert sim["similarity"].between(-1 - 1e-6, 1 + 1e-6).all()
    with pytest.raises(KeyError):
        model.recommend(99999)


def test_predict_matches_score_users(device):
    train, _ = block_data()
    model = WeightedMF(n_factors=3, n_epochs=2, reg=0.5, device=device).fit(train)
    users, items = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 7])
    torch.testing.assert_close(model.predict(users, items), model.score_users(users)[torch.arange(3), items])


def test_sigmoid_scores_are_probabilities():
    train, _ = block_data()
    model = WeightedMF(n_factors=3, loss="logistic", solver="dense", n_epochs=3, device="cpu").fit(train)
    s = model.score_users(torch.arange(4))
    assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0


def test_bad_configurations_raise_clear_errors():
    train, _ = block_data()
    with pytest.raises(ValueError, match="gram"):
        WeightedMF(solver="dense", max_dense_bytes=100).fit(train)
    with pytest.raises(ValueError, match="solver='dense'"):
        WeightedMF(solver="gram", loss="sigmoid")
    with pytest.raises(ValueError, match="solver='dense'"):
        WeightedMF(solver="als", loss="logistic")
    with pytest.raises(ValueError, match="solver"):
        WeightedMF(solver="sgd")
    with pytest.raises(ValueError, match="patience"):
        WeightedMF().fit(train, patience=2)
    with pytest.raises(TypeError, match="Interactions"):
        WeightedMF().fit(np.zeros((3, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        WeightedMF().score_users(torch.tensor([0]))


def test_divergence_is_reported():
    train, _ = block_data()
    with pytest.raises(DivergenceError, match="learning rate"):
        WeightedMF(solver="gram", optimizer="sgd", lr=1e12, n_epochs=20, device="cpu").fit(train)
    with pytest.raises(ValueError, match="init_scale"):  # caught in the constructor, before any sweep
        WeightedMF(solver="als", init_scale=float("nan"), n_epochs=2, device="cpu")


def test_popularity_scores_are_counts():
    train, _ = block_data()
    pop = Popularity(device="cpu").fit(train)
    np.testing.assert_array_equal(pop.score_users(torch.tensor([0, 1]))[1].numpy(), train.item_counts())


def test_tune_picks_the_best_validation_point():
    train, _ = block_data(n_users=80, n_items=40)
    grid = {"unobserved_weight": [0.05, 0.3], "reg": [0.5, 5.0]}
    result = tune(WeightedMF, train, grid, base_params={"n_factors": 4, "n_epochs": 4, "device": "cpu"}, k=5)
    best, table = result.best_params, result.table
    assert len(table) == 4 and table["ndcg"].is_monotonic_decreasing
    top = table.iloc[0]
    assert best["unobserved_weight"] == top["unobserved_weight"] and best["reg"] == top["reg"]
    assert best["n_epochs"] == top["best_epoch"] and 1 <= best["n_epochs"] <= 4
    assert best["n_factors"] == 4 and top["ndcg"] == table["ndcg"].max()


def test_gram_formulation_saves_far_less_for_backward():
    U, V, R, user, item = random_problem(n_users=500, n_items=800, k=8, density=0.01, dtype=torch.float32)
    U.requires_grad_()
    V.requires_grad_()
    dense = autograd_saved_bytes(lambda: weighted_loss_dense(U, V, R, 0.1, 0.1))
    gram = autograd_saved_bytes(lambda: weighted_loss_gram(U, V, user, item, 0.1, 0.1))
    assert dense >= 500 * 800 * 4  # at least one users × items float32 tensor
    assert gram < dense / 5


def test_chunked_gram_loss_matches_plain_autograd(device):
    U, V, R, user, item = (t.to(device) for t in random_problem(n_users=15, n_items=12, density=0.4))
    results = []
    for chunk in (None, 7):
        A, B = U.clone().requires_grad_(), V.clone().requires_grad_()
        loss = weighted_loss_gram(A, B, user, item, 0.2, 0.1, chunk_size=chunk)
        (3.0 * loss).backward()  # a non-unit upstream gradient
        results.append((loss.detach(), A.grad, B.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gram_solver_chunked_path_follows_the_plain_one():
    train, _ = block_data()
    common = dict(n_factors=4, unobserved_weight=0.1, reg=0.5, solver="gram", lr=0.02, n_epochs=5, device="cpu")
    plain = WeightedMF(**common).fit(train)
    chunked = WeightedMF(als_chunk=64, **common).fit(train)  # 64 floats: 16 pairs per chunk
    np.testing.assert_allclose(plain.history_.loss, chunked.history_.loss, rtol=1e-5)


def test_cg_als_with_two_threads_matches_one_thread():
    from mfkit.utils import cpu_threads

    train, _ = block_data()
    common = dict(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=4, als_method="cg", device="cpu")
    with cpu_threads(1):
        one = WeightedMF(**common).fit(train)
    with cpu_threads(2):
        two = WeightedMF(**common).fit(train)
    np.testing.assert_allclose(one.history_.loss, two.history_.loss, rtol=1e-5)
    torch.testing.assert_close(one.user_factors_, two.user_factors_, rtol=1e-4, atol=1e-5)


def test_cg_als_decreases_the_loss_and_learns(device):
    train, test = block_data()
    model = WeightedMF(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=8, als_method="cg", device=device)
    model.fit(train)
    losses = np.array(model.history_.loss)
    assert np.all(np.diff(losses) <= 1e-6 * losses[:-1])
    exact = WeightedMF(n_factors=4, unobserved_weight=0.1, reg=0.5, n_epochs=30, device=device).fit(train)
    assert losses[-1] == pytest.approx(exact.history_.loss[-1], rel=2e-2)
