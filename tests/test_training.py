"""Tests of mfkit.training: the shared loop, optimizers by name, minibatches, early stopping, divergence, and the
Chapter 4 helpers (row update counts, effective learning rates, the learning-rate sweep)."""
import math

import numpy as np
import pytest
import torch

from mfkit.training import (OPTIMIZERS, DivergenceError, History, TuneResult, effective_learning_rate, epoch_loop,
                            grid_points, lr_sweep, make_optimizer, minibatches, row_update_counts, train_loop, tune)

# A learning rate per optimizer at which 60 full-batch steps on the quadratic below make real progress.
QUADRATIC_LR = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.5, "rmsprop": 0.05, "adam": 0.1, "adamw": 0.1}


def _quadratic(device):
    """0.5 * ||A x - b||^2 with a known minimiser x* = (1, -2, 3)."""
    a = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 1.5]], device=device)
    x_star = torch.tensor([1.0, -2.0, 3.0], device=device)
    b = a @ x_star
    x = torch.zeros(3, device=device, requires_grad=True)
    return x, (lambda batch: 0.5 * ((a @ x - b) ** 2).sum()), x_star


@pytest.mark.parametrize("name", sorted(QUADRATIC_LR))
def test_train_loop_each_optimizer_reduces_quadratic(name, device):
    x, loss_fn, x_star = _quadratic(device)
    initial = float(loss_fn(None).detach())
    hist = train_loop(loss_fn, [x], optimizer=name, lr=QUADRATIC_LR[name], n_epochs=60)
    assert len(hist.records) == 60
    assert hist.steps[-1] == 60
    assert hist.loss[-1] < 0.05 * initial, (name, hist.loss[-1], initial)
    assert x.device.type == torch.device(device).type
    # Each optimizer moves toward the minimiser, not just anywhere lower.
    assert float((x.detach() - x_star).norm()) < 0.5 * float(x_star.norm())


def test_sparseadam_with_sparse_embedding_reduces_loss(device):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 4, sparse=True).to(device)
    idx = torch.arange(0, 50, 5, device=device)
    target = torch.ones(len(idx), 4, device=device)
    loss_fn = lambda batch: ((emb(idx) - target) ** 2).sum()  # noqa: E731
    before = float(loss_fn(None).detach())
    untouched = emb.weight.detach()[1].clone()
    train_loop(loss_fn, emb, optimizer="SparseAdam", lr=0.1, n_epochs=40)
    assert float(loss_fn(None).detach()) < 0.05 * before
    # Rows outside the batches have no gradient: SparseAdam leaves them exactly as they were.
    assert torch.equal(emb.weight.detach()[1], untouched)


def test_make_optimizer_names_and_errors():
    p = [torch.zeros(2, requires_grad=True)]
    assert isinstance(make_optimizer("SGD+momentum", p, 0.1), torch.optim.SGD)
    assert make_optimizer("sgd_momentum", p, 0.1).param_groups[0]["momentum"] == 0.9
    assert isinstance(make_optimizer("AdamW", p, 0.1), torch.optim.AdamW)
    opt = torch.optim.Adam(p, lr=0.1)
    assert make_optimizer(opt, p, 0.5) is opt
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'.*adam"):
        make_optimizer("lbfgs", p, 0.1)
    with pytest.raises(ValueError, match="lr must be a positive"):
        make_optimizer("adam", p, 0.0)
    assert {"sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "sparseadam"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("n,batch_size", [(10, 3), (12, 4), (1, 5), (0, 2)])
def test_minibatches_cover_every_index_once(n, batch_size, device):
    gen = torch.Generator().manual_seed(0)
    batches = list(minibatches(n, batch_size, device, generator=gen))
    assert len(batches) == math.ceil(n / batch_size)
    assert all(len(b) == batch_size for b in batches[:-1])
    allidx = torch.cat(batches) if batches else torch.empty(0, dtype=torch.long)
    assert allidx.device.type == torch.device(device).type
    assert sorted(allidx.cpu().tolist()) == list(range(n))


def test_minibatches_shuffle_and_seed():
    a = torch.cat(list(minibatches(100, 7, generator=torch.Generator().manual_seed(1))))
    b = torch.cat(list(minibatches(100, 7, generator=torch.Generator().manual_seed(1))))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.arange(100))
    assert torch.equal(torch.cat(list(minibatches(10, 3, shuffle=False))), torch.arange(10))
    with pytest.raises(ValueError, match="batch_size"):
        minibatches(10, 0)


