"""How much each chapter's printed figures move when nothing but the machine changes.

The book's notebook checks (``make test``) compare stored outputs only for cells marked ``# NBVAL_CHECK_OUTPUT``;
every other figure is checked by the ``assert`` statements in the cells, with tolerances. This script measures the
spread those tolerances must cover: it executes each chapter under several settings that a reader's machine may
differ in — the torch thread count (another summation order), the CPU kernels torch dispatches to
(``ATEN_CPU_CAPABILITY=default`` turns off the AVX2/AVX-512 kernels) and the seed of ``mfkit.setup`` (every model's
initialisation and sampling) — and reports, cell by cell,

- whether the cell's printed text is identical under every setting (only such cells may be compared exactly), and
- the largest absolute and relative change of the numbers it prints, position by position.

It also reports any cell that raised (an ``assert`` whose tolerance did not cover the setting).

Usage (from the repository root; about 3 minutes of CPU per setting for the whole book)::

    python benchmarks/notebook_spread.py                      # every chapter, every setting
    python benchmarks/notebook_spread.py book/05_explicit_mf.ipynb --settings base threads2

Writes ``benchmarks/results/spread/notebook_spread.json`` (per chapter and cell: identical or not, spreads, errors)
and prints a summary. The figures in CONTRIBUTING.md's "How a chapter is validated" come from this script.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "spread"

SETTINGS = {
    "base": {},
    "threads2": {"MFKIT_THREADS": "2"},
    "isa_default": {"ATEN_CPU_CAPABILITY": "default"},
    "perturbed": {"MFKIT_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"},
    "seed1": {"MFKIT_SEED": "1"},
    "seed2": {"MFKIT_SEED": "2"},
}
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# Under a seed setting, this cell runs right after the chapter's `mfkit.setup(...)`: every model class whose
# `random_state` defaults to 0 gets the new seed as its default, so that models the chapter builds without an
# explicit `random_state` start from another initialisation too (explicit seeds, such as the protocols' split
# seeds, are kept).
RESEED = """import inspect, os
import mfkit.base
def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
for _cls in _subclasses(mfkit.base.Recommender):
    _init = _cls.__dict__.get("__init__")
    _param = inspect.signature(_init).parameters.get("random_state") if _init else None
    if _param is not None and _param.default == 0:
        _names = [p.name for p in inspect.signature(_init).parameters.values()
                  if p.default is not inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
        if _init.__kwdefaults__ and "random_state" in _init.__kwdefaults__:
            _init.__kwdefaults__["random_state"] = int(os.environ["MFKIT_SEED"])
        elif _init.__defaults__:
            _defaults = list(_init.__defaults__)
            _defaults[_names.index("random_state")] = int(os.environ["MFKIT_SEED"])
            _init.__defaults__ = tuple(_defaults)
"""
RESEED_TAG = "notebook-spread-reseed"


def with_reseed_cell(notebook: Path, out: Path) -> Path:
    """A copy of the notebook with the RESEED cell after the cell that calls ``mfkit.setup``."""
    nb = json.loads(notebook.read_text())
    at = next(i for i, c in enumerate(nb["cells"])
              if c["cell_type"] == "code" and "mfkit.setup(" in "".join(c["source"]))
    nb["cells"].insert(at + 1, {"cell_type": "code", "execution_count": None, "id": RESEED_TAG,
                                "metadata": {"tags": [RESEED_TAG]}, "outputs": [], "source": RESEED})
    out.write_text(json.dumps(nb))
    return out


def execute(notebook: Path, setting: str, workdir: Path) -> Path:
    """Run one notebook under one setting with nbconvert (errors kept in the output) and return the copy."""
    env = {k: v for k, v in os.environ.items() if k not in ("MFKIT_SEED", "ATEN_CPU_CAPABILITY")}
    env.update({"MFKIT_PROGRESS": "0", "MFKIT_THREADS": "1", **SETTINGS[setting]})
    out_dir = workdir / setting
    out_dir.mkdir(parents=True, exist_ok=True)
    source = notebook
    if "MFKIT_SEED" in SETTINGS[setting]:  # the copy must sit in book/ so that relative paths still work
        source = with_reseed_cell(notebook, notebook.parent / f".spread-{setting}-{notebook.name}")
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
           "--ExecutePreprocessor.timeout=900", f"--output-dir={out_dir}", f"--output={notebook.stem}", str(source)]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=ROOT)
    finally:
        if source != notebook:
            source.unlink()
    return out_dir / notebook.name


def cell_texts(path: Path) -> list[dict]:
    """Per code cell: its first source line, its printed text, and its error (if it raised)."""
    cells = []
    all_cells = [c for c in json.loads(path.read_text())["cells"]
                 if RESEED_TAG not in c.get("metadata", {}).get("tags", [])]
    for index, cell in enumerate(all_cells):
        if cell["cell_type"] != "code":
            continue
        text, error = [], None
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                text.append("".join(out["text"]))
            elif out["output_type"] in ("execute_result", "display_data"):
                text.append("".join(out.get("data", {}).get("text/plain", "")))
            elif out["output_type"] == "error":
                error = f"{out['ename']}: {out['evalue']}"[:300]
        source = "".join(cell["source"])
        cells.append({"index": index, "first_line": source.splitlines()[0] if source else "",
                      "text": "".join(text), "error": error})
    return cells


def spread(texts: list[str]) -> dict:
    """The largest absolute and relative change of the numbers printed, position by position."""
    numbers = [[float(x) for x in NUMBER.findall(t)] for t in texts]
    if len({len(n) for n in numbers}) != 1:
        return {"comparable": False}
    worst_abs = worst_rel = 0.0
    for values in zip(*numbers):
        lo, hi = min(values), max(values)
        worst_abs = max(worst_abs, hi - lo)
        if max(abs(lo), abs(hi)) > 0:
            worst_rel = max(worst_rel, (hi - lo) / max(abs(lo), abs(hi)))
    return {"comparable": True, "max_abs": worst_abs, "max_rel": worst_rel}


def compare(runs: dict[str, list[dict]]) -> list[dict]:
    settings = list(runs)
    rows = []
    for cells in zip(*runs.values()):
        texts = [c["text"] for c in cells]
        row = {"cell": cells[0]["index"], "first_line": cells[0]["first_line"][:80],
               "identical": len(set(texts)) == 1,
               "errors": {s: c["error"] for s, c in zip(settings, cells) if c["error"]}}
        if not row["identical"]:
            row.update(spread(texts))
            row["differs_in"] = [s for s, t in zip(settings, texts) if t != texts[0]]
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=OUT / "notebook_spread.json",
                        help="the JSON report (chapters already in it are kept unless re-run)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "book").glob("[0-9]*.ipynb"))
    settings = args.settings if args.settings[0] == "base" else ["base", *args.settings]
    report_path = args.out
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for notebook in notebooks:
            notebook = notebook.resolve()
            runs, seconds = {}, {}
            for setting in settings:
                start = time.perf_counter()
                runs[setting] = cell_texts(execute(notebook, setting, Path(tmp)))
                seconds[setting] = round(time.perf_counter() - start, 1)
            rows = compare(runs)
            report[notebook.stem] = {"settings": {s: SETTINGS[s] for s in settings}, "seconds": seconds,
                                     "date": time.strftime("%Y-%m-%d"), "cells": rows}
            varying = [r for r in rows if not r["identical"]]
            failing = [r for r in rows if r["errors"]]
            print(f"{notebook.name}: {len(rows)} code cells, {len(rows) - len(varying)} identical under "
                  f"{len(settings)} settings, {len(varying)} vary, {len(failing)} raised; seconds {seconds}")
            for r in varying:
                rel = f"max rel {r['max_rel']:.2e} abs {r['max_abs']:.3g}" if r.get("comparable") else "layout"
                print(f"   cell {r['cell']:>3} varies ({rel}) in {r['differs_in']}: {r['first_line']}")
            for r in failing:
                print(f"   cell {r['cell']:>3} RAISED {r['errors']}")
            report_path.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
