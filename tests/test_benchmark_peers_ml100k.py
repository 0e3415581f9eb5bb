"""Smoke run of benchmarks/peers_ml100k.py (Surprise, implicit's ALS and EASE on the project's own E1/I1 splits).

``--quick`` runs one split seed of each protocol with small grids and writes no record; the figures themselves come
from the full run (benchmarks/results/peers_ml100k.json), which the chapters read.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_peers_ml100k_quick():
    pytest.importorskip("implicit", reason='the peers are in the extra: pip install "mfkit[bench]"')
    pytest.importorskip("surprise", reason='the peers are in the extra: pip install "mfkit[bench]"')
    run = subprocess.run([sys.executable, "benchmarks/peers_ml100k.py", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "MFKIT_PROGRESS": "0"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    rmse = [float(x) for x in re.findall(r"^E1 model=.* seed=0 rmse=([0-9.]+)", run.stdout, re.M)]
    ndcg = [float(x) for x in re.findall(r"^I1 model=.* ndcg@10=([0-9.]+)", run.stdout, re.M)]
    assert len(rmse) == 2 and all(0.85 < r < 1.0 for r in rmse), run.stdout
    assert len(ndcg) == 2 and all(0.3 < n < 0.6 for n in ndcg), run.stdout