def test_train_loop_minibatches_take_one_step_per_batch(device):
    x, loss_fn, _ = _quadratic(device)
    hist = train_loop(loss_fn, [x], optimizer="sgd", lr=0.05, n_epochs=3,
                      batches=lambda e: minibatches(10, 4, device))
    assert hist.steps == [3, 6, 9]
    assert [r["epoch"] for r in hist.records] == [1, 2, 3]
    assert all(b >= a for a, b in zip(hist.seconds, hist.seconds[1:]))


def test_early_stopping_restores_best_and_stops_after_patience(device):
    # The "metric" is read from a script of values; the parameter records which epoch wrote it.
    x = torch.zeros(1, device=device, requires_grad=True)
    metrics = iter([0.1, 0.5, 0.3, 0.4, 0.2, 0.9, 0.95])
    epoch_seen = {"n": 0}

    def loss_fn(batch):
        return (x - 100.0).pow(2).sum()  # moves x every epoch

    def on_end(epoch):
        epoch_seen["n"] = epoch + 1
        with torch.no_grad():
            x.fill_(float(epoch + 1))  # x == number of the last finished epoch

    hist = train_loop(loss_fn, [x], optimizer="sgd", lr=0.01, n_epochs=7, evaluate=lambda: next(metrics),
                      patience=3, on_epoch_end=on_end)
    # Best 0.5 at epoch 2; epochs 3, 4, 5 do not improve: stop after epoch 5, before the better epoch 6.
    assert hist.stopped_early
    assert len(hist.records) == 5 and epoch_seen["n"] == 5
    assert hist.best_epoch == 2 and hist.best_metric == pytest.approx(0.5)
    assert float(x.detach()) == pytest.approx(2.0)


def test_early_stopping_lower_is_better_and_module(device):
    model = torch.nn.Linear(1, 1, bias=False).to(device)
    values = iter([3.0, 1.0, 2.0, 2.5])
    snapshots = []
    hist = train_loop(lambda b: (model.weight - 5).pow(2).sum(), model, optimizer="sgd", lr=0.1, n_epochs=4,
                      evaluate=lambda: next(values), higher_is_better=False, patience=5,
                      on_epoch_end=lambda e: snapshots.append(float(model.weight.detach())))
    assert not hist.stopped_early and len(hist.records) == 4
    assert hist.best_epoch == 2
    assert float(model.weight.detach()) == pytest.approx(snapshots[1])
    assert float(model.weight.detach()) != pytest.approx(snapshots[-1])


def test_eval_every_evaluates_on_schedule_and_last_epoch(device):
    x, loss_fn, _ = _quadratic(device)
    calls = []
    hist = train_loop(loss_fn, [x], optimizer="adam", lr=0.1, n_epochs=7, eval_every=3,
                      evaluate=lambda: calls.append(1) or -float(loss_fn(None).detach()))
    assert len(calls) == 3  # epochs 3, 6 and the last, 7
    assert [r["epoch"] for r in hist.records if "metric" in r] == [3, 6, 7]


def test_divergence_error_on_nan_loss_carries_hint(device):
    x = torch.ones(2, device=device, requires_grad=True)
    with pytest.raises(DivergenceError, match="epoch 1.*lower the lr please"):
        train_loop(lambda b: (x * float("nan")).sum(), [x], optimizer="sgd", lr=0.1, n_epochs=3,
                   divergence_hint="lower the lr please")


def test_divergence_error_when_sgd_blows_up(device):
    x, loss_fn, _ = _quadratic(device)
    with pytest.raises(DivergenceError, match="sgd.*lr 100.*Lower the learning rate"):
        train_loop(loss_fn, [x], optimizer="sgd", lr=100.0, n_epochs=200)


