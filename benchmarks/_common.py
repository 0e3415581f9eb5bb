"""What every benchmark script shares: the machine description and the results file the book's results page reads.

Each script writes ``benchmarks/results/<script>.json``: its printed records plus a hash of the mfkit modules it
measures, so a test can tell when a committed table is older than the code it describes.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))


def modules_hash(modules: list[str]) -> str:
    """sha256 over the source of the named mfkit modules (paths relative to the repository root)."""
    h = hashlib.sha256()
    for m in sorted(modules):
        h.update(m.encode())
        h.update((ROOT / m).read_bytes())
    return h.hexdigest()[:16]


def machine() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "processor": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def save_results(script: str, records: list[dict], modules: list[str], command: str, extra: dict | None = None) -> Path:
    """Write the records of one benchmark run to ``benchmarks/results/<script>.json``."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{script}.json"
    payload = {"script": script, "command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "modules": sorted(modules), "modules_hash": modules_hash(modules), "records": records}
    if extra:
        payload.update(extra)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    return out
