"""Tests of mfkit.explicit: baselines, biased MF (SGD / autograd / ALS), Bayesian MF, selection and the N2 command."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mfkit.data as mdata
from mfkit.data import Interactions, random_split
from mfkit.explicit import BayesianMF, BiasBaseline, BiasedMF, GlobalMean, evaluate, netflix_probe_rmse
from mfkit.training import DivergenceError, tune

ROOT = Path(__file__).resolve().parent.parent


def tiny_ratings():
    """7 users x 5 items, raw ids with gaps; user 70 and item 500 have no ratings in the first 15 rows."""
    users = [10, 10, 10, 20, 20, 30, 30, 30, 30, 40, 40, 50, 50, 60, 60, 70, 60]
    items = [100, 200, 300, 100, 400, 100, 200, 300, 400, 200, 300, 100, 400, 300, 200, 500, 500]
    ratings = [5, 3, 4, 4, 1, 5, 2, 4, 2, 1, 2, 4, 3, 5, 4, 3, 2]
    return Interactions.from_raw(users, items, ratings)


def planted(n_users=150, n_items=120, k=3, density=0.5, noise=0.1, seed=0):
    """Ratings from a known mu + b_u + b_i + p_u.q_i plus Gaussian noise (no clipping, so the noise level is known)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.6, (n_users, k))
    q = rng.normal(0, 0.6, (n_items, k))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
    mask = rng.random((n_users, n_items)) < density
    u, i = np.nonzero(mask)
    r = 3.5 + bu[u] + bi[i] + (p[u] * q[i]).sum(1) + rng.normal(0, noise, len(u))
    return Interactions.from_raw(u, i, r.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------------------------
def test_global_mean_and_damped_bias_baseline_match_hand_computation(device):
    data = tiny_ratings()
    frame = data.to_frame()
    mu = frame.rating.mean()
    assert GlobalMean(device=device).fit(data).global_mean_ == pytest.approx(mu)

    lam_u, lam_i = 3.0, 2.0
    model = BiasBaseline(reg_user=lam_u, reg_item=lam_i, n_iter=1, device=device).fit(data)
    # hand computation with plain Python over the rows: item bias from r - mu, user bias from r - mu - b_i
    b_i = {}
    for it in set(frame.item):
        rows = frame[frame.item == it]
        b_i[it] = sum(rows.rating - mu) / (lam_i + len(rows))
    b_u = {}
    for us in set(frame.user):
        rows = frame[frame.user == us]
        b_u[us] = sum(r - mu - b_i[it] for r, it in zip(rows.rating, rows.item)) / (lam_u + len(rows))
    got_i = dict(zip(data.item_ids, model.item_bias_.cpu().numpy()))
    got_u = dict(zip(data.user_ids, model.user_bias_.cpu().numpy()))
    for it in b_i:
        assert got_i[it] == pytest.approx(b_i[it], abs=1e-6)
    for us in b_u:
        assert got_u[us] == pytest.approx(b_u[us], abs=1e-6)
    pred = model.predict([0], [1]).cpu()
    assert float(pred) == pytest.approx(mu + b_u[10] + b_i[200], abs=1e-5)


def test_bias_baseline_alternations_lower_training_objective():
    data = planted(noise=0.3)
    u, i, r = data.to_tensors()

    def objective(m):
        e = r.double() - m.predict(u, i).double()
        return float((e ** 2).sum() + 5 * (m.user_bias_.double() ** 2).sum() + 5 * (m.item_bias_.double() ** 2).sum())

    one = BiasBaseline(5, 5, n_iter=1, device="cpu").fit(data)
    many = BiasBaseline(5, 5, n_iter=10, device="cpu").fit(data)
    assert objective(many) < objective(one)


def test_baseline_rejects_bad_input():
    data = tiny_ratings()
    implicit = Interactions(data.user, data.item, None, data.user_ids, data.item_ids)
    with pytest.raises(ValueError, match="rating"):
        BiasBaseline().fit(implicit)
    with pytest.raises(ValueError, match="reg_user"):
        BiasBaseline(reg_user=-1).fit(data)


# ---------------------------------------------------------------------------------------------------------------------
# SGD: batch_size=1 is the literal per-rating loop
# ---------------------------------------------------------------------------------------------------------------------
def test_sgd_batch_size_one_equals_literal_loop(device):
    data = tiny_ratings()
    kw = dict(n_factors=3, reg=0.05, reg_bias=0.02, lr=0.05, method="sgd", batch_size=1, init_scale=0.3,
              device=device, random_state=7, dtype=torch.float64, shuffle=False)
    start = BiasedMF(n_epochs=0, **kw).fit(data)  # zero epochs: the initial values of the same seed
    fitted = BiasedMF(n_epochs=4, **kw).fit(data)

    mu = float(np.mean(data.rating, dtype=np.float64))
    bu, bi = start.user_bias_.cpu().clone(), start.item_bias_.cpu().clone()
    p, q = start.user_factors_.cpu().clone(), start.item_factors_.cpu().clone()
    lr, lam, lam_b = 0.05, 0.05, 0.02
    for _ in range(4):
        for u, i, r in zip(data.user.tolist(), data.item.tolist(), data.rating.tolist()):
            e = r - (mu + bu[u] + bi[i] + (p[u] * q[i]).sum())
            bu[u] += lr * (e - lam_b * bu[u])
            bi[i] += lr * (e - lam_b * bi[i])
            pu_old = p[u].clone()
            p[u] += lr * (e * q[i] - lam * p[u])
            q[i] += lr * (e * pu_old - lam * q[i])
    for mine, loop in [(fitted.user_bias_, bu), (fitted.item_bias_, bi), (fitted.user_factors_, p),
                       (fitted.item_factors_, q)]:
        torch.testing.assert_close(mine.cpu(), loop, rtol=1e-12, atol=1e-12)
    # and it actually moved away from the start
    assert not torch.allclose(fitted.user_factors_.cpu(), start.user_factors_.cpu())


# ---------------------------------------------------------------------------------------------------------------------
# ALS: matches a dense solve, lowers the objective
# ---------------------------------------------------------------------------------------------------------------------
def _objective(m, data, reg, reg_b):
    u, i, r = data.to_tensors()
    e = r.double() - m.predict(u, i).double().cpu()
    p, q = m.user_factors_.cpu().double(), m.item_factors_.cpu().double()
    bu, bi = m.user_bias_.cpu().double(), m.item_bias_.cpu().double()
    return float((e ** 2).sum() + reg * ((p[u] ** 2).sum() + (q[i] ** 2).sum())
                 + reg_b * ((bu[u] ** 2).sum() + (bi[i] ** 2).sum()))


def test_als_sweep_matches_dense_numpy_solve_and_lowers_objective(device):
    data = tiny_ratings()
    reg, reg_b, k = 0.3, 0.1, 2
    kw = dict(n_factors=k, reg=reg, reg_bias=reg_b, method="als", init_scale=0.5, device=device, random_state=3,
              dtype=torch.float64)
    start = BiasedMF(n_epochs=0, **kw).fit(data)
    one = BiasedMF(n_epochs=1, **kw).fit(data)
    two = BiasedMF(n_epochs=2, **kw).fit(data)

    mu = float(np.mean(data.rating, dtype=np.float64))
    q = start.item_factors_.cpu().numpy()
    b_i = start.item_bias_.cpu().numpy()
    user, item, rating = data.user, data.item, data.rating.astype(np.float64)
    penalty = np.diag([reg_b] + [reg] * k)
    theta_u = np.zeros((data.n_users, k + 1))
    for a in range(data.n_users):  # the dense reference solve, one user at a time
        rows = user == a
        if rows.any():
            x = np.column_stack([np.ones(rows.sum()), q[item[rows]]])
            theta_u[a] = np.linalg.solve(x.T @ x + rows.sum() * penalty, x.T @ (rating[rows] - mu - b_i[item[rows]]))
    theta_i = np.zeros((data.n_items, k + 1))
    for j in range(data.n_items):
        rows = item == j
        if rows.any():
            x = np.column_stack([np.ones(rows.sum()), theta_u[user[rows], 1:]])
            theta_i[j] = np.linalg.solve(x.T @ x + rows.sum() * penalty,
                                         x.T @ (rating[rows] - mu - theta_u[user[rows], 0]))
    np.testing.assert_allclose(one.user_bias_.cpu().numpy(), theta_u[:, 0], atol=1e-9)
    np.testing.assert_allclose(one.user_factors_.cpu().numpy(), theta_u[:, 1:], atol=1e-9)
    np.testing.assert_allclose(one.item_bias_.cpu().numpy(), theta_i[:, 0], atol=1e-9)
    np.testing.assert_allclose(one.item_factors_.cpu().numpy(), theta_i[:, 1:], atol=1e-9)

    f0, f1, f2 = (_objective(m, data, reg, reg_b) for m in (start, one, two))
    assert f1 < f0 and f2 <= f1 + 1e-9


# ---------------------------------------------------------------------------------------------------------------------
# users and items without training ratings
# ---------------------------------------------------------------------------------------------------------------------
MODELS = {
    "sgd": lambda dev: BiasedMF(n_factors=3, reg=0.05, lr=0.02, n_epochs=5, batch_size=4, device=dev),
    "autograd": lambda dev: BiasedMF(n_factors=3, reg=0.05, lr=0.02, n_epochs=5, batch_size=4, method="autograd",
                                     device=dev),
    "als": lambda dev: BiasedMF(n_factors=3, reg=0.1, n_epochs=3, method="als", device=dev),
    "bayes": lambda dev: BayesianMF(n_factors=3, n_samples=4, burn_in=2, device=dev),
    "baseline": lambda dev: BiasBaseline(device=dev),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unseen_users_and_items_get_global_mean_plus_known_bias(device, name):
    data = tiny_ratings()
    train, test = data.subset(np.arange(15)), data.subset(np.arange(15, 17))  # user 70, item 500 only in test
    model = MODELS[name](device).fit(train)
    new_user, new_item = int(data.user_index([70])[0]), int(data.item_index([500])[0])
    assert float(model.user_bias_[new_user]) == 0 and float(model.item_bias_[new_item]) == 0
    assert float(model.user_factors_[new_user].abs().sum()) == 0
    assert float(model.item_factors_[new_item].abs().sum()) == 0
    pred = model.predict(test.user, test.item).cpu()
    known_user = int(test.user[1])  # user 60 rated in train, item 500 did not
    expected = [model.global_mean_, model.global_mean_ + float(model.user_bias_[known_user])]
    torch.testing.assert_close(pred.double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-5)
    # raw ids never seen at all fall back the same way
    raw = model.predict_raw([10, 999], [999, 100]).cpu()
    assert float(raw[0]) == pytest.approx(model.global_mean_ + float(model.user_bias_[0]), abs=1e-5)
    assert float(raw[1]) == pytest.approx(model.global_mean_ + float(model.item_bias_[0]), abs=1e-5)
    scores = evaluate(model, test)
    assert 0 <= scores["mae"] <= scores["rmse"] <= 4


# ---------------------------------------------------------------------------------------------------------------------
# recovery of a planted model
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,kw", [
    ("als", dict(n_factors=3, reg=0.002, n_epochs=15)),
    ("sgd", dict(n_factors=3, reg=0.002, lr=0.02, n_epochs=40, batch_size=64, init_scale=0.3)),
    ("autograd", dict(n_factors=3, reg=0.0005, lr=0.03, n_epochs=40, batch_size=256, init_scale=0.3)),
])
def test_biased_mf_recovers_planted_low_rank_model(device, method, kw):
    noise = 0.1
    data = planted(noise=noise)
    train, test = random_split(data, 0.2, seed=1)
    model = BiasedMF(method=method, device=device, random_state=0, **kw).fit(train, valid=test)
    got = evaluate(model, test, clip=None)["rmse"]
    assert got < 1.35 * noise, f"{method}: test RMSE {got:.4f} vs noise {noise}"
    # training RMSE recorded per epoch, falling overall
    assert model.history_.loss[-1] < 0.5 * model.history_.loss[0]
    assert len(model.history_.metric) == len(model.history_.loss)


