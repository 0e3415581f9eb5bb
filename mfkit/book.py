"""The book's results page: benchmark records, their validation, freshness and the tables the page shows.

Used by: the results page (``book/results.ipynb``), ``benchmarks/_common.py`` (which writes the records) and
``tests/test_results_fresh.py`` (which checks that the committed records still describe the code).

A benchmark script writes ``benchmarks/results/<script>.json`` with :func:`benchmarks._common.save_results`::

    {"script": "explicit_ml100k", "command": "python benchmarks/explicit_ml100k.py", "date": "2026-01-31",
     "machine": {...}, "modules": ["mfkit/explicit.py", ...], "modules_hash": "0123abcd...",
     "records": [{"protocol": "E1", "model": "Biased MF (ALS)", "chapter": "05_explicit_mf",
                  "rmse": 0.9101, "mae": 0.7182, "fit_s": 0.41, "seeds": [0, 1, 2, 3, 4]}, ...]}

Every record has the keys of :data:`COMMON_KEYS` plus the metric keys its protocol lists in :data:`PROTOCOL_SPECS`
(``required``); the ``optional`` keys are shown when present, other keys are kept but not shown.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["COMMON_KEYS", "PROTOCOL_SPECS", "REFERENCES", "EXPECTED_SCRIPTS", "Column", "ProtocolSpec", "modules_hash",
           "record_problems", "payload_problems", "find_repo_root", "load_results", "stale_modules",
           "results_table", "table_markdown", "results_section", "install_cell_source"]


@dataclass(frozen=True)
class Column:
    """One column of a results table: the record key, its header and how its numbers are printed."""

    key: str
    header: str
    kind: str = "metric"  # "metric": 4 decimals; "sig3": 3 significant figures; "count": thousands separators; "text"


@dataclass(frozen=True)
class ProtocolSpec:
    """What a record of one protocol must hold (``required``) and may hold (``optional``), in table order."""

    title: str
    required: tuple[Column, ...]
    optional: tuple[Column, ...] = field(default=())

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.required + self.optional


#: Keys every record has. ``chapter`` is the notebook that builds the model (its file name without ``.ipynb``,
#: e.g. ``"05_explicit_mf"``), or ``None`` for a baseline that the script measures in the same run and no chapter
#: builds (the seed notebook's regex parser, plain autograd + Adam).
COMMON_KEYS = ("protocol", "model", "chapter")

#: Metric keys per protocol (see book/how_we_measure.ipynb). Times are wall-clock seconds; means over the
#: protocol's seeds.
PROTOCOL_SPECS: dict[str, ProtocolSpec] = {
    "E1": ProtocolSpec(
        "explicit ratings, MovieLens 100k (RMSE of clipped predictions, 80/20 random split, seeds 0-4)",
        required=(Column("rmse", "RMSE"), Column("mae", "MAE"), Column("fit_s", "fit (s)", "sig3")),
        optional=(Column("rmse_std", "RMSE std over seeds"), Column("device", "device", "text")),
    ),
    "I1": ProtocolSpec(
        "implicit top-10 ranking, MovieLens 100k (stratified 75/25 split by item, seed 42)",
        required=(Column("ndcg", "nDCG@10"), Column("precision", "P@10"), Column("recall", "R@10"),
                  Column("map", "MAP@10"), Column("fit_s", "fit (s)", "sig3")),
        optional=(Column("device", "device", "text"),),
    ),
    "N1": ProtocolSpec(
        "Netflix Prize format parsing throughput (generated combined_data file)",
        required=(Column("s_per_million", "s per million ratings", "sig3"),
                  Column("peak_rss_gb", "peak memory (GB)", "sig3"),
                  Column("n_ratings", "ratings parsed", "count")),
        optional=(Column("reload_s", "cached reload (s)", "sig3"),),
    ),
    "N2": ProtocolSpec(
        "Netflix probe RMSE (real data, GPU)",
        required=(Column("rmse", "probe RMSE"), Column("total_s", "end to end (s)", "sig3")),
        optional=(Column("device", "device", "text"),),
    ),
    "G1": ProtocolSpec(
        "GPU training throughput, Netflix-shaped synthetic ratings, k = 64",
        required=(Column("s_per_epoch", "s per epoch", "sig3"),),
        optional=(Column("rmse", "held-out RMSE"), Column("device", "device", "text")),
    ),
    "S1": ProtocolSpec(
        "serving (Chapter 10): fold-in of held-out users, top-k retrieval, save/load; each figure next to the "
        "baseline measured in the same run",
        required=(Column("measure", "measure", "text"), Column("value", "mfkit", "sig3")),
        optional=(Column("baseline", "baseline", "sig3"), Column("ratio", "ratio", "sig3"),
                  Column("target", "target", "text"), Column("met", "met", "text")),
    ),
    "N3": ProtocolSpec(
        "the full Netflix path on one machine (Chapter 8): each stage's wall time and peak resident memory, and the "
        "probe RMSE next to the noise floor of the generating model",
        required=(Column("stage", "stage", "text"), Column("time_s", "time (s)", "sig3"),
                  Column("peak_rss_gb", "peak (GB)", "sig3")),
        optional=(Column("rmse", "probe RMSE"), Column("noise_floor", "noise floor"),
                  Column("target", "target", "text"), Column("met", "met", "text"),
                  Column("device", "device", "text")),
    ),
    "P1": ProtocolSpec(
        "the same fit in mfkit and in another library (Spark MLlib, implicit, Surprise): same data, rank, threads "
        "and iterations, timed in one run; ratio = mfkit / other",
        required=(Column("measure", "measure", "text"), Column("value", "mfkit", "sig3"),
                  Column("peer", "other library", "text"), Column("baseline", "other", "sig3"),
                  Column("ratio", "ratio", "sig3")),
        optional=(Column("target", "target", "text"), Column("met", "met", "text"),
                  Column("device", "device", "text")),
    ),
}

_SURPRISE_README = "Surprise README, not measured here"
_MS_RECOMMENDERS = "MS Recommenders README, not measured here"
#: Figures mfkit did not measure, shown under each protocol's table of the results page: published results (each with
#: its ``source``, who published it and that it was not measured here, and ``notes`` on its protocol) and the book's
#: targets, with any of the protocol's metric keys (numbers, or text such as ``"≤ 0.905"``). The values keep the
#: digits their source gave. Peers measured by this project on the same splits are not typed here: they are records
#: (``benchmarks/peers_ml100k.py``, ``benchmarks/speed_vs_peers.py``). Used by: the results page
#: (``book/results.ipynb``).
REFERENCES: dict[str, list[dict]] = {
    "E1": [
        {"model": "SVD (defaults)", "source": _SURPRISE_README, "rmse": 0.934,
         "notes": "5-fold cross-validation of all of ML-100k, not E1's splits"},
        {"model": "SVD++ (defaults)", "source": _SURPRISE_README, "rmse": 0.919,
         "notes": "5-fold cross-validation of all of ML-100k, not E1's splits"},
        {"model": "target: mfkit's best explicit model", "source": "this book", "rmse": "≤ 0.905",
         "fit_s": "≤ 1", "notes": "stretch goal 0.900"},
    ],
    "I1": [
        {"model": model, "source": _MS_RECOMMENDERS, "ndcg": ndcg, "precision": precision,
         "notes": "their own stratified 75/25 split; literature settings, not tuned"}
        for model, ndcg, precision in [("BiVAE", 0.475, 0.412), ("BPR", 0.442, 0.388), ("LightGCN", 0.420, 0.380),
                                       ("NCF", 0.396, 0.347), ("SAR", 0.382, 0.331)]
    ] + [
        {"model": "target: mfkit's weighted MF", "source": "this book", "ndcg": "≥ 0.48", "precision": "≥ 0.42",
         "fit_s": "≤ 0.5"},
    ],
    "N1": [
        {"model": "target", "source": "this book", "s_per_million": "≤ 0.25", "peak_rss_gb": "≤ 2.5",
         "reload_s": "≤ 2", "notes": "memory and reload for the full 100.48M ratings"},
    ],
    "N2": [
        {"model": "Cinematch (Netflix)", "source": "Netflix Prize, not measured here", "rmse": 0.9525,
         "notes": "the Prize's test set"},
        {"model": "target: one mfkit model", "source": "this book", "rmse": "≤ 0.905", "total_s": "≤ 300",
         "notes": "parse, train and score on one GPU"},
    ],
    "G1": [
        {"model": "target", "source": "this book", "s_per_epoch": "≤ 0.06", "notes": "not measured here yet"},
    ],
}


#: The scripts whose output files feed each protocol's table (what to run when a table is empty).
EXPECTED_SCRIPTS: dict[str, tuple[str, ...]] = {
    "E1": ("explicit_ml100k", "neural_ml100k", "peers_ml100k"),
    "I1": ("implicit_ml100k", "neural_ml100k", "ranking_ml100k", "peers_ml100k"),
    "N1": ("netflix_parse",),
    "S1": ("serving",),
    "N3": ("netflix_full",),
    "P1": ("spark_vs_mfkit", "speed_vs_peers"),
}

PAYLOAD_KEYS = ("script", "command", "date", "machine", "modules", "modules_hash", "records")
_CHAPTER = re.compile(r"^\d{2}_[A-Za-z0-9_]+$")


def modules_hash(modules: list[str], root: str | Path) -> str:
    """A 16-hex-digit sha256 over the source of ``modules`` (paths relative to ``root``; a folder means its .py files).

    The benchmark files record it so that a test can tell when a committed table is older than the code it describes.

    Raises
    ------
    FileNotFoundError
        When a listed module does not exist (renamed or removed since the benchmark ran).
    """
    root = Path(root)
    h = hashlib.sha256()
    for m in sorted(modules):
        path = root / m
        if path.is_dir():
            for f in sorted(path.rglob("*.py")):
                h.update(f.relative_to(root).as_posix().encode())
                h.update(f.read_bytes())
        elif path.is_file():
            h.update(m.encode())
            h.update(path.read_bytes())
        else:
            raise FileNotFoundError(f"module {m!r} listed by a benchmark does not exist under {root}")
    return h.hexdigest()[:16]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def record_problems(record) -> list[str]:
    """What is wrong with one benchmark record (an empty list when nothing is): missing keys, bad values."""
    if not isinstance(record, dict):
        return [f"a record must be a dict, got {type(record).__name__}"]
    problems = [f"missing key {k!r}" for k in COMMON_KEYS if k not in record]
    protocol = record.get("protocol")
    if protocol not in PROTOCOL_SPECS:
        return problems + [f"protocol must be one of {sorted(PROTOCOL_SPECS)}, got {protocol!r}"]
    name = record.get("model")
    if "model" in record and (not isinstance(name, str) or not name.strip()):
        problems.append(f"model must be a non-empty string, got {name!r}")
    chapter = record.get("chapter")
    if chapter is not None and (not isinstance(chapter, str) or not _CHAPTER.match(chapter)):
        problems.append(f"chapter must be a notebook name like '05_explicit_mf' or None, got {chapter!r}")
    spec = PROTOCOL_SPECS[protocol]
    for col in spec.required:
        if col.key not in record:
            problems.append(f"{protocol} record {name!r} is missing {col.key!r}")
        elif col.kind != "text" and not _is_number(record[col.key]):
            problems.append(f"{protocol} record {name!r}: {col.key} must be a finite number, got {record[col.key]!r}")
    for col in spec.optional:
        value = record.get(col.key)
        if value is not None and col.kind != "text" and not _is_number(value):
            problems.append(f"{protocol} record {name!r}: {col.key} must be a finite number or absent, got {value!r}")
    if protocol == "E1":
        seeds = record.get("seeds")
        if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
            problems.append(f"E1 record {name!r} needs 'seeds', the list of split seeds averaged over, got {seeds!r}")
    return problems


def payload_problems(payload) -> list[str]:
    """What is wrong with the content of one ``benchmarks/results/<script>.json`` file (empty when nothing is)."""
    if not isinstance(payload, dict):
        return [f"a results file must hold a JSON object, got {type(payload).__name__}"]
    problems = [f"missing top-level key {k!r}" for k in PAYLOAD_KEYS if k not in payload]
    records = payload.get("records", [])
    if not isinstance(records, list) or not records:
        problems.append("'records' must be a non-empty list")
        return problems
    for i, record in enumerate(records):
        problems += [f"records[{i}]: {p}" for p in record_problems(record)]
    return problems


def find_repo_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``benchmarks/`` and
    ``mfkit/``; ``None`` outside a checkout of the book (e.g. a notebook opened alone in Colab)."""
    here = Path.cwd() if start is None else Path(start)
    for folder in [here.resolve(), *here.resolve().parents]:
        if (folder / "benchmarks").is_dir() and (folder / "mfkit").is_dir():
            return folder
    return None


