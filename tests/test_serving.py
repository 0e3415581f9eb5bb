"""mfkit.serving: fold-in of new users, cold-start items from features, exact and approximate top-k (Chapter 10)."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit import serving as S
from mfkit.data import Interactions
from mfkit.explicit import BayesianMF, BiasedMF
from mfkit.implicit import WeightedMF


def block_data(n_users=60, n_items=40, p=0.5, seed=0, ratings=False):
    """Two taste groups: users of group g interact with items of group g only (with probability p)."""
    rng = np.random.default_rng(seed)
    cells = ((np.arange(n_users)[:, None] % 2) == (np.arange(n_items)[None, :] % 2)) & (
        rng.random((n_users, n_items)) < p)
    u, i = np.nonzero(cells)
    r = (1 + rng.integers(0, 5, len(u))).astype(np.float32) if ratings else None
    items = pd.DataFrame({"title": [f"movie {j}" for j in range(n_items)]}, index=1000 + np.arange(n_items))
    return Interactions.from_raw(u, 1000 + i, r, item_meta=items)


@pytest.fixture(scope="module")
def wmf():
    data = block_data()
    return WeightedMF(n_factors=4, unobserved_weight=0.2, reg=0.5, n_epochs=60, device="cpu",
                      random_state=0).fit(data)


def test_weighted_fold_in_is_the_als_user_step(wmf):
    V, w, lam = wmf.item_factors_.double(), 0.2, 0.5
    histories = [np.array([0, 2, 4]), np.arange(0, 40, 2), np.array([1])]  # short (Woodbury) and long (direct)
    folded = S.fold_in_users(wmf, histories)
    assert folded.method == "closed form" and folded.bias is None
    for h, x in zip(histories, folded.factors):
        A = w * V.T @ V + (1 - w) * V[h].T @ V[h] + lam * torch.eye(4, dtype=V.dtype)
        expected = torch.linalg.solve(A, V[h].sum(0))
        assert torch.allclose(x.double(), expected, atol=1e-5)


def test_fold_in_of_a_training_user_recovers_its_factors(wmf):
    # at the ALS fixed point a user's factors are the least-squares solution given the item factors
    csr = wmf.train_.to_csr("ones")
    users = [0, 1, 7]
    folded = S.fold_in_users(wmf, [csr.indices[csr.indptr[u]:csr.indptr[u + 1]] for u in users])
    assert torch.allclose(folded.factors, wmf.user_factors_[users], atol=2e-3)


def test_fold_in_with_reg_scaling_matches_the_direct_solve():
    model = WeightedMF(n_factors=3, unobserved_weight=0.1, reg=0.05, reg_scaling=1.0, n_epochs=5, device="cpu")
    model.fit(block_data())
    histories = [np.array([0, 2]), np.array([1, 3, 5, 7, 9])]
    short = S.fold_in_users(model, histories).factors   # width 5 >= k = 3: the direct path
    one = torch.cat([S.fold_in_users(model, [h]).factors for h in histories])
    assert torch.allclose(short, one, atol=1e-5)


def test_biased_fold_in_is_the_als_user_step():
    data = block_data(ratings=True)
    model = BiasedMF(n_factors=3, reg=0.1, reg_bias=0.05, n_epochs=200, method="als", device="cpu").fit(data)
    csr = data.to_csr("rating")
    u = 4
    items, ratings = csr.indices[csr.indptr[u]:csr.indptr[u + 1]], csr.data[csr.indptr[u]:csr.indptr[u + 1]]
    folded = S.fold_in_users(model, [items], [ratings])
    assert torch.allclose(folded.factors[0], model.user_factors_[u], atol=2e-3)
    assert abs(float(folded.bias[0]) - float(model.user_bias_[u])) < 2e-3
    scores = S.score_fold_in(model, folded)
    assert torch.allclose(scores[0], model.score_users([u])[0], atol=1e-2)


def test_gradient_fold_in_lowers_the_loss_and_ranks_the_right_group():
    data = block_data(ratings=True)
    model = BayesianMF(n_factors=3, n_samples=5, burn_in=2, device="cpu").fit(data)
    items = np.arange(0, 20, 2)                                  # a group-0 user who loves group-0 movies
    folded = S.fold_in_users(model, [items], [np.full(10, 5.0)])
    assert folded.method == "gradient"
    assert float(folded.bias[0]) > 0.3                             # rates above average
    sig = WeightedMF(n_factors=4, loss="sigmoid", solver="dense", unobserved_weight=0.2, reg=0.05, lr=0.05,
                     n_epochs=200, device="cpu").fit(block_data())
    f = S.fold_in_users(sig, [np.array([0, 2, 4, 6])], n_steps=200)
    top = torch.topk(S.score_fold_in(sig, f)[0], 10).indices.numpy()
    assert (top % 2 == 0).mean() >= 0.8


def test_recommend_new_user(wmf):
    rec = S.recommend_new_user(wmf, [1000, 1002, 1004, 1006], k=5)
    assert list(rec.columns) == ["item_id", "title", "score", "rank"]
    assert (rec["item_id"] % 2 == 0).all()                         # the group of the history
    assert not set(rec["item_id"]) & {1000, 1002, 1004, 1006}      # seen items left out
    assert list(rec["rank"]) == [1, 2, 3, 4, 5]


def test_recommend_new_user_bad_input(wmf):
    with pytest.raises(KeyError, match="99999"):
        S.recommend_new_user(wmf, [1000, 99999])
    with pytest.raises(ValueError, match="k=41"):
        S.recommend_new_user(wmf, [1000], k=41)
    with pytest.warns(UserWarning, match="popularity"):
        rec = S.recommend_new_user(wmf, [], k=3)
    counts = np.bincount(wmf.train_.item, minlength=40)
    assert sorted(counts[rec["item_id"] - 1000]) == sorted(counts)[-3:]
    with pytest.raises(ValueError, match="ratings"):
        S.recommend_new_user(BiasedMF(n_factors=2, n_epochs=2, method="als", device="cpu").fit(
            block_data(ratings=True)), [1000])
    with pytest.raises(TypeError, match="fold-in"):
        S.fold_in_users(object(), [[0]])


def test_fold_in_on_cuda_matches_cpu(device, wmf):
    model = WeightedMF.load(_saved(wmf), device=device) if device.type == "cuda" else wmf
    folded = S.fold_in_users(model, [np.array([0, 2, 4])])
    assert folded.factors.device.type == device.type
    ref = S.fold_in_users(wmf, [np.array([0, 2, 4])]).factors
    assert torch.allclose(folded.factors.cpu(), ref, atol=1e-4)


def _saved(model, tmp=[]):
    import tempfile
    path = tempfile.mkdtemp() + "/m.npz"
    model.save(path)
    return path


def test_new_user_split_and_first_interactions():
    data = block_data(ratings=True)
    data.timestamp = np.arange(len(data), dtype=np.int64)[::-1].copy()
    train, new = S.new_user_split(data, 0.25, seed=1, min_interactions=5)
    assert not set(train.user) & set(new.user)
    assert len(train) + len(new) == len(data) and len(set(new.user)) == 15
    hist, fut = S.first_interactions(new, 2, skip=4, order="time")
    assert np.all(np.bincount(hist.user, minlength=60)[np.unique(new.user)] == 2)
    for u in np.unique(new.user):  # by time: the two earliest rows of each user
        assert hist.timestamp[hist.user == u].max() < fut.timestamp[fut.user == u].min()
    assert len(fut) == len(new) - 4 * len(np.unique(new.user))
    hist_r, fut_r = S.first_interactions(new, 2, skip=4, order="random", seed=0)
    assert len(hist_r) == len(hist) and len(fut_r) == len(fut)
    with pytest.raises(ValueError, match="skip"):
        S.first_interactions(new, 5, skip=4)


def test_item_feature_regression_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((200, 5))
    W = rng.standard_normal((5, 3))
    T = F @ W + 0.5
    reg = S.ItemFeatureRegression(alpha=1e-6).fit(F, T)
    assert np.allclose(reg.weights_, W, atol=1e-5) and np.allclose(reg.intercept_, 0.5, atol=1e-5)
    assert np.allclose(reg.predict(F[:3]), T[:3], atol=1e-5)
    with pytest.raises(ValueError, match="columns"):
        reg.predict(F[:, :2])


def test_cold_start_item_factors_from_group_feature(wmf):
    group = (np.arange(40) % 2).astype(float)[:, None]             # the item's taste group as its one feature
    new = np.array([0, 1])
    factors, bias = S.cold_start_item_factors(wmf, group, new, alpha=0.1)
    assert bias is None and factors.shape == wmf.item_factors_.shape
    # each new item's vector is close to the mean vector of its group
    V = wmf.item_factors_
    for j in new:
        same = V[2 + (j % 2)::2].mean(0)
        assert torch.nn.functional.cosine_similarity(factors[j], same, dim=0) > 0.95
    assert torch.equal(factors[2:], V[2:])


def test_movielens_item_features_reads_recbole_layout(tmp_path):
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tGoldenEye\t1995\tAction Adventure Thriller\n"
        "3\tOld\tunknown\tDrama\n")
    items = pd.DataFrame({"title": ["a", "b", "c"], "year": [1995, 1995, np.nan]}, index=[1, 2, 3])
    data = Interactions.from_raw([0, 0, 1], [1, 2, 3], item_meta=items)
    F = S.movielens_item_features(data, path=tmp_path)
    assert F.shape == (3, 21)
    assert F.loc[1, "Children's"] == 1 and F.loc[1, "Action"] == 0 and F.loc[3, "Drama"] == 1
    assert F.loc[1, "year"] == pytest.approx(0.5) and F.loc[3, "year unknown"] == 1


def test_top_k_exact_matches_full_sort(device):
    rng = np.random.default_rng(0)
    Q, V = rng.standard_normal((7, 5)), rng.standard_normal((50, 5))
    scores, idx = S.top_k_exact(Q, V, k=4, batch_size=3, device=device)
    expected = np.argsort(-(Q @ V.T), axis=1)[:, :4]
    assert np.array_equal(idx.cpu().numpy(), expected)
    assert np.allclose(scores.cpu().numpy(), np.take_along_axis(Q @ V.T, expected, 1), atol=1e-5)
    with pytest.raises(ValueError, match="k=51"):
        S.top_k_exact(Q, V, k=51, device=device)


def test_mips_augment_turns_inner_product_into_distance():
    rng = np.random.default_rng(1)
    V, Q = rng.standard_normal((100, 6)) * rng.random((100, 1)) * 3, rng.standard_normal((10, 6))
    Va, Qa = S.mips_augment(V, Q)
    assert np.allclose(np.linalg.norm(Va, axis=1), np.linalg.norm(V, axis=1).max(), atol=1e-4)
    dist = ((Qa[:, None, :] - Va[None, :, :]) ** 2).sum(-1)
    assert np.array_equal(np.argsort(dist, axis=1)[:, :5], np.argsort(-(Q @ V.T), axis=1)[:, :5])


@pytest.mark.parametrize("transform", ["augment", "ip"])
def test_ann_index_finds_the_exact_top_k(transform):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    V = (rng.standard_normal((2000, 8)) * (0.5 + rng.random((2000, 1)))).astype(np.float32)
    Q = rng.standard_normal((50, 8)).astype(np.float32)
    index = S.ANNIndex(V, M=16, ef_construction=100, ef_search=200, transform=transform, threads=1)
    scores, approx = index.search(Q, 10)
    _, exact = S.top_k_exact(Q, V, 10, device="cpu")
    assert S.retrieval_recall(approx, exact) >= 0.95
    assert np.allclose(scores, np.take_along_axis(Q @ V.T, approx, 1), atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    with pytest.raises(ValueError, match="transform"):
        S.ANNIndex(V, transform="cosine")


def test_retrieval_recall():
    assert S.retrieval_recall([[1, 2], [3, 4]], [[2, 1], [3, 5]]) == 0.75
    with pytest.raises(ValueError):
        S.retrieval_recall([[1, 2]], [[1, 2, 3]])


# -- save and load (mfkit.base; the serving side of Chapter 10) ---------------------------------------------------------
def test_save_load_round_trip_and_serving_copy(wmf, tmp_path, device):
    users = np.arange(wmf.n_users_)
    path = wmf.save(tmp_path / "m.npz")
    loaded = WeightedMF.load(path, device=device)
    assert torch.equal(loaded.score_users(users).cpu(), wmf.score_users(users).cpu())
    assert loaded.recommend(3, k=4).equals(wmf.recommend(3, k=4))
    light = WeightedMF.load(wmf.save(tmp_path / "light.npz", include_train=False), device=device)
    assert len(light.train_) == 0 and light.n_users_ == wmf.n_users_
    assert torch.equal(light.score_users(users).cpu(), wmf.score_users(users).cpu())
    assert (tmp_path / "light.npz").stat().st_size < path.stat().st_size


def test_load_refuses_what_is_not_a_compatible_mfkit_model(wmf, tmp_path):
    import json
    import zipfile

    path = wmf.save(tmp_path / "m.npz")
    raw = path.read_bytes()
    (tmp_path / "text.npz").write_text("user,item\n1,2\n")
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    with zipfile.ZipFile(path) as z:  # a byte inside the stored item factors
        info = z.getinfo("state/item_factors_.npy")
    flipped[info.header_offset + 200] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    for name in ["text.npz", "plain.npz", "cut.npz", "flipped.npz"]:
        with pytest.raises(ValueError, match="not a readable mfkit model file"):
            WeightedMF.load(tmp_path / name)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta["mfkit_version"] = "7.0.0"
    arrays["__meta__"] = np.asarray(json.dumps(meta))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="7.0.0"):
        WeightedMF.load(tmp_path / "future.npz")
    with pytest.raises(TypeError, match="WeightedMF"):
        BiasedMF.load(path)