def test_adam_with_a_huge_learning_rate_is_caught_although_the_loss_stays_finite(device):
    # Adam's step is about lr whatever the gradient: x jumps by 1e6 and the loss by 12 orders of magnitude
    x, loss_fn, _ = _quadratic(device)
    with pytest.raises(DivergenceError, match="exploded.*adam.*lr 1e\\+06"):
        train_loop(loss_fn, [x], optimizer="adam", lr=1e6, n_epochs=5)
    x, loss_fn, _ = _quadratic(device)
    hist = train_loop(loss_fn, [x], optimizer="adam", lr=1e6, n_epochs=3, explode_factor=None)
    assert math.isfinite(hist.loss[-1]) and hist.loss[-1] > 1e10  # the check can be switched off


def test_epoch_loop_records_restores_and_stops():
    state = {"w": 0.0}
    metrics = iter([None, 0.5, 0.7, 0.6, 0.65, 0.6])  # None: nothing to evaluate yet (a burn-in)

    def epoch_fn(epoch):
        state["w"] += 1.0
        return None

    hist = epoch_loop(epoch_fn, 10, evaluate=lambda: next(metrics), patience=2, snapshot=lambda: state["w"],
                      restore=lambda w: state.update(w=w), measure=lambda epoch: 10.0 / (epoch + 1))
    assert [r["loss"] for r in hist.records] == [10.0, 5.0, 10 / 3, 2.5, 2.0]
    assert "metric" not in hist.records[0] and hist.best_epoch == 3 and hist.best_metric == 0.7
    assert hist.stopped_early and state["w"] == 3.0  # the third epoch's state is back
    assert all(b >= a for a, b in zip(hist.seconds, hist.seconds[1:]))
    assert epoch_loop(epoch_fn, 0).records == []


def test_epoch_loop_divergence_messages():
    with pytest.raises(DivergenceError, match="became nan at sweep 2 of ALS. raise reg"):
        epoch_loop(lambda e: [1.0, float("nan")][e], 3, unit="sweep", context=" of ALS", divergence_hint="raise reg")
    with pytest.raises(DivergenceError, match="exploded from 2 to 3e\\+04.*epoch 3"):
        epoch_loop(lambda e: [2.0, 3.0, 3e4][e], 3)
    assert epoch_loop(lambda e: [2.0, 3.0, 3e4][e], 3, explode_factor=1e5).loss[-1] == 3e4
    with pytest.raises(ValueError, match="eval_every"):
        epoch_loop(lambda e: 1.0, 2, eval_every=0)


def test_tune_any_model_class_or_factory():
    from mfkit.data import Interactions
    from mfkit.explicit import BiasBaseline, BiasedMF

    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 30, 600), rng.integers(0, 20, 600)
    data = Interactions.from_raw(u, i, ratings=np.clip(np.round(3 + (u % 3) - (i % 2) + rng.normal(0, 0.5, 600)),
                                                       1, 5), duplicates="first")
    result = tune(BiasBaseline, data, {"reg_user": [0.0, 5.0, 1e6]}, metric="mae", refit=True)
    assert isinstance(result, TuneResult) and result.metric == "mae"
    assert list(result.table.columns) == ["reg_user", "mae", "fit_s"]  # no epochs: no best_epoch column
    assert result.table["mae"].is_monotonic_increasing and result.best_params == {"reg_user": result.table.iloc[0, 0]}
    assert result.model.is_fitted and result.model.reg_user == result.best_params["reg_user"]
    # a factory that fixes n_epochs itself: the refit still gets the selected epoch count (through clone)
    make = lambda **kw: BiasedMF(n_factors=2, n_epochs=12, method="als", **kw)  # noqa: E731
    result = tune(make, data, [{"reg": 0.1}, {"reg": 5.0}], patience=2, refit=True)
    assert result.metric == "rmse" and result.best_params["n_epochs"] == result.table["best_epoch"].iloc[0]
    assert result.model.n_epochs == result.best_params["n_epochs"] <= 12
    with pytest.raises(ValueError, match="metric"):
        tune(BiasBaseline, data, {"reg_user": [1.0]}, metric="auc")
    with pytest.raises(ValueError, match="empty"):
        tune(BiasBaseline, data, [])
    assert grid_points({"a": [1, 2], "b": 3}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_train_loop_bad_arguments():
    x = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="n_epochs"):
        train_loop(lambda b: x.sum(), [x], n_epochs=0)
    with pytest.raises(ValueError, match="patience"):
        train_loop(lambda b: x.sum(), [x], patience=0)


