"""The committed benchmark results (benchmarks/results/*.json) still describe the code and hold what the results
page shows.

Each file records a hash of the source files it measures (``modules``); when any of them changes, the figures on the
book's results page may no longer be true, and the test says which benchmark to re-run.
"""
import json
from pathlib import Path

import pytest

from mfkit import book

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FILES = sorted(RESULTS.glob("*.json"))
EXPECTED = sorted({s for scripts in book.EXPECTED_SCRIPTS.values() for s in scripts})


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        pytest.fail(f"{path.relative_to(ROOT)} is not valid JSON ({err}): re-run `python benchmarks/{path.stem}.py`")


@pytest.mark.parametrize("script", EXPECTED)
def test_results_page_has_a_results_file_for(script):
    path = RESULTS / f"{script}.json"
    assert path.exists(), (f"the results page needs {path.relative_to(ROOT)}: run `python benchmarks/{script}.py` "
                           "from the repository root and commit the file it writes")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_results_are_not_older_than_the_code(path):
    payload = _load(path)
    command = payload.get("command") or f"python benchmarks/{path.stem}.py"
    rerun = f"re-run `{command}` and commit {path.relative_to(ROOT)}"
    for key in ("modules", "modules_hash"):
        assert key in payload, f"{path.relative_to(ROOT)} has no {key!r}: {rerun}"
    missing = [m for m in payload["modules"] if not (ROOT / m).exists()]
    assert not missing, f"{path.relative_to(ROOT)} measures {missing}, which no longer exist: {rerun}"
    assert book.modules_hash(payload["modules"], ROOT) == payload["modules_hash"], (
        f"{path.relative_to(ROOT)} is older than the code it describes (one of {payload['modules']} changed since "
        f"it was written on {payload.get('date', '?')}): {rerun}")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_results_have_what_the_page_shows(path):
    payload = _load(path)
    problems = book.payload_problems(payload)
    assert not problems, (f"{path.relative_to(ROOT)} does not follow the record format of benchmarks/_common.py:\n  "
                          + "\n  ".join(problems))
    assert payload["script"] == path.stem, f"{path.name} says it was written by {payload['script']!r}"
    assert "--quick" not in payload["command"], (f"{path.name} comes from a smoke run ({payload['command']}): run "
                                                 f"`python benchmarks/{path.stem}.py` without --quick")
    assert (ROOT / "benchmarks" / f"{path.stem}.py").exists(), f"{path.name} has no script benchmarks/{path.stem}.py"