def load_results(results_dir: str | Path) -> dict[str, dict]:
    """Every ``<script>.json`` under ``results_dir`` as ``{script: payload}`` (empty when the folder is missing)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}


def stale_modules(payload: dict, root: str | Path) -> bool:
    """True when the code a results file describes changed since it was written (its ``modules_hash`` no longer
    matches, or a listed module is gone)."""
    try:
        return modules_hash(payload["modules"], root) != payload["modules_hash"]
    except FileNotFoundError:
        return True


def _format(value, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # reference rows may give text such as "≤ 0.905" or "≈ 0.906"
        return value
    if kind == "metric":
        return f"{value:.4f}"
    if kind == "reference":  # 3 decimals, or the 4 the source gave: 0.42 -> 0.420, 0.9355 stays
        decimals = len(repr(float(value)).split(".")[1]) if "e" not in repr(float(value)) else 4
        return f"{value:.{min(4, max(3, decimals))}f}"
    if kind == "text":
        return f"{value:g}" if isinstance(value, float) else str(value)
    if kind == "count":
        return f"{int(value):,}"
    if kind == "sig3":
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


#: Scripts that measure other libraries on the project's own splits: their records without a chapter are peers.
PEER_SCRIPTS = ("peers_ml100k",)


def _chapter_cell(chapter: str | None, book_dir: Path | None, script: str | None = None) -> str:
    if chapter is None:
        return "other library, measured here" if script in PEER_SCRIPTS else "baseline, same run"
    label = f"Chapter {int(chapter[:2])}"
    if book_dir is not None and (Path(book_dir) / f"{chapter}.ipynb").exists():
        return f"mfkit, [{label}]({chapter}.ipynb)"
    return f"mfkit, {label}"


def results_table(protocol: str, payloads: dict[str, dict], references: list[dict] | None = None,
                  book_dir: str | Path | None = None):
    """The rows of one protocol's table as a DataFrame of display strings: mfkit's measured records first (in
    chapter order), then the reference and published figures.

    Parameters
    ----------
    protocol : str
        A key of :data:`PROTOCOL_SPECS`.
    payloads : dict
        ``{script: payload}`` from :func:`load_results`.
    references : list of dict, optional
        Figures not measured by mfkit: dicts with ``model``, ``source`` (who measured or published it, and how),
        optionally ``notes``, and any of the protocol's metric keys (numbers, or text such as ``"≤ 0.905"``).
    book_dir : path, optional
        The folder of the chapters: a record's chapter becomes a link when its notebook is there.
    """
    if protocol not in PROTOCOL_SPECS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOL_SPECS)}, got {protocol!r}")
    spec = PROTOCOL_SPECS[protocol]
    rows = []
    measured = [(r.get("chapter") or "99", i, r, script) for script, payload in payloads.items()
                for i, r in enumerate(payload.get("records", [])) if r.get("protocol") == protocol]
    for _, _, record, script in sorted(measured, key=lambda t: (t[0], t[1])):
        notes = record.get("notes", "")
        if protocol == "E1" and record.get("seeds"):
            seeds = record["seeds"]
            notes = "; ".join(x for x in [f"mean over seeds {', '.join(map(str, seeds))}", notes] if x)
        rows.append({"model": record["model"], "source": _chapter_cell(record.get("chapter"), book_dir, script),
                     **{c.key: _format(record.get(c.key), c.kind) for c in spec.columns}, "notes": notes})
    for ref in references or []:
        # Reference figures keep the digits their source gave (0.934 is not 0.9340).
        rows.append({"model": ref["model"], "source": ref["source"],
                     **{c.key: _format(ref.get(c.key), "reference" if c.kind == "metric" else c.kind)
                        for c in spec.columns}, "notes": ref.get("notes", "")})
    headers = {"model": "model", "source": "from", **{c.key: c.header for c in spec.columns}, "notes": "notes"}
    table = pd.DataFrame(rows, columns=list(headers))
    # An optional column nobody filled would only add an empty column to the page.
    empty = [c.key for c in spec.optional if not table[c.key].astype(bool).any()] if len(table) else []
    return table.drop(columns=empty).rename(columns=headers)


def table_markdown(table) -> str:
    """A pipe table (what MyST and Jupyter both render) from a DataFrame of strings; ``|`` in cells is escaped."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    def is_number(x) -> bool:  # "0.9", "1,682", "≤ 0.905", "0.487 ± 0.008": right-aligned like numbers
        text = str(x).strip().lstrip("≤≥<>≈~ ").split(" ")[0].replace(",", "")
        try:
            float(text)
        except ValueError:
            return False
        return True

    # a column is right-aligned when every non-empty cell is a number (text columns stay left-aligned)
    numeric = [not c.startswith(("model", "from", "notes", "device"))
               and all(is_number(x) for x in table[c] if str(x).strip()) for c in table.columns]
    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _machine_text(machine: dict) -> str:
    gpu = machine.get("cuda") or "no GPU"
    return (f"{machine.get('processor', '?')}, {machine.get('cores', '?')} cores "
            f"({machine.get('cpu_threads', '?')} torch threads), {gpu}; Python {machine.get('python', '?')}, "
            f"torch {machine.get('torch', '?')}")


