"""mfkit.plots: intervals over split seeds, ties through paired_comparison, speed ratios, split windows, figures."""
import math

import matplotlib
import numpy as np
import pytest
from scipy import stats

matplotlib.use("Agg")

from mfkit import plots  # noqa: E402
from mfkit.data import Interactions, random_split, stratified_item_split, train_validation_split  # noqa: E402


def _record(model, values, chapter="05_explicit_mf", metric="rmse", protocol="E1"):
    return {"protocol": protocol, "model": model, "chapter": chapter,
            "runs": [{"seed": s, metric: v} for s, v in values.items()]}


def _payloads():
    return {
        "explicit_ml100k": {"records": [
            _record("best", {0: 0.90, 1: 0.91, 2: 0.92}),
            _record("close", {0: 0.905, 1: 0.905, 2: 0.925}),   # differences +0.005, -0.005, +0.005: a tie
            _record("worse", {0: 0.95, 1: 0.96, 2: 0.97}),      # +0.05 on every seed: behind
            _record("one seed", {0: 0.80}),                     # fewer than two seeds: left out
        ]},
        "peers_ml100k": {"records": [_record("peer", {0: 0.93, 1: 0.94, 2: 0.96}, chapter=None)]},
    }


def test_seed_values_reads_runs():
    assert plots.seed_values(_record("m", {0: 1.0, 3: 2.0}), "rmse") == {0: 1.0, 3: 2.0}
    assert plots.seed_values({"runs": "not a list"}, "rmse") == {}
    assert plots.seed_values({}, "rmse") == {}


def test_seed_intervals_by_hand():
    table = plots.seed_intervals(_payloads(), "E1", "rmse", higher_is_better=False)
    assert list(table["model"]) == ["best", "close", "peer", "worse"]
    best = table.iloc[0]
    values = np.array([0.90, 0.91, 0.92])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert best["mean"] == pytest.approx(0.91) and best["low"] == pytest.approx(0.91 - half)
    assert best["high"] == pytest.approx(0.91 + half) and best["verdict"] == "best"
    verdicts = dict(zip(table["model"], table["verdict"]))
    assert verdicts == {"best": "best", "close": "tie", "peer": "behind", "worse": "behind"}
    assert table.set_index("model").loc["worse", "difference"] == pytest.approx(0.05)
    assert list(table["peer"]) == [False, False, True, False]
    assert "one seed" not in set(table["model"])


def test_seed_intervals_higher_is_better_and_scripts_filter():
    table = plots.seed_intervals(_payloads(), "E1", "rmse", higher_is_better=True, scripts=["explicit_ml100k"])
    assert table.iloc[0]["model"] == "worse" and "peer" not in set(table["model"])
    assert plots.seed_intervals(_payloads(), "I1", "ndcg").empty


def test_duplicate_model_names_are_labelled_by_script():
    payloads = _payloads()
    payloads["peers_ml100k"]["records"].append(_record("best", {0: 0.99, 1: 0.99, 2: 0.99}, chapter=None))
    names = set(plots.seed_intervals(payloads, "E1", "rmse", higher_is_better=False)["model"])
    assert {"best (explicit_ml100k)", "best (peers_ml100k)"} <= names


def test_speed_ratios_keeps_timed_measures():
    payloads = {"speed_vs_peers": {"records": [
        {"protocol": "P1", "model": "a", "measure": "one sweep (s)", "peer": "implicit", "value": 1.0,
         "baseline": 2.0, "ratio": 0.5},
        {"protocol": "P1", "model": "a", "measure": "objective", "peer": "implicit", "value": 1.0,
         "baseline": 1.0, "ratio": 1.0},
        {"protocol": "P1", "model": "start", "measure": "start (s)", "peer": "(Spark only)", "value": 3.0,
         "baseline": 3.0, "ratio": 1.0}]}}
    table = plots.speed_ratios(payloads)
    assert list(table["measure"]) == ["one sweep (s)"] and table["ratio"].iloc[0] == 0.5
    assert len(plots.speed_ratios(payloads, time_only=False)) == 2


def test_split_codes_marks_each_part():
    data = Interactions.from_raw(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 2, 1]))
    train, test = data.subset(np.array([True, True, False, True, False])), data.subset(
        np.array([False, False, True, False, True]))
    codes = plots.split_codes(np.arange(3), np.arange(3), {"train": train, "test": test})
    assert codes.tolist() == [[1, 1, 0], [3, 0, 1], [0, 3, 0]]
    with pytest.raises(ValueError, match="two parts"):
        plots.split_codes(np.arange(3), np.arange(3), {"train": train, "test": train})


def test_split_codes_of_the_real_splits_are_disjoint():
    rng = np.random.default_rng(0)
    pairs = np.unique(np.c_[rng.integers(0, 30, 600), rng.integers(0, 20, 600)], axis=0)
    data = Interactions.from_raw(pairs[:, 0], pairs[:, 1])
    for rest, test, protocol in [(*random_split(data, 0.2, 0), "E1"), (*stratified_item_split(data, 0.75, 42), "I1")]:
        train, valid = train_validation_split(rest, protocol, 0)
        codes = plots.split_codes(np.arange(data.n_users), np.arange(data.n_items),
                                  {"train": train, "validation": valid, "test": test})
        assert (codes > 0).sum() == len(data)
        assert {1, 2, 3} <= set(np.unique(codes).tolist())


def test_figures_draw():
    table = plots.seed_intervals(_payloads(), "E1", "rmse", higher_is_better=False)
    fig = plots.interval_plot(table, metric_label="RMSE", title="E1")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert set(labels) == {"best", "close", "peer (peer)", "worse"}
    speed = plots.speed_ratios({"s": {"records": [{"protocol": "P1", "model": "a", "measure": "x (s)",
                                                   "peer": "p", "value": 1.0, "baseline": 2.0, "ratio": 0.5}]}})
    assert plots.speed_plot(speed).axes[0].get_xscale() == "log"
    fig = plots.split_plot({"E1": np.array([[0, 1], [2, 3]]), "I1": np.array([[1, 1], [3, 0]])})
    assert len(fig.axes) == 2
    matplotlib.pyplot.close("all")


def test_interval_rows_strings():
    rows = plots.interval_rows(plots.seed_intervals(_payloads(), "E1", "rmse", higher_is_better=False))
    assert list(rows["model"]) == ["best", "close", "peer", "worse"]
    assert rows.iloc[0]["− best, paired (95%)"] == "best" and rows.iloc[0]["mean"] == "0.9100"
    assert rows.iloc[1]["− best, paired (95%)"].startswith("tie: ")
    assert rows.iloc[2]["from"] == "other library" and rows.iloc[3]["− best, paired (95%)"].startswith("behind: +0.0500")
