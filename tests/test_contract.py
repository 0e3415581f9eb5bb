"""The contract every mfkit model keeps (mfkit.base.Recommender), checked for every model on the CPU and on CUDA.

Adding a model: add ONE line to CASES below — a factory with small, fast settings (the suite fits on 40 users × 30
items), the kind of data it needs, and, for models with a learning rate, the constructor overrides that must make it
diverge. ``test_every_model_is_registered`` fails until the line is there.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

import mfkit
from mfkit.base import RECOMMEND_COLUMNS, SIMILAR_COLUMNS, NotFittedError, Recommender
from mfkit.data import Interactions
from mfkit.explicit import BayesianMF, BiasBaseline, BiasedMF, GlobalMean
from mfkit.implicit import Popularity, WeightedMF
from mfkit.metrics import ranking_metrics
from mfkit.neural import NCF, TwoTower
from mfkit.ranking import BPR, EASE, ConfidenceMF, ItemKNN
from mfkit.spark import SparkALS
from mfkit.training import DivergenceError


@dataclass
class Case:
    """make(device=...) returns an unfitted model; data is "implicit" or "rating"; diverge: overrides (applied with
    ``clone``) under which ``fit`` must raise DivergenceError, None for models without a learning rate."""

    make: Callable[..., Recommender]
    data: str = "implicit"
    diverge: dict | None = None


CASES = {
    "Popularity": Case(lambda **kw: Popularity(**kw)),
    "WeightedMF-als": Case(lambda **kw: WeightedMF(n_factors=4, reg=0.5, n_epochs=3, **kw)),
    "WeightedMF-cg": Case(lambda **kw: WeightedMF(n_factors=4, reg=0.5, n_epochs=3, als_method="cg", **kw)),
    "WeightedMF-ials": Case(lambda **kw: WeightedMF(n_factors=4, reg=0.5, n_epochs=3, als_method="cg", reg_scaling=1.0,
                                                    reg_normalised=True, init_scale="auto", **kw)),
    "WeightedMF-gram": Case(lambda **kw: WeightedMF(n_factors=4, solver="gram", n_epochs=4, **kw), diverge={"lr": 1e6}),
    "WeightedMF-logistic": Case(lambda **kw: WeightedMF(n_factors=4, solver="dense", loss="logistic", n_epochs=4,
                                                        **kw), diverge={"lr": 1e6}),
    "GlobalMean": Case(lambda **kw: GlobalMean(**kw), "rating"),
    "BiasBaseline": Case(lambda **kw: BiasBaseline(n_iter=2, **kw), "rating"),
    "BiasedMF-sgd": Case(lambda **kw: BiasedMF(n_factors=4, n_epochs=3, batch_size=32, **kw), "rating",
                         diverge={"lr": 1e6}),
    "BiasedMF-autograd": Case(lambda **kw: BiasedMF(n_factors=4, n_epochs=3, batch_size=64, method="autograd", **kw),
                              "rating", diverge={"lr": 1e6}),
    "BiasedMF-als": Case(lambda **kw: BiasedMF(n_factors=4, n_epochs=3, method="als", **kw), "rating"),
    "BayesianMF": Case(lambda **kw: BayesianMF(n_factors=3, n_samples=3, burn_in=2, init_sweeps=1, **kw), "rating"),
    "BayesianMF-svdpp": Case(lambda **kw: BayesianMF(n_factors=3, n_samples=3, burn_in=2, init_sweeps=1,
                                                     implicit="user", **kw), "rating"),
    "BayesianMF-flipped": Case(lambda **kw: BayesianMF(n_factors=3, n_samples=3, burn_in=2, init_sweeps=1,
                                                       implicit="both", **kw), "rating"),
    "NCF-gmf": Case(lambda **kw: NCF("gmf", n_factors=4, n_epochs=2, batch_size=128, **kw), diverge={"lr": 1e6}),
    "NCF-neumf": Case(lambda **kw: NCF("neumf", n_factors=4, layers=(8, 4), n_epochs=2, batch_size=128, **kw),
                      diverge={"lr": 1e6}),
    "NCF-mlp-rating": Case(lambda **kw: NCF("mlp", "rating", layers=(8, 4), n_epochs=2, batch_size=128, **kw),
                           "rating", diverge={"lr": 1e6}),
    "TwoTower": Case(lambda **kw: TwoTower(n_factors=4, n_epochs=2, batch_size=32, **kw), diverge={"lr": 1e6}),
    "BPR": Case(lambda **kw: BPR(n_factors=4, n_epochs=3, batch_size=64, **kw), diverge={"lr": 1e6}),
    "BPR-popularity": Case(lambda **kw: BPR(n_factors=4, n_epochs=3, sampling="popularity", **kw), diverge={"lr": 1e6}),
    "ItemKNN": Case(lambda **kw: ItemKNN(n_neighbors=5, **kw)),
    "EASE": Case(lambda **kw: EASE(reg=50.0, **kw)),
    "ConfidenceMF": Case(lambda **kw: ConfidenceMF(n_factors=4, n_epochs=3, confidence="rating", **kw), "rating"),
    "SparkALS": Case(lambda **kw: SparkALS(n_factors=4, n_epochs=3, implicit_prefs=True, **kw)),
}

N_USERS, N_ITEMS = 40, 30


def _data(seed: int = 0) -> Interactions:
    """Two taste groups, about a third of the cells observed, ratings 1-5 (higher within one's group)."""
    rng = np.random.default_rng(seed)
    same = (np.arange(N_USERS)[:, None] % 2) == (np.arange(N_ITEMS)[None, :] % 2)
    cells = rng.random((N_USERS, N_ITEMS)) < np.where(same, 0.5, 0.15)
    u, i = np.nonzero(cells)
    ratings = np.clip(np.where(same[u, i], 4, 2) + rng.integers(-1, 2, len(u)), 1, 5)
    return Interactions.from_raw(100 + u, 1000 + i, ratings=ratings.astype(np.float32))


DATA = _data()
_split = np.random.default_rng(1).random(len(DATA)) < 0.8
TRAIN, TEST = DATA.subset(_split), DATA.subset(~_split)


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request):
    return CASES[request.param]