def test_row_update_counts_matches_direct_count(device):
    rows = torch.tensor([0, 0, 0, 0, 1, 2, 2, 0, 3, 0])  # row 4 never appears
    gen = torch.Generator().manual_seed(3)
    counts = row_update_counts(rows, 5, batch_size=3, n_epochs=2, generator=gen, device=device)
    # The same batches, counted the slow, obvious way.
    gen = torch.Generator().manual_seed(3)
    expected = torch.zeros(5, dtype=torch.long)
    for _ in range(2):
        for b in minibatches(len(rows), 3, generator=gen):
            expected[torch.unique(rows[b])] += 1
    assert counts.device.type == torch.device(device).type
    assert torch.equal(counts.cpu(), expected)
    assert int(counts[4]) == 0
    assert int(counts[0]) <= 2 * 4 and int(counts[0]) >= 2 * 2  # 6 rows of row 0 in 4 batches of 3 per epoch
    with pytest.raises(ValueError, match="rows must lie"):
        row_update_counts(rows, 3, batch_size=3, device=device)


def test_row_update_counts_full_batch_counts_each_present_row_once_per_epoch(device):
    rows = torch.tensor([5, 5, 1, 2])
    counts = row_update_counts(rows, 6, batch_size=100, n_epochs=3, device=device)
    assert counts.cpu().tolist() == [0, 3, 3, 0, 0, 3]


def _one_step(name, grad, lr=0.1, **kw):
    p = torch.zeros_like(grad, requires_grad=True)
    opt = make_optimizer(name, [p], lr, **kw)
    p.grad = grad.clone()
    opt.step()
    return opt, p


def test_effective_learning_rate_matches_definitions(device):
    grad = torch.tensor([[2.0, 2.0], [0.5, 0.5], [0.0, 0.0]], device=device)
    opt, p = _one_step("sgd", grad)
    assert torch.allclose(effective_learning_rate(opt, p), torch.full((3,), 0.1, device=device))
    opt, p = _one_step("adagrad", grad)
    rate = effective_learning_rate(opt, p)
    assert rate[:2].cpu().tolist() == pytest.approx([0.1 / 2.0, 0.1 / 0.5], rel=1e-5)
    assert float(rate[2]) > 1e6  # no gradient yet: the next step is about lr whatever its scale
    assert effective_learning_rate(opt, p, per_row=False).shape == grad.shape
    opt, p = _one_step("adam", grad)
    # After one Adam step v_hat = g^2, so the rate is lr / |g|: a small-gradient row gets a 4x larger rate.
    rate = effective_learning_rate(opt, p)
    assert rate[:2].cpu().tolist() == pytest.approx([0.05, 0.2], rel=1e-4)
    opt, p = _one_step("rmsprop", grad, alpha=0.9)
    assert effective_learning_rate(opt, p)[:2].cpu().tolist() == pytest.approx(
        [0.1 / math.sqrt(0.1 * 4.0), 0.1 / math.sqrt(0.1 * 0.25)], rel=1e-4)
    with pytest.raises(ValueError, match="not one of the optimizer"):
        effective_learning_rate(opt, torch.zeros(3, 2))


def test_lr_sweep_picks_best_and_records_divergence(device):
    def run(name, lr):
        x, loss_fn, _ = _quadratic(device)
        return train_loop(loss_fn, [x], optimizer=name, lr=lr, n_epochs=30,
                          evaluate=lambda: -float(loss_fn(None).detach()))

    sweep = lr_sweep(run, {"sgd": [1e-3, 0.1, 100.0], "adam": [0.1]})
    frame = sweep.frame
    assert len(frame) == 4
    assert frame.set_index(["optimizer", "lr"]).loc[("sgd", 100.0), "diverged"]
    assert sweep.histories[("sgd", 100.0)] is None
    best = sweep.best_lr()
    assert best == {"sgd": 0.1, "adam": 0.1}
    with pytest.raises(ValueError, match="give optimizers"):
        lr_sweep(run, [0.1])
    assert isinstance(sweep.histories[("adam", 0.1)], History)
