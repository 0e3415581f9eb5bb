"""The built book, as a reader's browser shows it: every page of ``_build/html`` opened in headless Chromium.

Run after ``jupyter-book build . -W -n --keep-going``::

    MFKIT_BOOK_HTML=_build/html .venv/bin/python -m pytest tests/test_book_html.py

For each page of ``_toc.yml`` Chromium dumps the DOM after the page's scripts ran and saves a screenshot to
``_build/screenshots/<page>.png`` (look at them). The checks: the page exists and has a title; the sidebar of every
page lists every page of the table of contents; every figure output of the executed notebook is an ``<img>`` whose
source is inline data or a file that exists; no traceback, error or stderr output and no Sphinx error message shows.

With ``$MFKIT_BOOK_HTML`` set, a missing site or browser is a failure (CI cannot skip silently). Without it the tests
use ``_build/html`` and skip when there is no build, or when the build is older than the book's sources. When
Chromium is missing and the tests run as root, they install Debian's ``chromium`` with apt-get.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML_ENV = "MFKIT_BOOK_HTML"
# Flags for headless Chromium as root in a container, with nothing fetched but the page (BOOK_NOTES.md).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--window-size=1400,1000", "--timeout=20000"]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
REMOVED_OUTPUT_TAGS = {"remove-output", "remove-cell"}
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception): ", re.MULTILINE)


def toc_pages(toc_file: Path = ROOT / "_toc.yml") -> list[str]:
    """The documents of the table of contents (``book/intro``, ``book/01_data_preparation``...), in order."""
    toc = yaml.safe_load(toc_file.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(ipynb|md)$", "", p) for p in pages]


PAGES = toc_pages()


def _site_or_skip() -> Path:
    env = os.environ.get(HTML_ENV)
    html = Path(env) if env else ROOT / "_build" / "html"
    html = html if html.is_absolute() else ROOT / html
    if not (html / f"{PAGES[0]}.html").exists():
        if env:
            pytest.fail(f"${HTML_ENV}={env} but {html} holds no built book ({PAGES[0]}.html is missing): "
                        "run `jupyter-book build . -W -n --keep-going` first")
        pytest.skip(f"no built book in {html}: run `jupyter-book build . -W -n --keep-going` "
                    f"(or set ${HTML_ENV} to a built site)")
    if not env:
        built = min((html / f"{p}.html").stat().st_mtime for p in PAGES if (html / f"{p}.html").exists())
        sources = [ROOT / "_toc.yml", ROOT / "_config.yml", *(ROOT / "book").glob("*.*")]
        if max(s.stat().st_mtime for s in sources if s.exists()) > built:
            pytest.skip(f"the book in {html} is older than its sources: rebuild it (or set ${HTML_ENV} to check it)")
    return html


def _chromium_or_skip() -> str:
    found = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        # Debian's package, no browser download by a test tool (those fail on the CI machines).
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                       shell=True, check=False, timeout=900, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        found = shutil.which("chromium")
    if found is None:
        message = "headless Chromium is needed: `apt-get install -y chromium` (Debian) or put `chromium` on PATH"
        if os.environ.get(HTML_ENV):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _render(chromium: str, page: Path, screenshot: Path) -> dict:
    """Open one page: its DOM after load (and scripts), a screenshot, and what Chromium said if it failed."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mfkit-chromium-") as profile:  # a fresh profile per page
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={screenshot}", "--dump-dom",
               page.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return {"dom": "", "error": f"Chromium did not finish {page} within 120 s"}
    if done.returncode != 0 or "<html" not in done.stdout:
        return {"dom": done.stdout, "error": f"Chromium exited with {done.returncode} on {page}:\n"
                                             + "\n".join(done.stderr.splitlines()[-15:])}
    return {"dom": done.stdout, "error": None}


@pytest.fixture(scope="session")
def site() -> Path:
    return _site_or_skip()


@pytest.fixture(scope="session")
def rendered(site) -> dict:
    """``{page: {"dom", "error", "screenshot"}}`` for every page of the table of contents, rendered in parallel."""
    from bs4 import BeautifulSoup

    chromium = _chromium_or_skip()
    shots = site.parent / "screenshots"
    names = [Path(p).name for p in PAGES]
    assert len(set(names)) == len(names), f"two pages share a file name, screenshots would collide: {names}"
    present = [p for p in PAGES if (site / f"{p}.html").exists()]
    workers = max(1, min(4, os.cpu_count() or 1))
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda p: _render(chromium, site / f"{p}.html", shots / f"{Path(p).name}.png"), present)
        out = {p: r for p, r in zip(present, results)}
    for page, result in out.items():
        result["screenshot"] = shots / f"{Path(page).name}.png"
        result["soup"] = BeautifulSoup(result["dom"], "html.parser")
    print(f"\nrendered {len(out)} pages with {workers} Chromium processes at a time in "
          f"{time.perf_counter() - start:.1f} s; screenshots in {shots}")
    return out