@pytest.fixture
def fitted(case, device):
    return case.make(device=device).fit(TRAIN)


def _all_users() -> torch.Tensor:
    return torch.arange(TRAIN.n_users)


# -- the interface ----------------------------------------------------------------------------------------------------
def test_every_model_is_registered():
    for info in pkgutil.walk_packages(mfkit.__path__, "mfkit."):
        importlib.import_module(info.name)
    registered = {type(c.make(device="cpu")) for c in CASES.values()}

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    models = {c for c in subclasses(Recommender) if c.__module__.startswith("mfkit.") and not c.__name__.startswith("_")
              and not inspect.isabstract(c)}
    missing = sorted(c.__name__ for c in models - registered)
    assert not missing, f"add a line to CASES in tests/test_contract.py for {missing}"


def test_unfitted_model_says_so(case):
    model = case.make(device="cpu")
    for call in (lambda: model.score_users([0]), lambda: model.predict([0], [0]), lambda: model.recommend(100),
                 lambda: model.save("unused.npz")):
        with pytest.raises(NotFittedError, match="fit"):
            call()
    assert not model.is_fitted


def test_params_repr_and_clone(case):
    model = case.make(device="cpu")
    params = model.get_params()
    assert list(params) == type(model)._param_names()
    assert repr(model).startswith(type(model).__name__ + "(")
    twin = model.clone()
    assert type(twin) is type(model) and repr(twin) == repr(model)


def test_shapes_and_predict_agrees_with_score_users(fitted, device):
    users = torch.tensor([0, 3, 7, 3])
    scores = fitted.score_users(users)
    assert scores.shape == (4, N_ITEMS) and scores.device.type == device.type
    assert torch.isfinite(scores).all()
    items = torch.tensor([1, 0, 29, 5])
    pred = fitted.predict(users, items)
    assert pred.shape == (4,)
    torch.testing.assert_close(pred.float(), scores[torch.arange(4), items.to(scores.device)].float(), rtol=1e-4,
                               atol=1e-5)
    assert np.isfinite(ranking_metrics(fitted, TRAIN, TEST, k=5, device=device)["ndcg"])


