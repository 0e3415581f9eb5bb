"""Shared fixtures: every routine is tested on the CPU, and on CUDA when a device is present (skipped otherwise)."""
import pytest
import torch

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda,
                                            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Parametrize a test over the CPU and (when present) CUDA."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    monkeypatch.setenv("MFKIT_PROGRESS", "0")
