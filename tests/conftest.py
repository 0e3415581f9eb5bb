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


@pytest.fixture(scope="session")
def spark_cluster():
    """A standalone Spark cluster on 127.0.0.1 (a master and two workers, one core and 1 GB each) for the session.

    Started once, when the first test asks for it (pyspark and Java 17+ needed: the test is skipped without pyspark),
    and stopped at the end of the run, also when tests fail: every process it started (master, workers, the
    executors they launched) is ended by process group, and the teardown checks that none is left. With
    ``MFKIT_SPARK_MASTER=spark://...`` set (``make spark-cluster``), that cluster is used instead and left running.
    """
    pytest.importorskip("pyspark", reason='Spark tests need pyspark: pip install "mfkit[spark]"')
    import os

    from mfkit.spark_cluster import StandaloneCluster, pid_alive

    external = os.environ.get("MFKIT_SPARK_MASTER")
    if external:
        yield type("ExternalCluster", (), {"master_url": external, "external": True})()
        return
    cluster = StandaloneCluster(workers=2, cores=1, memory="1g").start()
    cluster.external = False
    try:
        yield cluster
    finally:
        started = cluster.processes()
        cluster.stop()
        left = [pid for pid in started if pid_alive(pid)]
        assert not left, f"Spark cluster processes left running: {left}"