def test_recommend_columns_ranks_and_seen_items(fitted):
    users = [100, 105]
    top = fitted.recommend(users, k=4)
    assert list(top.columns) == list(RECOMMEND_COLUMNS) and len(top) == 8
    assert top["user_id"].tolist() == [100] * 4 + [105] * 4 and top["rank"].tolist() == [1, 2, 3, 4] * 2
    for raw in users:
        mine = top[top["user_id"] == raw]
        assert (np.diff(mine["score"].to_numpy()) <= 1e-6).all()
        seen = set(TRAIN.item_ids[TRAIN.item[TRAIN.user == TRAIN.user_index([raw])[0]]])
        assert not seen & set(mine["item_id"])
    single = fitted.recommend(100, k=4)
    assert single["item_id"].tolist() == top["item_id"].tolist()[:4]
    assert len(fitted.recommend(100, k=N_ITEMS, exclude_seen=False)) == N_ITEMS


def test_recommend_rejects_bad_requests(fitted):
    with pytest.raises(KeyError, match="99999"):
        fitted.recommend(99999)
    with pytest.raises(ValueError, match="k must be >= 1"):
        fitted.recommend(100, k=0)
    unseen = N_ITEMS - len(set(TRAIN.item[TRAIN.user == 0]))
    with pytest.raises(ValueError, match=f"{unseen} items user 100 has not seen"):
        fitted.recommend(100, k=unseen + 1)
    with pytest.raises(ValueError, match="indices"):
        fitted.score_users([N_USERS])
    with pytest.raises(ValueError, match="indices"):
        fitted.predict([0], [-1])


def test_similar_items_where_there_are_item_vectors(fitted):
    try:
        fitted._item_vectors()
    except TypeError:
        with pytest.raises(TypeError, match="similar_items"):
            fitted.similar_items(1000)
        return
    sim = fitted.similar_items(1000, k=5)
    assert list(sim.columns) == list(SIMILAR_COLUMNS) and len(sim) == 5 and 1000 not in set(sim["item_id"])
    assert sim["similarity"].between(-1 - 1e-5, 1 + 1e-5).all()


def test_a_second_fit_gives_the_same_model(case, device):
    model = case.make(device=device)
    first = model.fit(TRAIN).score_users(_all_users()).clone()
    second = model.fit(TRAIN).score_users(_all_users())
    fresh = case.make(device=device).fit(TRAIN).score_users(_all_users())
    torch.testing.assert_close(second, first, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fresh, first, rtol=1e-6, atol=1e-6)


def test_save_and_load_give_the_same_scores(fitted, tmp_path, device):
    path = fitted.save(tmp_path / "model.npz")
    loaded = type(fitted).load(path, device=device)
    assert type(loaded) is type(fitted) and loaded.get_params().keys() == fitted.get_params().keys()
    torch.testing.assert_close(loaded.score_users(_all_users()), fitted.score_users(_all_users()))
    assert loaded.recommend(100, k=3)["item_id"].tolist() == fitted.recommend(100, k=3)["item_id"].tolist()


# -- bad inputs, the same error for every model -------------------------------------------------------------------------
def _broken(column: str, row: int, value) -> Interactions:
    """A copy of TRAIN with one entry changed after construction (Interactions refuses such data when built, so
    this is what a model's own boundary check has to catch)."""
    data = TRAIN.subset(np.arange(len(TRAIN)))
    getattr(data, column)[row] = value
    return data


def test_bad_training_data_is_refused_before_training(case):
    model = case.make(device="cpu")
    with pytest.raises(ValueError, match="non-finite rating"):
        model.fit(_broken("rating", 3, np.nan))
    with pytest.raises(ValueError, match="non-finite rating"):
        model.fit(TRAIN, _broken("rating", 0, np.inf))
    with pytest.raises(ValueError, match="empty"):
        model.fit(TRAIN.subset(np.zeros(len(TRAIN), dtype=bool)))
    with pytest.raises(ValueError, match="user indices"):
        model.fit(_broken("user", 0, N_USERS + 3))
    with pytest.raises(ValueError, match="item indices"):
        model.fit(_broken("item", 0, -1))
    with pytest.raises(TypeError, match="Interactions"):
        model.fit(np.zeros((3, 3)))
    other = Interactions.from_raw(np.array([1, 2]), np.array([1, 2]), ratings=np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="index space"):
        model.fit(TRAIN, other)
    if case.data == "rating":
        with pytest.raises(ValueError, match="no ratings"):
            model.fit(Interactions(TRAIN.user, TRAIN.item, None, TRAIN.user_ids, TRAIN.item_ids))
    assert not model.is_fitted  # nothing half-fitted is left behind