def results_section(protocol: str, payloads: dict[str, dict], references: list[dict] | None = None,
                    root: str | Path | None = None, book_dir: str | Path | None = None) -> str:
    """Markdown for one protocol: the table, then where each measured figure comes from (command, date, machine),
    a warning for results older than the code, and the command to run for each expected script not yet measured.

    ``root`` is the repository root (for the freshness check; skipped when ``None``).
    """
    spec = PROTOCOL_SPECS[protocol]
    sources = {s: p for s, p in payloads.items() if any(r.get("protocol") == protocol for r in p.get("records", []))}
    lines = []
    for script, payload in sources.items():
        line = (f"- `{script}`: `{payload.get('command', '?')}` on {payload.get('date', '?')}, "
                f"{_machine_text(payload.get('machine', {}))}.")
        if root is not None and stale_modules(payload, root):
            line += (f" **Older than the code it measures** (the modules it lists changed since): re-run "
                     f"`python benchmarks/{script}.py`.")
        lines.append(line)
    for script in EXPECTED_SCRIPTS.get(protocol, ()):
        if script not in payloads:
            lines.append(f"- `{script}`: not yet measured: run `python benchmarks/{script}.py` from the repository "
                         "root.")
    text = table_markdown(results_table(protocol, sources, references, book_dir))
    if lines:
        text += f"\n\nProtocol {protocol}, {spec.title}. Where the mfkit rows come from:\n\n" + "\n".join(lines)
    return text


def install_cell_source(repository_url: str) -> str:
    """The first cell of every chapter: installs mfkit from the book's repository when it is missing (Colab, a bare
    Jupyter), and does nothing, silently, where mfkit is installed (the book's .venv, CI, nbval)."""
    return ("# Colab, Binder: install mfkit when it is missing (a no-op where it is installed).\n"
            "try:\n"
            "    import mfkit\n"
            "except ImportError:\n"
            f'    %pip install -q "mfkit @ git+{repository_url}"\n'
            "    import mfkit")
