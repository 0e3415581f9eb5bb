"""Ranking metrics (protocol I1) against hand-computed examples and a per-user reference implementation."""
import math

import numpy as np
import pytest
import torch

from mfkit.data import Interactions
from mfkit.metrics import (hit_rate_at_k, map_at_k, mae, ndcg_at_k, precision_at_k, ranking_metrics, recall_at_k,
                           rmse, top_k_items)


def make(users, items, n_users, n_items):
    return Interactions(np.asarray(users, np.int32), np.asarray(items, np.int32), None, np.arange(n_users),
                        np.arange(n_items))


class FixedScores:
    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def score_users(self, user_idx):
        return self.scores.to(user_idx.device)[user_idx]


# Two users, five items. User 0: train {0}, test {1, 3}. User 1: train {2}, test {3, 4}.
SCORES = [[9, 8, 1, 7, 2],
          [5, 4, 3, 2, 1]]
TRAIN = make([0, 1], [0, 2], 2, 5)
TEST = make([0, 0, 1, 1], [1, 3, 3, 4], 2, 5)


def test_hand_computed_k3(device):
    # User 0 ranks [1, 3, 4] (item 0 excluded): hits 1 1 0. User 1 ranks [0, 1, 3] (item 2 excluded): hits 0 0 1.
    got = ranking_metrics(FixedScores(SCORES), TRAIN, TEST, k=3, device=device)
    ndcg_user1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert got["recall"] == pytest.approx((1 + 1 / 2) / 2)
    assert got["ndcg"] == pytest.approx((1 + ndcg_user1) / 2)
    assert got["map"] == pytest.approx((1 + (1 / 3) / 2) / 2)
    assert got["hit_rate"] == pytest.approx(1.0)


def test_callable_model_and_batch_size_give_the_same(device):
    model = FixedScores(SCORES)
    a = ranking_metrics(model, TRAIN, TEST, k=3, device=device)
    b = ranking_metrics(model.score_users, TRAIN, TEST, k=3, batch_size=1, device=device)
    assert a == pytest.approx(b)


def test_map_divides_by_relevant_and_ndcg_ideal_is_capped_at_k():
    # One user, three relevant items, k = 1, hit at rank 1: MAP = 1/3 (protocol I1), nDCG = 1 (ideal over 1 rank).
    hits, n_rel = torch.tensor([[1]]), torch.tensor([3])
    assert float(map_at_k(hits, n_rel)[0]) == pytest.approx(1 / 3)
    assert float(ndcg_at_k(hits, n_rel)[0]) == pytest.approx(1.0)
    assert float(precision_at_k(hits, n_rel)[0]) == pytest.approx(1.0)
    assert float(recall_at_k(hits, n_rel)[0]) == pytest.approx(1 / 3)
    assert float(hit_rate_at_k(torch.tensor([[0]]), n_rel)[0]) == 0.0


def test_users_without_test_rows_are_not_averaged(device):
    test = make([0, 0], [1, 3], 3, 5)  # user 1 and 2 have no test rows
    scores = SCORES + [[0, 0, 0, 0, 0]]
    got = ranking_metrics(FixedScores(scores), make([0], [0], 3, 5), test, k=2, device=device)
    assert got["precision"] == pytest.approx(1.0) and got["ndcg"] == pytest.approx(1.0)


def test_a_test_item_also_in_train_is_never_a_hit(device):
    # Item 1 is both in train and test for user 0 (e.g. a duplicated rating): it is excluded, so it cannot be a hit.
    train = make([0], [1], 1, 3)
    test = make([0], [1], 1, 3)
    got = ranking_metrics(FixedScores([[0.0, 5.0, 1.0]]), train, test, k=3, device=device)
    assert got["hit_rate"] == 0.0 and got["recall"] == 0.0


def reference_metrics(scores, train, test, k):
    """A plain per-user implementation of the protocol, written independently of mfkit's vectorised one."""
    out = {"precision": [], "recall": [], "ndcg": [], "map": [], "hit_rate": []}
    seen = {u: set() for u in range(scores.shape[0])}
    for u, i in zip(train.user, train.item):
        seen[int(u)].add(int(i))
    relevant = {}
    for u, i in zip(test.user, test.item):
        relevant.setdefault(int(u), set()).add(int(i))
    for u, rel in relevant.items():
        order = [i for i in np.argsort(-scores[u], kind="stable") if i not in seen[u]][:k]
        hits = [1 if i in rel else 0 for i in order]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        ap = sum(sum(hits[:r + 1]) / (r + 1) for r, h in enumerate(hits) if h) / len(rel)
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(rel))
        out["ndcg"].append(dcg / idcg)
        out["map"].append(ap)
        out["hit_rate"].append(float(sum(hits) > 0))
    return {m: float(np.mean(v)) for m, v in out.items()}


def test_matches_a_per_user_reference_on_random_data(device):
    rng = np.random.default_rng(0)
    n_users, n_items = 37, 23
    cells = rng.random((n_users, n_items))
    train_u, train_i = np.nonzero(cells < 0.2)
    test_u, test_i = np.nonzero((cells >= 0.2) & (cells < 0.35))
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)  # continuous: no ties
    train, test = make(train_u, train_i, n_users, n_items), make(test_u, test_i, n_users, n_items)
    for k in (1, 5, 10):
        got = ranking_metrics(FixedScores(scores), train, test, k=k, batch_size=8, device=device)
        want = reference_metrics(scores, train, test, k)
        for name in want:
            assert got[name] == pytest.approx(want[name], abs=1e-9), (name, k)


