"""mfkit.utils: the one thread policy (setup, default_threads, cpu_threads)."""
import pytest
import torch

from mfkit.utils import cpu_threads, default_threads, setup


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def test_cpu_threads_sets_and_restores_the_count(two_threads):
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_cpu_threads_restores_the_count_after_an_error(two_threads):
    with pytest.raises(KeyError):
        with cpu_threads(1, "cpu"):
            raise KeyError("inside the block")
    assert torch.get_num_threads() == 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_threads_leaves_a_cuda_block_alone(two_threads):
    with cpu_threads(1, torch.device("cuda")):
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_cpu_threads_rejects_a_bad_count(bad):
    with pytest.raises(ValueError, match="positive integer"):
        with cpu_threads(bad):
            pass


def test_setup_reads_mfkit_threads(monkeypatch, two_threads):
    monkeypatch.setenv("MFKIT_THREADS", "1")
    assert default_threads() == 1
    setup(seed=0, device="cpu")
    assert torch.get_num_threads() == 1
    setup(seed=0, device="cpu", threads=2)
    assert torch.get_num_threads() == 2


def test_default_threads_names_a_bad_environment_value(monkeypatch):
    monkeypatch.setenv("MFKIT_THREADS", "two")
    with pytest.raises(ValueError, match="MFKIT_THREADS.*'two'"):
        default_threads()
