"""mfkit.scale and the streamed full-shape generator (Chapter 8); benchmarks/netflix_full.py at a tiny scale."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfkit.data import load_netflix, probe_split, read_probe, read_qualifying
from mfkit.data.interactions import Interactions
from mfkit.data.synthetic import (NETFLIX_SHAPE, NetflixModel, generate_netflix_full, netflix_full_truth,
                                  netflix_sample_truth)
from mfkit.explicit import BiasedMF
from mfkit.scale import (StageTimer, dense_matrix_bytes, expected_rating, noise_floor_rmse, peak_rss_bytes,
                         planted_rmse,
                         top_k_all_users, train_without_probe, user_slice)

ROOT = Path(__file__).resolve().parent.parent
SCALE = 0.002  # 960 users, about 201k ratings, all 17,770 movies


@pytest.fixture(scope="module")
def full_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("netflix-full")
    model = generate_netflix_full(folder, scale=SCALE)
    return folder, model


@pytest.fixture(scope="module")
def loaded(full_folder):
    folder, _ = full_folder
    data = load_netflix(folder, cache=False, show_progress=False)
    probe = read_probe(folder / "probe.txt")
    return data, probe


# --- generator --------------------------------------------------------------------------------------------------
def test_full_generator_shape_and_format(full_folder, loaded):
    folder, model = full_folder
    data, probe = loaded
    assert len(data) == round(NETFLIX_SHAPE["n_ratings"] * SCALE)
    assert data.n_users == round(NETFLIX_SHAPE["n_users"] * SCALE) == len(model.user_ids)
    assert data.n_items == NETFLIX_SHAPE["n_movies"]  # every movie rated at least once
    assert sorted(p.name for p in folder.iterdir()) == [
        "combined_data_1.txt", "combined_data_2.txt", "combined_data_3.txt", "combined_data_4.txt",
        "mfkit_truth.npz", "movie_titles.csv", "probe.txt", "qualifying.txt"]
    assert data.duplicates() == 0
    assert set(np.unique(data.rating)) <= {1, 2, 3, 4, 5}
    counts = data.user_counts()
    assert counts.min() >= 1 and np.median(counts) < counts.mean()  # a long tail
    assert 0.01 < len(probe) / len(data) < 0.016
    qual = read_qualifying(folder / "qualifying.txt")
    assert len(qual) > len(probe)
    rated = set(zip(data.user_ids[data.user].tolist(), data.item_ids[data.item].tolist()))
    assert not rated & set(zip(qual["user"].tolist(), qual["movie"].tolist()))


def test_full_generator_is_deterministic_and_probe_is_latest(tmp_path, full_folder, loaded):
    folder, model = full_folder
    generate_netflix_full(tmp_path, scale=SCALE)
    for name in ["combined_data_2.txt", "probe.txt", "qualifying.txt", "movie_titles.csv"]:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes()
    data, probe = loaded
    train, test = probe_split(data, probe["user"].to_numpy(), probe["movie"].to_numpy())
    # probe pairs come from each user's latest days: none is older than that user's latest training day
    last_train = np.zeros(data.n_users, dtype=np.int64)
    np.maximum.at(last_train, train.user, train.timestamp.astype(np.int64))
    first_probe = np.full(data.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_probe, test.user, test.timestamp.astype(np.int64))
    users = np.unique(test.user)
    assert np.mean(first_probe[users] >= last_train[users] - 400) > 0.9
    assert np.bincount(train.user, minlength=data.n_users).min() >= 1  # every user keeps a training rating


def test_full_truth_round_trip(full_folder):
    folder, model = full_folder
    loaded = netflix_full_truth(folder)
    assert isinstance(loaded, NetflixModel)
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    assert loaded.noise_std == model.noise_std
    with pytest.raises(FileNotFoundError, match="planted model"):
        netflix_full_truth(folder.parent)


def test_full_generator_rejects_bad_scale(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        generate_netflix_full(tmp_path, scale=0)
    with pytest.raises(ValueError, match="too small"):
        generate_netflix_full(tmp_path, scale=1e-6)


# --- noise floor --------------------------------------------------------------------------------------------------
def test_expected_rating_matches_simulation():
    truth = netflix_sample_truth()
    rng = np.random.default_rng(0)
    m = np.array([0.2, 1.7, 3.0, 4.4, 6.0])
    draws = np.clip(np.rint(m[:, None] + rng.normal(0, truth.noise_std, (5, 200_000))), 1, 5)
    model = NetflixModel(np.arange(5), np.arange(1), 0.0, m, np.zeros(1), np.zeros((5, 1)), np.zeros((1, 1)),
                         truth.noise_std)
    exact = expected_rating(model, np.arange(5), np.zeros(5, dtype=int))
    np.testing.assert_allclose(exact, draws.mean(1), atol=0.01)
    floor = noise_floor_rmse(model, np.arange(5), np.zeros(5, dtype=int))
    assert floor == pytest.approx(np.sqrt(draws.var(1).mean()), abs=0.01)


def test_noise_floor_on_sample_probe():
    truth = netflix_sample_truth()
    r = truth.ratings
    users, movies = truth.probe["user"].to_numpy(), truth.probe["movie"].to_numpy()
    key = {(u, m): k for k, (u, m) in enumerate(zip(r.user.tolist(), r.movie.tolist()))}
    ratings = r.rating[[key[(u, m)] for u, m in zip(users.tolist(), movies.tolist())]]
    realised = noise_floor_rmse(truth, users, movies, ratings)
    expected = noise_floor_rmse(truth, users, movies)
    assert 0.3 < expected < truth.noise_std + 0.1
    assert realised == pytest.approx(expected, rel=0.1)
    with pytest.raises(ValueError, match="one length"):
        noise_floor_rmse(truth, users, movies[:-1])


def test_planted_rmse_by_hand_and_above_the_best_possible():
    m = np.array([0.2, 1.7, 3.0, 4.4, 6.0])
    model = NetflixModel(np.arange(5), np.arange(1), 0.0, m, np.zeros(1), np.zeros((5, 1)), np.zeros((1, 1)), 0.9)
    users, movies = np.arange(5), np.zeros(5, dtype=int)
    ratings = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    clipped = np.array([1.0, 1.7, 3.0, 4.4, 5.0])  # the planted values, clipped to [1, 5]
    assert planted_rmse(model, users, movies, ratings) == pytest.approx(
        np.sqrt(np.mean((clipped - ratings) ** 2)), rel=1e-12)
    assert planted_rmse(model, users, movies, ratings, clip=None) == pytest.approx(
        np.sqrt(np.mean((m - ratings) ** 2)), rel=1e-12)
    # on many draws the planted model's error exceeds the best possible predictor's (E[r], the lower floor)
    rng = np.random.default_rng(0)
    u = np.repeat(users, 20_000)
    draws = np.clip(np.rint(m[u] + rng.normal(0, 0.9, len(u))), 1, 5)
    assert planted_rmse(model, u, np.zeros_like(u), draws) > noise_floor_rmse(model, u, np.zeros_like(u), draws)
    with pytest.raises(ValueError, match="one length"):
        planted_rmse(model, users, movies, ratings[:-1])


# --- stage timer ----------------------------------------------------------------------------------------------------
def test_stage_timer_records_time_and_peak():
    timer = StageTimer()
    with timer.stage("allocate"):
        block = np.ones(40_000_000, dtype=np.uint8)  # 40 MB touched
        del block
    with timer.stage("nothing"):
        pass
    table = timer.table()
    assert list(table["stage"]) == ["allocate", "nothing"]
    assert (table["seconds"] >= 0).all()
    if table["peak_is_stage"].all():
        assert table["peak_rss_gb"][0] - table["peak_rss_gb"][1] > 0.03
    assert timer.peak_rss_gb() == table["peak_rss_gb"].max() > 0
    assert peak_rss_bytes() > 0
    assert timer.total_seconds(exclude=["nothing"]) == table["seconds"][0]
    with pytest.raises(ValueError, match="already"):
        with timer.stage("allocate"):
            pass


def test_dense_matrix_bytes():
    assert dense_matrix_bytes(480_189, 17_770, 8) == 480_189 * 17_770 * 8


# --- split, slice, top-k --------------------------------------------------------------------------------------------
def test_train_without_probe_matches_probe_split(loaded):
    data, probe = loaded
    pu, pm = probe["user"].to_numpy(), probe["movie"].to_numpy()
    a_train, a_test = probe_split(data, pu, pm)
    b_train, b_test = train_without_probe(data, pu, pm, block=10_000)
    for a, b in [(a_train, b_train), (a_test, b_test)]:
        np.testing.assert_array_equal(a.user, b.user)
        np.testing.assert_array_equal(a.item, b.item)
        np.testing.assert_array_equal(a.rating, b.rating)
    assert b_train.timestamp is None
    with pytest.raises(ValueError, match="more than once"):
        train_without_probe(data, np.r_[pu, pu[:1]], np.r_[pm, pm[:1]])
    with pytest.raises(ValueError, match="not in the ratings"):
        train_without_probe(a_train, pu, pm)


def test_user_slice(loaded):
    data, probe = loaded
    sliced, sprobe = user_slice(data, 0.1, seed=1, probe=probe)
    assert 0.05 * data.n_users < sliced.n_users < 0.15 * data.n_users
    assert set(sprobe["user"]) <= set(sliced.user_ids.tolist())
    assert sliced.user.max() == sliced.n_users - 1 and sliced.item.max() == sliced.n_items - 1
    raw = set(zip(sliced.user_ids[sliced.user].tolist(), sliced.item_ids[sliced.item].tolist()))
    keep = np.isin(data.user_ids[data.user], sliced.user_ids)
    assert raw == set(zip(data.user_ids[data.user[keep]].tolist(), data.item_ids[data.item[keep]].tolist()))
    with pytest.raises(ValueError, match="frac"):
        user_slice(data, 0)


def test_top_k_all_users_matches_brute_force():
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 30
    u = rng.integers(0, n_users, 400)
    i = rng.integers(0, n_items, 400)
    data = Interactions.from_raw(u, i, rng.integers(1, 6, 400).astype(np.float32), duplicates="first")
    model = BiasedMF(n_factors=4, n_epochs=3, method="als", device="cpu").fit(data)
    top = top_k_all_users(model, k=5, exclude=data, batch_size=7, device="cpu")
    scores = model.score_users(np.arange(data.n_users)).numpy().copy()
    scores[data.user, data.item] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(np.sort(top, 1), np.sort(expected, 1))
    plain = top_k_all_users(model, k=5, device="cpu")
    assert plain.shape == (data.n_users, 5)
    with pytest.raises(ValueError, match="k must"):
        top_k_all_users(model, k=0)


def test_netflix_full_benchmark_tiny(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "netflix_full.py"), "--scale", "0.001",
                          "--threads", "1", "--cache-dir", str(tmp_path), "--no-save", "--biased-sweeps", "2",
                          "--implicit-sweeps", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for stage in ["parse", "split", "fit_biased", "score_probe", "fit_implicit", "top10"]:
        assert stage in run.stdout
    assert "noise floor" in run.stdout