def test_per_user_values_average_to_the_means():
    got = ranking_metrics(FixedScores(SCORES), TRAIN, TEST, k=3, device="cpu", per_user=True)
    assert got["n_users"] == 2
    assert got["per_user"]["ndcg"].mean() == pytest.approx(got["ndcg"])


def test_top_k_items_excludes_train(device):
    items, scores = top_k_items(FixedScores(SCORES), TRAIN, [0, 1], k=2, device=device)
    assert items.cpu().tolist() == [[1, 3], [0, 1]]
    assert scores.cpu().tolist() == [[8.0, 7.0], [5.0, 4.0]]


def test_bad_input_raises():
    model = FixedScores(SCORES)
    with pytest.raises(ValueError, match="k must be"):
        ranking_metrics(model, TRAIN, TEST, k=0, device="cpu")
    with pytest.raises(ValueError, match="index space"):
        ranking_metrics(model, make([0], [0], 2, 4), TEST, device="cpu")
    with pytest.raises(ValueError, match="scores"):
        ranking_metrics(lambda u: torch.zeros(len(u), 3), TRAIN, TEST, device="cpu")
    with pytest.raises(TypeError, match="score_users"):
        ranking_metrics(object(), TRAIN, TEST, device="cpu")
    with pytest.raises(ValueError, match="relevant"):
        ndcg_at_k(torch.tensor([[1]]), torch.tensor([0]))


def test_rmse_mae_unchanged():
    assert rmse([1.0, 3.0], [2.0, 3.0]) == pytest.approx(math.sqrt(0.5))
    assert mae([1.0, 3.0], [2.0, 5.0]) == pytest.approx(1.5)


# -- bad input is refused, never scored silently (issue 11) ------------------------------------------------------------
def test_nan_scores_are_refused_by_default_or_ranked_last(device):
    scores = torch.tensor(SCORES, dtype=torch.float32)
    scores[0, 1] = float("nan")  # user 0's best test item
    model = FixedScores(scores)
    with pytest.raises(ValueError, match=r"non-finite score.*user 0, item 1.*nonfinite='last'"):
        ranking_metrics(model, TRAIN, TEST, k=3, device=device)
    with pytest.raises(ValueError, match="non-finite"):
        top_k_items(model, TRAIN, [0], k=2, device=device)
    # "last": item 1 drops behind every finite score, so user 0 ranks [3, 4, 2, 1] at k = 4: hits 1 0 0 1
    got = ranking_metrics(model, TRAIN, TEST, k=4, device=device, per_user=True, nonfinite="last")
    assert got["per_user"].loc[0, "precision"] == pytest.approx(2 / 4)
    items, _ = top_k_items(model, TRAIN, [0], k=2, device=device, nonfinite="last")
    assert items.cpu().tolist() == [[3, 4]]
    with pytest.raises(ValueError, match="nonfinite must be"):
        ranking_metrics(model, TRAIN, TEST, nonfinite="ignore", device=device)


def test_test_set_from_another_data_set_is_refused():
    other = Interactions(TEST.user, TEST.item, None, np.arange(2) + 100, np.arange(5))  # same sizes, other users
    with pytest.raises(ValueError, match=r"different user_ids \(position 0: 0 vs 100\)"):
        ranking_metrics(FixedScores(SCORES), TRAIN, other, k=3, device="cpu")


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 2.5}, "k must be an integer"), ({"k": True}, "k must be an integer"), ({"batch_size": 0}, "batch_size"),
])
def test_ranking_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ranking_metrics(FixedScores(SCORES), TRAIN, TEST, device="cpu", **kwargs)


def test_top_k_items_checks_users():
    with pytest.raises(ValueError, match="user index 7 is outside 0..1"):
        top_k_items(FixedScores(SCORES), TRAIN, [7], k=2, device="cpu")


def test_hits_must_be_zero_one_and_consistent():
    with pytest.raises(ValueError, match="only 0 and 1"):
        precision_at_k(torch.tensor([[2.0, 0.0]]), torch.tensor([1]))
    with pytest.raises(ValueError, match="more hits than relevant"):
        ndcg_at_k(torch.tensor([[1, 1]]), torch.tensor([1]))
    with pytest.raises(ValueError, match="whole counts"):
        recall_at_k(torch.tensor([[1, 0]]), torch.tensor([1.5]))


@pytest.mark.parametrize("fn", [rmse, mae])
def test_rmse_mae_refuse_non_finite(fn):
    with pytest.raises(ValueError, match=r"pred holds 1 non-finite value\(s\).*pred\[1\] = nan"):
        fn([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"target\[0\] = inf"):
        fn([1.0, 2.0], [float("inf"), 2.0], clip=(1, 5))
    with pytest.raises(ValueError, match="clip must be"):
        fn([1.0], [1.0], clip=(5, 1))


def test_non_finite_predictions_while_training_are_a_divergence():
    from mfkit.metrics import NonFiniteError
    from mfkit.training import DivergenceError, epoch_loop

    bad = torch.tensor(SCORES, dtype=torch.float32)
    bad[1, 0] = float("inf")
    with pytest.raises(NonFiniteError):  # a ValueError too
        ranking_metrics(FixedScores(bad), TRAIN, TEST, k=3, device="cpu")
    with pytest.raises(DivergenceError, match="predictions became non-finite at epoch 1"):
        epoch_loop(lambda epoch: 1.0, 2, show_progress=False,
                   evaluate=lambda: ranking_metrics(FixedScores(bad), TRAIN, TEST, k=3, device="cpu")["ndcg"])