def test_divergence_is_detected(case, device):
    if case.diverge is None:
        pytest.skip("no learning rate: closed-form or counting model")
    model = case.make(device=device).clone(**case.diverge)
    with pytest.raises(DivergenceError, match="learning rate|lr"):
        model.fit(TRAIN)
    assert not model.is_fitted


def _implements(model, hook: str) -> bool:
    return getattr(type(model), hook) is not getattr(Recommender, hook)


def test_vectors_rank_items_like_the_scores(fitted):
    """user_vectors() · item_vectors() ranks every user's items as score_users does (exact top-k, ANN serving)."""
    if not _implements(fitted, "user_vectors"):
        with pytest.raises(NotImplementedError):
            fitted.user_vectors()
        return
    P, Q = fitted.user_vectors(), fitted.item_vectors()
    assert P.shape[0] == N_USERS and Q.shape[0] == N_ITEMS and P.shape[1] == Q.shape[1]
    scores = fitted.score_users(_all_users()).float().cpu()
    products = (P @ Q.T).float().cpu()
    gap = scores - products  # a per-user constant (global mean, user bias) or a monotone link changes no ranking
    order = torch.argsort(products, dim=1, stable=True)
    same_order = order.eq(torch.argsort(scores, dim=1, stable=True)).float().mean()
    assert float((gap - gap[:, :1]).abs().max()) < 1e-4 or float(same_order) > 0.95


def test_fold_in_of_training_users_scores_like_the_model(fitted):
    """Folding in a training user's own history gives scores close to the fitted user's (one ALS user step)."""
    if not _implements(fitted, "fold_in"):
        return
    from mfkit.serving import fold_in_users, score_fold_in

    csr = TRAIN.to_csr("rating" if fitted.requires_ratings else "ones")
    users = [0, 1, 2]
    hist = [csr.indices[csr.indptr[u]:csr.indptr[u + 1]] for u in users]
    ratings = [csr.data[csr.indptr[u]:csr.indptr[u + 1]] for u in users] if fitted.requires_ratings else None
    folded = fold_in_users(fitted, hist, ratings)
    assert folded.factors.shape[0] == 3
    scores = score_fold_in(fitted, folded).float().cpu()
    assert scores.shape == (3, N_ITEMS) and torch.isfinite(scores).all()
    fitted_scores = fitted.score_users(torch.tensor(users)).float().cpu()
    # one user step against the fitted items (a few epochs of a small model): scores that agree with the model's
    assert float(torch.corrcoef(torch.stack([scores.flatten(), fitted_scores.flatten()]))[0, 1]) > 0.3


def _trains_by_epochs(model) -> bool:
    return "patience" in inspect.signature(model._fit).parameters


def test_early_stopping_keeps_the_best_epoch(case, device):
    """With valid and patience, a model trained by epochs stops early and ends at its best validation epoch."""
    from mfkit.training import validation_score

    model = case.make(device=device)
    with pytest.raises(ValueError, match="patience needs valid"):
        model.fit(TRAIN, patience=1)
    if not _trains_by_epochs(model):
        return
    model.fit(TRAIN, TEST, patience=1)
    history = model.history_
    assert history.best_epoch is not None and len(history.records) <= history.best_epoch + 1
    if type(model).__name__ == "BayesianMF":
        return  # its validation metric is the running average's, monitored only
    kept = validation_score(model, TRAIN, TEST, model.default_metric)
    assert kept == pytest.approx(history.best_metric, rel=1e-4, abs=1e-6)


def test_tunes(case):
    """training.tune chooses among candidates by the model's default metric and refits the choice."""
    from mfkit.training import tune

    model = case.make(device="cpu")
    result = tune(lambda **kw: case.make(device="cpu", **kw), DATA, [{}], refit=True,
                  per_epoch=_trains_by_epochs(model))
    assert result.metric == model.default_metric and len(result.table) == 1
    assert np.isfinite(result.table[result.metric].iloc[0]) and result.model.is_fitted