def _page(rendered, page):
    if page not in rendered:
        pytest.fail(f"{page}.html is missing from the built book although _toc.yml lists it")
    result = rendered[page]
    if result["error"]:
        pytest.fail(result["error"])
    return result["soup"]


def _doc_of(href: str, page: str) -> str | None:
    """The document a sidebar link points to (``book/02_weighted_mf``), ``None`` for external links."""
    if re.match(r"^[a-z]+:", href):
        return None
    path = href.split("#")[0].split("?")[0]
    if not path:
        return page
    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
    return re.sub(r"(/index)?\.html$", "", resolved)


def _expected_figures(site: Path, page: str) -> int | None:
    """How many image outputs the page's notebook has (the executed copy the build wrote, else the source);
    ``None`` for a page that is not a notebook."""
    executed = site.parent / "jupyter_execute" / f"{page}.ipynb"
    source = ROOT / f"{page}.ipynb"
    notebook = executed if executed.exists() else source
    if not notebook.exists():
        return None
    count = 0
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code" or REMOVED_OUTPUT_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        count += sum(1 for o in cell.get("outputs", []) if any(m in o.get("data", {}) for m in IMAGE_MIMES))
    return count


@pytest.mark.parametrize("page", PAGES)
def test_page_has_a_title(rendered, page):
    soup = _page(rendered, page)
    title = soup.title.get_text(strip=True) if soup.title else ""
    assert title and "<no title>" not in title, f"{page}.html has no <title>"
    heading = soup.find("h1")
    assert heading is not None and heading.get_text(strip=True), f"{page}.html has no <h1> heading"


@pytest.mark.parametrize("page", PAGES)
def test_sidebar_lists_every_page_of_the_toc(rendered, page):
    soup = _page(rendered, page)
    nav = soup.select_one("nav.bd-docs-nav") or soup.select_one("#bd-docs-nav")
    assert nav is not None, f"{page}.html has no sidebar navigation (nav.bd-docs-nav)"
    linked = {_doc_of(a["href"], page) for a in nav.find_all("a", href=True)}
    brand = soup.select_one("a.navbar-brand")  # the theme may show the root page as the book's title only
    if brand is not None and brand.get("href"):
        linked.add(_doc_of(brand["href"], page))
    missing = [p for p in PAGES if p not in linked]
    assert not missing, f"the sidebar of {page}.html does not list {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_figures_render_as_images(rendered, site, page):
    soup = _page(rendered, page)
    for img in soup.find_all("img"):
        src = img.get("src", "")
        assert src, f"{page}.html has an <img> without src: {img}"
        if src.startswith("data:"):
            assert len(src) > 100, f"{page}.html has an inline image with almost no data: {src[:80]}"
        elif not re.match(r"^[a-z]+://", src):
            target = (site / page).parent / src.split("#")[0].split("?")[0]
            assert target.is_file() and target.stat().st_size > 0, f"{page}.html shows {src}, which is not in the site"
    expected = _expected_figures(site, page)
    if expected is not None:
        shown = [img for out in soup.select("div.cell_output") for img in out.find_all("img")]
        assert len(shown) == expected, (f"{page}: the notebook has {expected} figure outputs but the page shows "
                                        f"{len(shown)} images in its cell outputs")


@pytest.mark.parametrize("page", PAGES)
def test_no_error_output(rendered, page):
    soup = _page(rendered, page)
    problems = [f"Sphinx/docutils error: {m.get_text(' ', strip=True)[:300]}"
                for m in soup.select(".system-message, .problematic")]
    for cell in soup.select("div.cell"):
        if "tag_raises-exception" in cell.get("class", []):
            continue  # a cell meant to show an exception
        source = cell.select_one("div.cell_input pre")
        where = source.get_text().strip().splitlines()[0][:120] if source and source.get_text().strip() else "?"
        for out in cell.select("div.cell_output"):
            for bad in out.select(".traceback, .stderr, .output.error"):
                problems.append(f"{' '.join(bad.get('class', []))} output after `{where}`: "
                                f"{bad.get_text(' ', strip=True)[:300]}")
            text = out.get_text("\n")
            if ERROR_TEXT.search(text):
                problems.append(f"error text in the output of `{where}`: {ERROR_TEXT.search(text).group(0)!r}")
    assert not problems, f"{page}.html:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_screenshot_shows_something(rendered, page):
    from matplotlib.image import imread

    _page(rendered, page)
    shot = rendered[page]["screenshot"]
    assert shot.is_file(), f"Chromium wrote no screenshot for {page}"
    pixels = imread(shot)
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 800, f"screenshot of {page} is {pixels.shape}"
    assert pixels[..., :3].std() > 0.02, f"the screenshot of {page} is blank ({shot})"
