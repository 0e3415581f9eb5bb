"""Time splits (Chapter 9): the global temporal split and the per-user latest hold-out on integer timestamps."""
import numpy as np
import pytest

from mfkit.data import Interactions, global_time_split, leave_k_out


def _data(ts, users=None, items=None):
    n = len(ts)
    users = np.arange(n) % 3 if users is None else np.asarray(users)
    items = np.arange(n) if items is None else np.asarray(items)
    return Interactions.from_raw(users, items, None, np.asarray(ts, dtype=np.int64))


def test_global_time_split_by_hand():
    # users 0, 1, 2; timestamps 0..8; cutoff 6: rows 0-5 train, rows 6-8 test (users 0, 1, 2 all seen before)
    data = _data(np.arange(9))
    train, test = global_time_split(data, cutoff=6)
    assert sorted(train.timestamp) == list(range(6)) and sorted(test.timestamp) == [6, 7, 8]
    assert train.timestamp.max() < test.timestamp.min()  # nothing after the cutoff is trained on
    # train_frac: the cutoff is the timestamp at position round(0.5 * 9) = 4 (halves to even)
    train, test = global_time_split(data, train_frac=0.5)
    assert train.timestamp.max() == 3 and test.timestamp.min() == 4


def test_global_time_split_keeps_only_users_seen_before():
    # user 9 appears only after the cutoff: dropped from test; min_train counts rows before the cutoff
    data = _data([1, 2, 3, 10, 11, 12], users=[0, 0, 1, 0, 1, 9])
    train, test = global_time_split(data, cutoff=5)
    assert set(test.user_ids[test.user]) == {0, 1}
    _, test = global_time_split(data, cutoff=5, min_train=2)
    assert set(test.user_ids[test.user]) == {0}


def test_global_time_split_drop_new_items():
    data = _data([1, 2, 3, 4], users=[0, 1, 0, 1], items=[1, 2, 2, 3])
    _, test = global_time_split(data, cutoff=3)
    assert sorted(test.item_ids[test.item]) == [2, 3]
    _, test = global_time_split(data, cutoff=3, drop_new_items=True)
    assert list(test.item_ids[test.item]) == [2]


def test_global_time_split_large_integer_timestamps():
    # timestamps beyond 2**53 differ by 1: a float comparison would merge them
    big = 2**60
    data = _data([big, big + 1, big + 2, big + 3], users=[0, 0, 0, 0])
    train, test = global_time_split(data, cutoff=big + 2)
    assert sorted(train.timestamp.tolist()) == [big, big + 1]
    assert sorted(test.timestamp.tolist()) == [big + 2, big + 3]


@pytest.mark.parametrize("kwargs, match", [
    ({"cutoff": 0}, "leaves the train part empty"),
    ({"cutoff": 100}, "leaves the test part empty"),
    ({"cutoff": 2.5}, "whole-number timestamp"),
    ({"train_frac": 1.5}, r"train_frac must be a number in \(0, 1\)"),
    ({"train_frac": None}, "give train_frac or cutoff"),
    ({"cutoff": 5, "min_train": 0}, "min_train must be an integer >= 1"),
    ({"cutoff": 8, "min_train": 4}, "test part would be empty"),
])
def test_global_time_split_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        global_time_split(_data(np.arange(9)), **kwargs)


def test_global_time_split_needs_timestamps():
    with pytest.raises(ValueError, match="needs timestamps"):
        global_time_split(Interactions.from_raw([1, 1, 2], [1, 2, 3]))
    with pytest.raises(TypeError, match="Interactions"):
        global_time_split([1, 2, 3])


def test_leave_k_out_by_time_uses_integer_timestamps():
    # 2**60 + 1 and 2**60 round to the same float64: the latest must still be found
    big = 2**60
    data = _data([big + 1, big, big + 3, big + 2], users=[0, 0, 0, 0])
    for seed in range(5):
        train, test = leave_k_out(data, k=1, by_time=True, seed=seed)
        assert test.timestamp.tolist() == [big + 3]
        train, test = leave_k_out(data, k=2, by_time=True, seed=seed)
        assert sorted(test.timestamp.tolist()) == [big + 2, big + 3]


def test_leave_k_out_by_time_breaks_ties_at_random():
    data = _data([5, 5, 5, 5], users=[0, 0, 0, 0])
    held = {int(leave_k_out(data, k=1, by_time=True, seed=s)[1].item[0]) for s in range(20)}
    assert len(held) > 1
