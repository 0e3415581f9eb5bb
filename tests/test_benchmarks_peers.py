"""Smoke runs of the two benchmarks that compare mfkit with other libraries (protocol P1), at a tiny size.

They check that the scripts run end to end and print their ratio lines; the figures themselves come from full runs
(benchmarks/results/speed_vs_peers.json, spark_vs_mfkit.json) and are never asserted here (no timing in tests).
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, timeout=600):
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env={**__import__("os").environ, "MFKIT_PROGRESS": "0"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run.stdout


def test_speed_vs_peers_quick():
    pytest.importorskip("implicit", reason='the peers are in the extra: pip install "mfkit[bench]"')
    pytest.importorskip("surprise", reason='the peers are in the extra: pip install "mfkit[bench]"')
    out = _run(["benchmarks/speed_vs_peers.py", "--quick", "--factors", "8", "--sweeps", "2",
                "--fracs", "0.002"])
    ratios = [float(x) for x in re.findall(r"ratio[= ]+([0-9.]+)", out)]
    assert ratios and all(r > 0 for r in ratios), out
    assert "surprise" in out.lower() and "implicit" in out.lower(), out


def test_spark_vs_mfkit_tiny():
    pytest.importorskip("pyspark", reason='Spark is in the extra: pip install "mfkit[spark]"')
    out = _run(["benchmarks/spark_vs_mfkit.py", "--sizes", "0.002", "--factors", "4", "--iters", "2",
                "--driver-memory", "1g", "--worker-memory", "1g", "--no-save"])
    lines = [line for line in out.splitlines() if line.startswith("SPARK size=")]
    assert len(lines) == 4, out  # one line per mfkit solver (cholesky, cg) and Spark engine (local, cluster)
    assert "spark_cluster_fit_s=" in out and "shuffle read MB per executor" in out, out
    for line in lines:
        loss_ratio = float(re.search(r"loss mfkit/spark=([0-9.]+)", line).group(1))
        assert 0.9 < loss_ratio < 1.1, line  # the same objective, nearly the same value after 2 sweeps
