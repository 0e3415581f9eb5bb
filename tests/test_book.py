"""mfkit.book: the record format, freshness hash and tables of the results page; benchmarks/_common.save_results."""
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest

from mfkit import book

ROOT = Path(__file__).resolve().parent.parent


def e1(**kw):
    record = {"protocol": "E1", "model": "Biased MF", "chapter": "05_explicit_mf", "rmse": 0.91234567, "mae": 0.72,
              "fit_s": 0.4123, "seeds": [0, 1, 2, 3, 4]}
    record.update(kw)
    return record


def payload(records, modules=("mfkit/book.py",), script="explicit_ml100k", root=ROOT):
    return {"script": script, "command": f"python benchmarks/{script}.py", "date": "2026-01-01",
            "machine": {"python": "3.11", "torch": "2.13.0", "cpu_threads": 2, "cuda": None, "processor": "x86_64",
                        "cores": 2},
            "modules": list(modules), "modules_hash": book.modules_hash(list(modules), root), "records": records}


# --- modules_hash ------------------------------------------------------------------------------------------------

def test_modules_hash_of_files_is_sha256_of_names_and_contents(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    expected = hashlib.sha256(b"a.py" + b"x = 1\n" + b"b.py" + b"y = 2\n").hexdigest()[:16]
    assert book.modules_hash(["b.py", "a.py"], tmp_path) == expected  # order of the list does not matter


def test_modules_hash_changes_with_any_listed_source(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("x = 1\n")
    (pkg / "notes.txt").write_text("not code")
    before = book.modules_hash(["pkg"], tmp_path)
    (pkg / "notes.txt").write_text("changed, but not code")
    assert book.modules_hash(["pkg"], tmp_path) == before
    (pkg / "m.py").write_text("x = 2\n")
    assert book.modules_hash(["pkg"], tmp_path) != before


def test_modules_hash_names_a_missing_module(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.py"):
        book.modules_hash(["gone.py"], tmp_path)


# --- record format -----------------------------------------------------------------------------------------------

def test_a_complete_record_has_no_problems():
    assert book.record_problems(e1()) == []
    assert book.record_problems(e1(chapter=None, rmse_std=0.002, notes="k=64")) == []
    i1 = {"protocol": "I1", "model": "WMF", "chapter": "02_weighted_mf", "ndcg": 0.48, "precision": 0.42,
          "recall": 0.25, "map": 0.15, "fit_s": 0.3}
    assert book.record_problems(i1) == []


@pytest.mark.parametrize("change, fragment", [
    ({"rmse": float("nan")}, "rmse must be a finite number"),
    ({"mae": "0.7"}, "mae must be a finite number"),
    ({"fit_s": True}, "fit_s must be a finite number"),
    ({"chapter": "Chapter 5"}, "chapter must be a notebook name"),
    ({"protocol": "E9"}, "protocol must be one of"),
    ({"seeds": []}, "needs 'seeds'"),
    ({"rmse_std": math.inf}, "rmse_std must be a finite number or absent"),
])
def test_record_problems_name_the_bad_field(change, fragment):
    problems = book.record_problems(e1(**change))
    assert any(fragment in p for p in problems), problems


def test_record_problems_name_missing_keys():
    record = e1()
    del record["chapter"], record["fit_s"]
    problems = book.record_problems(record)
    assert "missing key 'chapter'" in problems
    assert any("missing 'fit_s'" in p for p in problems)


def test_payload_problems_check_top_level_keys_and_every_record():
    good = payload([e1()])
    assert book.payload_problems(good) == []
    bad = dict(good, records=[e1(), e1(rmse=None)])
    del bad["command"]
    problems = book.payload_problems(bad)
    assert "missing top-level key 'command'" in problems
    assert any(p.startswith("records[1]:") and "rmse" in p for p in problems)
    assert book.payload_problems(dict(good, records=[])) == ["'records' must be a non-empty list"]


# --- tables ------------------------------------------------------------------------------------------------------

def test_results_table_lists_mfkit_rows_by_chapter_then_references(tmp_path):
    (tmp_path / "05_explicit_mf.ipynb").write_text("{}")
    runs = {"neural": payload([e1(model="NeuMF", chapter="07_neural_cf", notes="k=32")]),
            "explicit": payload([e1(), {"protocol": "I1", "model": "other protocol", "chapter": None}])}
    refs = [{"model": "Surprise SVD", "source": "Surprise, measured here", "rmse": 0.9355, "fit_s": "0.7"}]
    table = book.results_table("E1", runs, refs, book_dir=tmp_path)
    assert list(table["model"]) == ["Biased MF", "NeuMF", "Surprise SVD"]
    assert list(table["from"]) == ["mfkit, [Chapter 5](05_explicit_mf.ipynb)", "mfkit, Chapter 7",
                                   "Surprise, measured here"]
    assert list(table["RMSE"]) == ["0.9123", "0.9123", "0.9355"]  # measured: 4 decimals
    assert list(table["fit (s)"]) == ["0.412", "0.412", "0.7"]      # 3 significant figures; text kept as is
    assert table["notes"].iloc[1] == "mean over seeds 0, 1, 2, 3, 4; k=32"
    assert "RMSE std over seeds" not in table.columns  # optional and empty everywhere


def test_reference_figures_keep_the_digits_of_their_source():
    values = [("a", 0.42), ("b", 0.9355), ("c", 0.934), ("d", "≥ 0.48")]
    refs = [{"model": m, "source": "s", "ndcg": v} for m, v in values]
    assert list(book.results_table("I1", {}, refs)["nDCG@10"]) == ["0.420", "0.9355", "0.934", "≥ 0.48"]


def test_results_table_rejects_an_unknown_protocol():
    with pytest.raises(ValueError, match="protocol must be one of"):
        book.results_table("X1", {})


def test_table_markdown_is_a_pipe_table_with_escaped_cells():
    import pandas as pd

    text = book.table_markdown(pd.DataFrame({"model": ["a|b"], "RMSE": ["0.9"]}))
    lines = text.splitlines()
    assert lines[0] == "| model | RMSE |"
    assert lines[1] == "|---|---:|"
    assert lines[2] == "| a\\|b | 0.9 |"
    # text columns stay left-aligned, columns of numbers (also "≤ 1", "1,682", empty cells) right-aligned
    table = pd.DataFrame({"model": ["x", "y"], "stage": ["parse", "fit"], "n": ["1,682", ""], "t": ["≤ 1", "0.5"]})
    assert book.table_markdown(table).splitlines()[1] == "|---|---|---:|---:|"


def test_results_section_says_what_to_run_and_flags_stale_results(tmp_path):
    (tmp_path / "mfkit").mkdir()
    module = tmp_path / "mfkit" / "m.py"
    module.write_text("x = 1\n")
    run = payload([e1()], modules=["mfkit/m.py"], root=tmp_path)
    text = book.results_section("E1", {"explicit_ml100k": run}, root=tmp_path)
    assert "`python benchmarks/explicit_ml100k.py` on 2026-01-01" in text
    assert "not yet measured: run `python benchmarks/neural_ml100k.py`" in text
    assert "Older than the code" not in text
    module.write_text("x = 2\n")
    text = book.results_section("E1", {"explicit_ml100k": run}, root=tmp_path)
    assert "**Older than the code it measures**" in text and "re-run `python benchmarks/explicit_ml100k.py`" in text


def test_results_section_without_any_results_names_every_script():
    text = book.results_section("I1", {}, [{"model": "BPR", "source": "published", "ndcg": 0.442}])
    assert "| BPR | published | 0.442 |" in text  # a reference keeps the digits its source gave
    for script in book.EXPECTED_SCRIPTS["I1"]:
        assert f"run `python benchmarks/{script}.py`" in text


def test_find_repo_root_and_load_results(tmp_path):
    assert book.find_repo_root(tmp_path) is None
    (tmp_path / "mfkit").mkdir()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "book").mkdir()
    assert book.find_repo_root(tmp_path / "book") == tmp_path.resolve()
    assert book.load_results(tmp_path / "nowhere") == {}
    (tmp_path / "benchmarks" / "results" / "x.json").write_text(json.dumps({"records": []}))
    assert book.load_results(tmp_path / "benchmarks" / "results") == {"x": {"records": []}}


# --- the install cell --------------------------------------------------------------------------------------------

def test_install_cell_is_valid_ipython_and_silent_when_mfkit_is_installed(capsys):
    from IPython.core.inputtransformer2 import TransformerManager

    source = book.install_cell_source("https://github.com/example/mfkit")
    python = TransformerManager().transform_cell(source)
    assert "run_line_magic('pip', 'install -q \"mfkit @ git+https://github.com/example/mfkit\"')" in python

    calls = []

    class FakeShell:
        def run_line_magic(self, name, line):
            calls.append((name, line))

    exec(compile(python, "<install cell>", "exec"), {"get_ipython": lambda: FakeShell()})
    assert calls == []  # mfkit is importable here: nothing is installed
    assert capsys.readouterr().out == ""


def test_install_cell_installs_mfkit_where_it_is_missing():
    import builtins

    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager().transform_cell(book.install_cell_source("https://github.com/example/mfkit"))
    installed, calls = [], []

    def fake_import(name, *args, **kwargs):  # a fresh Colab runtime: no mfkit until pip has run
        if name == "mfkit" and not installed:
            raise ImportError("No module named 'mfkit'")
        return builtins.__import__(name, *args, **kwargs)

    class FakeShell:
        def run_line_magic(self, name, line):
            calls.append((name, line))
            installed.append(True)

    namespace = {"get_ipython": lambda: FakeShell(), "__builtins__": {**vars(builtins), "__import__": fake_import}}
    exec(compile(python, "<install cell>", "exec"), namespace)
    assert calls == [("pip", 'install -q "mfkit @ git+https://github.com/example/mfkit"')]
    assert namespace["mfkit"].__name__ == "mfkit"


def test_install_cells_of_the_chapters_name_the_repository_of_config():
    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "%pip install" in source and "mfkit" in source:
                assert f"git+{url}" in source, (f"{notebook.name}: the install cell does not name the repository of "
                                                f"_config.yml ({url}); use mfkit.book.install_cell_source(url)")


# --- benchmarks/_common.save_results -----------------------------------------------------------------------------

@pytest.fixture
def common(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def test_save_results_writes_a_file_the_page_can_read(common):
    import numpy as np

    out = common.save_results("explicit_ml100k", [e1(rmse=np.float64(0.91))], ["mfkit/book.py"], "python x.py")
    saved = json.loads(out.read_text())
    assert book.payload_problems(saved) == []
    assert saved["records"][0]["rmse"] == pytest.approx(0.91)
    assert saved["modules_hash"] == book.modules_hash(saved["modules"], ROOT)
    assert not book.stale_modules(saved, ROOT)


def test_save_results_warns_about_records_the_page_cannot_show(common):
    with pytest.warns(UserWarning, match="missing 'rmse'"):
        out = common.save_results("some_script", [{"protocol": "E1", "model": "m", "chapter": None, "mae": 0.7,
                                                   "fit_s": 1.0, "seeds": [0]}], ["mfkit/book.py"], "python x.py")
    assert out.exists()  # a long run is not lost


# --- the bibliography --------------------------------------------------------------------------------------------

CITED_BY_THE_CHAPTER_PASS = ["koren2009matrix", "hu2008collaborative", "funk2006netflix", "rendle2020ncf",
                             "rendle2022ials", "he2017ncf", "yi2019sampling", "covington2016youtube",
                             "kingma2015adam", "duchi2011adagrad", "loshchilov2019adamw", "salakhutdinov2008bpmf",
                             "koren2008svdpp", "harper2015movielens", "bennett2007netflix", "pilaszy2010fast"]


def _bibliography():
    from pybtex.database import parse_file

    return parse_file(str(ROOT / "book" / "references.bib"), bib_format="bibtex")


def test_bibliography_has_every_key_the_book_cites_and_no_duplicate():
    import re

    entries = _bibliography().entries  # pybtex raises on a repeated key
    cited = set(CITED_BY_THE_CHAPTER_PASS)
    for page in [*(ROOT / "book").glob("*.ipynb"), *(ROOT / "book").glob("*.md")]:
        text = page.read_text()
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in keys.split(",")}
    assert not cited - set(entries), f"cited but not in book/references.bib: {sorted(cited - set(entries))}"


def test_bibliography_entries_have_authors_title_and_year():
    for key, entry in _bibliography().entries.items():
        assert entry.persons.get("author"), f"{key} has no author"
        assert entry.fields.get("title") and entry.fields.get("year", "").isdigit(), f"{key} needs title and year"
        venue = {"journal", "booktitle", "publisher", "howpublished"} & set(entry.fields)
        assert venue, f"{key} says nowhere where it was published"


# --- the reference figures of the results page ---------------------------------------------------------------------

@pytest.mark.parametrize("protocol", sorted(book.REFERENCES))
def test_reference_figures_fit_their_protocol_table(protocol):
    """Every reference row names a model and a source, and holds only keys its protocol's table shows."""
    spec = book.PROTOCOL_SPECS[protocol]
    allowed = {"model", "source", "notes"} | {c.key for c in spec.columns}
    for row in book.REFERENCES[protocol]:
        assert row["model"].strip() and row["source"].strip(), row
        assert set(row) <= allowed, (protocol, row["model"], set(row) - allowed)
        for key in set(row) & {c.key for c in spec.columns}:
            assert isinstance(row[key], str) or math.isfinite(row[key]), (protocol, row["model"], key)
    table = book.results_table(protocol, {}, book.REFERENCES[protocol])
    assert list(table["model"]) == [row["model"] for row in book.REFERENCES[protocol]]


def test_peer_records_are_labelled_as_other_libraries():
    """A record without a chapter from a peers script is another library measured here, not a same-run baseline."""
    record = {"protocol": "E1", "model": "Surprise SVD (defaults)", "chapter": None, "rmse": 0.93, "mae": 0.73,
              "fit_s": 1.0, "seeds": [0, 1]}
    table = book.results_table("E1", {"peers_ml100k": {"records": [record]}, "other": {"records": [record]}})
    assert list(table["from"]) == ["other library, measured here", "baseline, same run"]