def test_bayesian_mf_recovers_planted_model_and_averages_samples(device):
    noise = 0.1
    data = planted(noise=noise)
    train, test = random_split(data, 0.2, seed=1)
    model = BayesianMF(n_factors=3, n_samples=10, burn_in=5, alpha=1 / noise ** 2, device=device).fit(train, test)
    assert evaluate(model, test, clip=None)["rmse"] < 1.35 * noise
    assert model.user_factors_.shape == (data.n_users, 10 * 3)
    assert model.history_.metric[-1] == pytest.approx(evaluate(model, test, clip=(
        float(train.rating.min()), float(train.rating.max())))["rmse"], abs=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# early stopping, divergence, bad arguments, selection
# ---------------------------------------------------------------------------------------------------------------------
def test_early_stopping_keeps_the_best_epoch():
    data = planted(noise=0.3, n_users=80, n_items=60)
    train, valid = random_split(data, 0.2, seed=0)
    # almost no regularisation and many factors: validation RMSE turns up, patience stops it
    model = BiasedMF(n_factors=30, reg=0.0, lr=0.05, n_epochs=200, batch_size=32, device="cpu").fit(
        train, valid=valid, patience=3)
    h = model.history_
    assert h.stopped_early and len(h.records) < 200
    assert h.best_metric == pytest.approx(min(h.metric))
    now = evaluate(model, valid, clip=(float(train.rating.min()), float(train.rating.max())))["rmse"]
    assert now == pytest.approx(h.best_metric, abs=1e-5)


@pytest.mark.parametrize("method", ["sgd", "autograd"])
def test_huge_learning_rate_raises_divergence_error(device, method):
    data = planted(n_users=40, n_items=30)
    with pytest.raises(DivergenceError, match="(?i)learning rate"):
        BiasedMF(n_factors=5, lr=1e4, n_epochs=20, batch_size=16, method=method, optimizer="sgd",
                 device=device).fit(data)


def test_bad_arguments_raise_value_error():
    data = tiny_ratings()
    with pytest.raises(ValueError, match="method"):
        BiasedMF(method="newton").fit(data)
    with pytest.raises(ValueError, match="batch_size"):
        BiasedMF(batch_size=0).fit(data)
    with pytest.raises(ValueError, match="patience"):
        BiasedMF(n_epochs=1).fit(data, patience=2)
    model = BiasedMF(n_factors=2, n_epochs=1, method="als").fit(data)
    with pytest.raises(ValueError, match="indices"):
        model.predict([data.n_users], [0])


def test_tune_on_validation_picks_the_lowest_validation_rmse():
    data = planted(noise=0.2, n_users=80, n_items=60)
    result = tune(lambda reg: BiasedMF(n_factors=3, reg=reg, n_epochs=8, method="als", device="cpu"),
                  data, {"reg": [0.001, 3.0]}, seed=0, per_epoch=False, refit=True)
    model, best, table = result.model, result.best_params, result.table
    assert best == {"reg": 0.001} and result.metric == "rmse"  # heavy shrinkage of a planted rank-3 model loses
    assert list(table["rmse"]) == sorted(table["rmse"]) and len(table) == 2
    assert model.reg == 0.001 and model.history_.records


# ---------------------------------------------------------------------------------------------------------------------
# protocol N2 on the generated Netflix sample
# ---------------------------------------------------------------------------------------------------------------------
needs_netflix = pytest.mark.skipif(
    not all(hasattr(mdata, n) for n in ("load_netflix", "read_probe", "netflix_sample_dir")),
    reason="mfkit.data has no Netflix reader yet")


@needs_netflix
def test_netflix_probe_rmse_on_generated_sample(tmp_path):
    model = BiasedMF(n_factors=8, reg=0.05, lr=0.01, n_epochs=5, batch_size=512, device="cpu")
    out = netflix_probe_rmse(mdata.netflix_sample_dir(), model=model, device="cpu", show_progress=False)
    assert out["n_probe"] > 0 and out["n_train"] > out["n_probe"]
    assert 0 < out["probe_rmse"] < 2.0 and out["probe_mae"] <= out["probe_rmse"]


@needs_netflix
def test_netflix_probe_command_end_to_end():
    env = dict(os.environ, MFKIT_PROGRESS="0")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "netflix_probe.py"), "--device", "cpu",
                          "--quick", "--no-save"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    line = [s for s in run.stdout.splitlines() if s.startswith("N2 probe_rmse=")]
    assert line, run.stdout
    assert math.isfinite(float(line[0].split("probe_rmse=")[1].split()[0]))
