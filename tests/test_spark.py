"""mfkit.spark: the parameter mapping, Spark's objective, parity with WeightedMF, bad input, the session.

Every test runs Spark for real (pyspark and a Java 17+ runtime come with ``make install`` and ``make java``); the
module is skipped only where pyspark is not importable. First in a local session (``mfkit.spark.local_session``, one
per process, shared with the contract suite), then on a standalone cluster of one master and two one-core workers
on 127.0.0.1 that ``tests/conftest.py``'s ``spark_cluster`` fixture starts and stops (``mfkit.spark_cluster``): the
parity of Spark's and mfkit's objectives, both executors at work, a worker killed mid-fit.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mfkit.data import Interactions
from mfkit.implicit import WeightedMF, weighted_loss_gram
from mfkit.metrics import ranking_metrics

pytest.importorskip("pyspark", reason='mfkit.spark needs pyspark: pip install "mfkit[spark]" (or make install)')

from mfkit import spark as S  # noqa: E402


def _data(n_users=60, n_items=40, seed=0, ratings=False) -> Interactions:
    """Two taste groups; about a quarter of the cells observed."""
    rng = np.random.default_rng(seed)
    same = (np.arange(n_users)[:, None] % 2) == (np.arange(n_items)[None, :] % 2)
    u, i = np.nonzero(rng.random((n_users, n_items)) < np.where(same, 0.4, 0.1))
    r = np.clip(np.where(same[u, i], 4, 2) + rng.integers(-1, 2, len(u)), 1, 5).astype(np.float32)
    return Interactions.from_raw(10 + u, 500 + i, ratings=r if ratings else None)


# -- the mapping and the objective (no Spark needed) ------------------------------------------------------------------
def test_mapping_round_trips():
    p = S.to_mfkit_params(0.3, 4.0)
    assert p == {"unobserved_weight": pytest.approx(0.2), "reg": pytest.approx(0.06), "reg_scaling": "count"}
    back = S.from_mfkit_params(p["unobserved_weight"], p["reg"], p["reg_scaling"])
    assert back == {"reg": pytest.approx(0.3), "alpha": pytest.approx(4.0)}
    assert S.from_mfkit_params(1.0, 2.0) == {"reg": 2.0, "alpha": 0.0}


@pytest.mark.parametrize("kwargs, match", [({"unobserved_weight": 0.0}, "unobserved_weight"),
                                           ({"unobserved_weight": 1.5}, r"\(0, 1\]"),
                                           ({"reg_scaling": None}, "reg_scaling='count'"),
                                           ({"reg": -1.0}, "reg")])
def test_mapping_refuses_what_spark_cannot_express(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.from_mfkit_params(**{"unobserved_weight": 0.5, "reg": 1.0, "reg_scaling": "count", **kwargs})


def test_spark_loss_is_weighted_mf_loss_times_one_plus_alpha():
    data = _data()
    g = torch.Generator().manual_seed(0)
    U = torch.randn(data.n_users, 3, generator=g, dtype=torch.float64)
    V = torch.randn(data.n_items, 3, generator=g, dtype=torch.float64)
    reg, alpha = 0.2, 3.0
    p = S.to_mfkit_params(reg, alpha)
    counts_u = torch.bincount(torch.from_numpy(data.user.astype(np.int64)), minlength=data.n_users).double()
    counts_i = torch.bincount(torch.from_numpy(data.item.astype(np.int64)), minlength=data.n_items).double()
    mine = weighted_loss_gram(U, V, torch.from_numpy(data.user.astype(np.int64)),
                              torch.from_numpy(data.item.astype(np.int64)), p["unobserved_weight"], p["reg"],
                              user_reg=counts_u, item_reg=counts_i, reduction="sum")
    assert S.spark_als_loss(U, V, data, reg, True, alpha) == pytest.approx((1 + alpha) * float(mine), rel=1e-10)


def test_explicit_loss_by_hand():
    data = Interactions.from_raw(np.array([1, 1, 2]), np.array([7, 8, 7]), ratings=np.array([4.0, 2.0, 5.0]))
    U, V = np.array([[1.0], [2.0]]), np.array([[1.5], [0.5]])
    # errors 2.5, 1.5, 2.0; reg 0.1 · (2·1 + 1·4 + 2·2.25 + 1·0.25)
    expected = 2.5 ** 2 + 1.5 ** 2 + 2.0 ** 2 + 0.1 * (2 + 4 + 4.5 + 0.25)
    assert S.spark_als_loss(U, V, data, 0.1) == pytest.approx(expected)
    with pytest.raises(ValueError, match="ratings"):
        S.spark_als_loss(U, V, Interactions.from_raw(np.array([1]), np.array([7])), 0.1)


def test_als_sweep_lowers_the_loss_to_a_fixed_point():
    data = _data(ratings=True)
    g = torch.Generator().manual_seed(1)
    U, V = torch.randn(data.n_users, 3, generator=g), torch.randn(data.n_items, 3, generator=g)
    for implicit in (False, True):
        losses = [S.spark_als_loss(U, V, data, 0.1, implicit, 2.0)]
        A, B = U, V
        for _ in range(15):
            A, B = S.als_sweep(A, B, data, 0.1, implicit, 2.0)
            losses.append(S.spark_als_loss(A, B, data, 0.1, implicit, 2.0))
        assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:]))
        assert losses[-1] < 0.9 * losses[0] and abs(losses[-1] / losses[-2] - 1) < 1e-3


def test_index_space_check():
    S.check_spark_index_space(2 ** 31, 10)  # indices up to 2^31 - 1 fit
    with pytest.raises(ValueError, match="32-bit"):
        S.check_spark_index_space(2 ** 31 + 1, 10)
    with pytest.raises(ValueError, match="item ids"):
        S.check_spark_index_space(10, 3_000_000_000)


def test_java_check_names_the_install_command(tmp_path):
    with pytest.raises(RuntimeError, match="openjdk-17-jre-headless"):
        S.check_java(str(tmp_path / "no-java-here"))
    old = tmp_path / "java"
    old.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    old.chmod(0o755)
    with pytest.raises(RuntimeError, match="Java 11.*17"):
        S.check_java(str(old))
    assert S.check_java() >= 17


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="n_factors"):
        S.SparkALS(n_factors=0)
    with pytest.raises(ValueError, match="implicit_prefs"):
        S.SparkALS(implicit_prefs="yes")
    with pytest.raises(ValueError, match="alpha"):
        S.SparkALS(alpha=-1.0)


def test_cluster_cli_and_parameters_without_a_cluster(tmp_path, capsys):
    from mfkit import spark_cluster as C

    with pytest.raises(ValueError, match="workers and cores"):
        C.StandaloneCluster(workers=0)
    state = str(tmp_path / "state.json")
    assert C.main(["stop", "--state", state]) == 0 and "no cluster recorded" in capsys.readouterr().out
    assert C.main(["status", "--state", state]) == 1
    with pytest.raises(SystemExit):
        C.main(["run"])  # no command to run
    cluster = C.StandaloneCluster()
    cluster.stop()  # stopping a cluster that never started is a no-op
    assert cluster.processes() == [] and "not started" in repr(cluster)
    assert C.listening_sockets([]) == [] and not C.pid_alive(2 ** 22 + 12345)
    assert 0 < C.free_port() < 65536


# -- with Spark, in a local session -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def session():
    return S.local_session()


def test_users_without_rows_get_zero_vectors(session):
    data = _data()
    keep = data.user != 0  # user index 0 stays in the id map without a single row
    sub = data.subset(keep)
    sp = S.SparkALS(n_factors=3, n_epochs=2, implicit_prefs=True, spark=session, device="cpu").fit(sub)
    assert sp.user_factors_.shape == (data.n_users, 3)
    assert torch.all(sp.user_factors_[0] == 0) and torch.all(sp.score_users([0]) == 0)
    assert sp.user_factors_[1:].abs().sum(1).min() > 0


def test_bad_input_is_refused_clearly(session):
    model = S.SparkALS(n_factors=2, n_epochs=1, implicit_prefs=True, spark=session, device="cpu")
    data = _data()
    with pytest.raises(ValueError, match="empty"):
        model.fit(data.subset(np.zeros(len(data), dtype=bool)))
    with pytest.raises(ValueError, match="no ratings"):
        S.SparkALS(n_factors=2, spark=session).fit(data)
    with pytest.raises(ValueError, match="timeout"):
        S.SparkALS(timeout=0)

    class Huge(Interactions):  # an id map Spark's 32-bit ids cannot index (not materialised)
        n_users = property(lambda self: 2 ** 31 + 5)

    huge = data.subset(np.arange(len(data)))
    huge.__class__ = Huge
    with pytest.raises(ValueError, match="32-bit"):
        model.fit(huge)
    assert not model.is_fitted


def test_session_is_reused_and_a_given_session_is_not_stopped(session):
    assert S.local_session() is session and S.session_master().startswith("local")
    data = _data()
    a = S.SparkALS(n_factors=2, n_epochs=1, implicit_prefs=True, device="cpu").fit(data)
    b = S.SparkALS(n_factors=2, n_epochs=1, implicit_prefs=True, spark=session, device="cpu").fit(data)
    torch.testing.assert_close(a.user_factors_, b.user_factors_)
    assert session.sparkContext._jsc is not None  # still running
    key = "spark.sql.execution.arrow.pyspark.enabled"
    session.conf.set(key, "false")  # a caller's own setting survives a fit
    S.SparkALS(n_factors=2, n_epochs=1, implicit_prefs=True, spark=session, device="cpu").fit(data)
    assert session.conf.get(key) == "false"
    session.conf.set(key, "true")
    assert S.local_session_start_seconds() > 0
    assert session.sparkContext.getLocalProperty("spark.jobGroup.id") is None  # the fit's job group is cleared


def test_a_fit_past_its_timeout_is_cancelled(session):
    data = _data(300, 200, seed=1)
    model = S.SparkALS(n_factors=8, n_epochs=50, implicit_prefs=True, spark=session, device="cpu",
                       timeout=0.5, checkpoint_interval=100)
    with pytest.raises(TimeoutError, match="timeout=0.5 s"):
        model.fit(data)
    assert not model.is_fitted and not session.sparkContext.statusTracker().getActiveJobsIds()


def test_save_load_and_similar_items(session, tmp_path):
    data = _data()
    sp = S.SparkALS(n_factors=3, n_epochs=3, implicit_prefs=True, spark=session, device="cpu").fit(data)
    loaded = S.SparkALS.load(sp.save(tmp_path / "spark.npz"))
    assert loaded.spark is None and loaded.implicit_prefs
    torch.testing.assert_close(loaded.score_users([0, 5]), sp.score_users([0, 5]))
    assert len(loaded.similar_items(500, k=4)) == 4
    assert loaded.recommend(10, k=3)["item_id"].tolist() == sp.recommend(10, k=3)["item_id"].tolist()


def test_stopping_the_local_session_and_starting_again(session):
    """Last of the local tests: stop the process's local session; the next fit starts a fresh one."""
    checkpoints = S._CHECKPOINT_DIR
    assert checkpoints is not None and os.path.isdir(checkpoints)
    S.stop_local_session()
    assert session.sparkContext._jsc is None and not os.path.exists(checkpoints)
    S.stop_local_session()  # a second stop is a no-op
    model = S.SparkALS(n_factors=2, n_epochs=1, implicit_prefs=True, device="cpu").fit(_data())
    assert model.user_factors_.abs().sum() > 0 and S.local_session() is not session


