"""What every benchmark script shares: the machine description and the results file the book's results page reads.

Each script ends with ``save_results(script, records, modules, command)``, which writes
``benchmarks/results/<script>.json``::

    {"script": "explicit_ml100k",                  # the script's file name without .py
     "command": "python benchmarks/explicit_ml100k.py",   # the exact command that produced the file
     "date": "2026-01-31", "machine": {"python", "torch", "cpu_threads", "cuda", "processor", "cores"},
     "modules": ["benchmarks/explicit_ml100k.py", "mfkit/explicit.py", ...],  # the code the figures describe
     "modules_hash": "0123456789abcdef",           # sha256 over those files: tests/test_results_fresh.py recomputes it
     "records": [ ... one dict per (protocol, model) ... ]}

``modules`` are paths relative to the repository root (a folder such as ``mfkit/data`` stands for its .py files);
the script's own file is added automatically, so changing a hyper-parameter in the script also marks its results
as stale. Commit the results file with the code it measures.

Record format (checked by ``mfkit.book.record_problems``; the results page ``book/results.ipynb`` shows these keys).
Every record has

- ``protocol``: ``"E1"``, ``"I1"``, ``"N1"``, ``"N2"`` or ``"G1"`` (see PROTOCOLS.md);
- ``model``: the name the table shows, e.g. ``"Biased MF (ALS), k=64"``;
- ``chapter``: the notebook that builds this model, without ``.ipynb`` (``"05_explicit_mf"``), or ``None`` for a
  baseline the script measures in the same run that no chapter builds (e.g. the seed's regex parser);

and, per protocol (numbers are finite floats: times in wall-clock seconds, metrics as fractions, not percent):

==========  ===========================================================  ======================================
protocol    required                                                     optional
==========  ===========================================================  ======================================
E1          ``rmse``, ``mae``, ``fit_s`` (means over the seeds),          ``rmse_std``, ``device``
            ``seeds`` (list of ints, e.g. ``[0, 1, 2, 3, 4]``)
I1          ``ndcg``, ``precision``, ``recall``, ``map`` (at k=10),         ``device``
            ``fit_s``
N1          ``s_per_million`` (seconds per million ratings parsed),        ``reload_s`` (cached reload of the
            ``peak_rss_gb`` (peak resident memory, GB), ``n_ratings``       same file, seconds)
N2          ``rmse`` (probe), ``total_s`` (parse + train + score)          ``device``
G1          ``s_per_epoch``                                               ``rmse`` (held-out), ``device``
==========  ===========================================================  ======================================

Any record may also carry ``notes`` (a short string shown in the table, e.g. ``"k=64, 15 epochs"``) and other keys
(hyper-parameters, per-seed values): they are stored but not shown. Example::

    save_results("explicit_ml100k",
                 [{"protocol": "E1", "model": "Biased MF (ALS)", "chapter": "05_explicit_mf", "rmse": 0.9101,
                   "mae": 0.7182, "fit_s": 0.41, "seeds": [0, 1, 2, 3, 4], "notes": "k=64, reg 0.05"}],
                 modules=["mfkit/explicit.py", "mfkit/metrics.py", "mfkit/data"],
                 command="python benchmarks/explicit_ml100k.py")
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

from mfkit.book import modules_hash as _modules_hash  # noqa: E402  (needs ROOT on sys.path)
from mfkit.book import payload_problems  # noqa: E402


def modules_hash(modules: list[str]) -> str:
    """sha256 over the source of the named mfkit modules (paths relative to the repository root)."""
    return _modules_hash(modules, ROOT)


def machine() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "processor": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def _plain(obj):
    """JSON fallback for numpy/torch scalars and arrays in records."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable; store numbers, strings, lists or dicts")


def save_results(script: str, records: list[dict], modules: list[str], command: str | None = None,
                 extra: dict | None = None) -> Path:
    """Write the records of one benchmark run to ``benchmarks/results/<script>.json`` (format: module docstring).

    ``command`` defaults to ``python`` followed by the script's own command line. Records that do not follow the
    format are still written (a long run is not lost) but a warning lists what is wrong; the unit tests fail on them.
    """
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{script}.json"
    modules = list(modules)
    own = f"benchmarks/{script}.py"
    if (ROOT / own).is_file() and own not in modules:
        modules.append(own)
    if command is None:
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    payload = {"script": script, "command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "modules": sorted(modules), "modules_hash": modules_hash(modules), "records": records}
    if extra:
        payload.update(extra)
    text = json.dumps(payload, indent=1, default=_plain) + "\n"
    out.write_text(text)
    problems = payload_problems(json.loads(text))
    if problems:
        warnings.warn(f"{out} does not follow the record format of benchmarks/_common.py: " + "; ".join(problems),
                      stacklevel=2)
    return out