# -- on a standalone cluster: a master and two workers on 127.0.0.1 (tests/conftest.py's spark_cluster) --------------
@pytest.fixture(scope="module")
def cluster(spark_cluster):
    """A session on the standalone cluster, with both executors registered (the local session is stopped)."""
    spark = S.cluster_session(spark_cluster.master_url, executors=2, executor_memory="1g", timeout=180)
    yield spark
    S.stop_session()


def test_the_cluster_listens_on_loopback_only(spark_cluster, cluster):
    assert S.session_master() == spark_cluster.master_url and len(S.executor_ids(cluster)) == 2
    if spark_cluster.external:
        pytest.skip("an external cluster: its processes are not this test's")
    from mfkit.spark_cluster import listening_sockets

    procs = spark_cluster.processes()
    assert len(procs) == 5  # master, two workers, the two executors they launched for this session
    driver = cluster.sparkContext._gateway.proc.pid
    sockets = listening_sockets(procs + [driver])
    assert sockets and {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
    state = spark_cluster.state()
    assert state["aliveworkers"] == 2 and [w["cores"] for w in state["workers"]] == [1, 1]


def test_implicit_parity_with_weighted_mf(cluster):
    """Same objective, same minimiser: Spark's (on the cluster) and mfkit's factors reach one loss."""
    data = _data(120, 80, seed=3)
    split = np.random.default_rng(0).random(len(data)) < 0.75
    train, test = data.subset(split), data.subset(~split)
    reg, alpha = 0.1, 2.0
    sp = S.SparkALS(n_factors=4, n_epochs=20, reg=reg, alpha=alpha, implicit_prefs=True, spark=cluster,
                    device="cpu", timeout=300).fit(train)
    mf = WeightedMF(n_factors=4, n_epochs=20, solver="als", device="cpu", show_progress=False,
                    **S.to_mfkit_params(reg, alpha)).fit(train)
    losses = [S.spark_als_loss(m.user_factors_, m.item_factors_, train, reg, True, alpha) for m in (sp, mf)]
    assert sp.loss() == pytest.approx(losses[0])
    # Chapter 8's tolerances: losses within 0.5%, nDCG@10 within 0.015 (there on MovieLens; 0.05 on this toy set)
    assert losses[0] == pytest.approx(losses[1], rel=0.005)
    nd = [ranking_metrics(m, train, test, k=10)["ndcg"] for m in (sp, mf)]
    assert abs(nd[0] - nd[1]) < 0.05
    # a converged fit: one more exact sweep hardly moves the loss
    again = S.spark_als_loss(*S.als_sweep(sp.user_factors_, sp.item_factors_, train, reg, True, alpha), train,
                             reg, True, alpha)
    assert again == pytest.approx(losses[0], rel=1e-3)


def test_a_fit_uses_both_executors_and_shuffles_between_them(cluster):
    before = S.executor_metrics(cluster).set_index("id")
    data = _data(400, 300, seed=5)
    S.SparkALS(n_factors=8, n_epochs=3, implicit_prefs=True, spark=cluster, device="cpu", timeout=300).fit(data)
    after = S.executor_metrics(cluster).set_index("id")
    assert after["active"].sum() == 2 and len(after) == 2
    delta = after[["completed_tasks", "shuffle_read_bytes", "shuffle_write_bytes"]] - \
        before[["completed_tasks", "shuffle_read_bytes", "shuffle_write_bytes"]]
    assert (delta["completed_tasks"] > 0).all(), delta  # both executors ran tasks of this fit
    assert (delta["shuffle_read_bytes"] > 0).all(), delta  # and each read blocks the shuffle routed to it
    assert (delta["shuffle_write_bytes"] > 0).all(), delta


def test_explicit_fit_is_spark_objective_stationary_point(cluster):
    data = _data(ratings=True)
    sp = S.SparkALS(n_factors=3, n_epochs=20, reg=0.1, spark=cluster, device="cpu", timeout=300).fit(data)
    assert sp.requires_ratings and sp.default_metric == "rmse"
    loss = sp.loss()
    again = S.spark_als_loss(*S.als_sweep(sp.user_factors_, sp.item_factors_, data, 0.1), data, 0.1)
    assert again <= loss * (1 + 1e-6) and again == pytest.approx(loss, rel=1e-3)
    assert sp.score(data)["rmse"] < 1.0


def test_a_worker_killed_mid_fit(spark_cluster, cluster):
    """Kill one worker (and its executor) during a fit: the fit ends on the other one or fails clearly, in bounded
    time; the killed processes are gone; the worker is started again for whatever runs next."""
    if spark_cluster.external:
        pytest.skip("an external cluster: not this test's to kill")
    import threading
    import time

    data = _data(1500, 600, seed=7)
    reg, alpha = 0.1, 2.0
    model = S.SparkALS(n_factors=8, n_epochs=15, reg=reg, alpha=alpha, implicit_prefs=True, spark=cluster,
                       device="cpu", timeout=240)
    outcome = {}

    def fit():
        try:
            model.fit(data)
            outcome["ok"] = True
        except (RuntimeError, TimeoutError) as err:
            outcome["error"] = err

    tracker = cluster.sparkContext.statusTracker()
    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not tracker.getActiveJobsIds() and time.monotonic() < deadline:  # wait until Spark's jobs run
        time.sleep(0.05)
    time.sleep(0.5)
    assert thread.is_alive(), "the fit ended before the worker could be killed: make it longer"
    victim = spark_cluster.processes()
    spark_cluster.kill_worker(0)
    thread.join(300)
    assert not thread.is_alive(), "the fit did not return within its bounded wait"
    if "ok" in outcome:  # Spark re-ran the lost tasks on the surviving executor
        mf = WeightedMF(n_factors=8, n_epochs=15, solver="als", device="cpu", show_progress=False,
                        **S.to_mfkit_params(reg, alpha)).fit(data)
        assert model.loss() == pytest.approx(S.spark_als_loss(mf.user_factors_, mf.item_factors_, data, reg, True,
                                                              alpha), rel=0.02)
    else:  # or said why it stopped
        assert "Spark's ALS fit" in str(outcome["error"])
    from mfkit.spark_cluster import pid_alive

    killed = set(victim) - set(spark_cluster.processes())
    assert killed and not any(pid_alive(p) for p in killed)  # the worker and its executor are gone
    assert len(S.executor_ids(cluster)) == 1
    S.stop_session()
    spark_cluster.restart_worker(0)
    assert spark_cluster.alive_workers() == 2
