"""The built book as a reader sees it: every page of ``_build/html`` opened in headless Chromium, offline.

Run after ``jupyter-book build --all . -W -n --keep-going``::

    MFKIT_BOOK_HTML=_build/html .venv/bin/python -m pytest tests/test_book_html.py

Playwright for Python drives the system's Chromium (``/usr/bin/chromium``, Debian's ``chromium`` package: Playwright's
own browser download does not work on the CI machines). Every request that is not a ``file://`` (or ``data:``/
``blob:``) URL is blocked, so a page that needs the network (MathJax from a CDN, a web font, a script) fails here as it
would for a reader without internet. For every HTML page of the site (the ``_static``/``_sources``/``_images`` folders
aside) the checks are:

- nothing outside the site was requested, no local file it asked for is missing, and no script raised an error;
- the page has a title and an ``<h1>``, and (book pages) a sidebar listing every page of ``_toc.yml``;
- math: every ``.math`` element holds a typeset ``mjx-container``, MathJax reported no error (``mjx-merror``), and no
  raw ``\\(``, ``\\[``, ``$$`` or ``$...\\command...$`` is left in the visible text outside code;
- every page is opened in three windows (:data:`VIEWS`): a 1400 x 1000 desktop, a 1280 x 800 laptop and a 390 x 844
  phone. At the two wide ones no code block (cell sources, outputs, code in the prose and in opened dropdowns) is
  wider than its column (``scrollWidth <= clientWidth + 1``) and no table sticks out of its column; on the phone a
  code block may scroll inside its own box, and a wide table must scroll inside its own box (never the page); the
  page itself never scrolls sideways, and on the phone the sidebar and the page's table of contents are collapsed
  (the theme's drawers) so the text has the whole width;
- every image has loaded (``naturalWidth > 0``), every figure output of the notebook is shown, has alt text and is
  no wider than its column;
- every internal link resolves: the target file exists and its ``#anchor`` is an id in it;
- no traceback, error or stderr output, no Sphinx error message;
- text is readable in the light and in the dark theme (the theme switch is clicked until the page is dark): the
  WCAG contrast ratio of every visible text element against its background is at least 4.5.

The search page must find each chapter by a word of its title (among the first three results). Full-page
screenshots of every page at each width go to ``_build/screenshots/<width>/<page>.png`` (light) and
``_build/screenshots/<width>/dark/<page>.jpg`` (dark): look at them. The per-page counts (math typeset, images,
figures, links, code blocks, code blocks and tables scrolling sideways) are printed by ``test_print_page_counts`` and
written to ``_build/screenshots/counts.txt``. The checks that do not depend on the window (title, sidebar entries,
links, error output) run on the desktop rendering only.

With ``$MFKIT_BOOK_HTML`` set, a missing site, browser or Playwright is a failure (CI cannot skip silently). Without
it the tests use ``_build/html`` and skip when there is no build, or when the build is older than the book's sources.
When Chromium is missing and the tests run as root, they install Debian's ``chromium`` with apt-get.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML_ENV = "MFKIT_BOOK_HTML"
# Chromium as root in a container, with nothing fetched in the background (BOOK_NOTES.md); --headless is Playwright's.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions"]
#: The longest code line of a chapter (CONTRIBUTING.md): at the code font size of ``_static/mfkit.css`` (12 px) a line
#: this long fits the text column at 1280 px, which the browser checks below measure; the static check
#: :func:`test_code_lines_fit_the_limit` needs no browser.
CODE_LINE_LIMIT = 88
#: The windows every page is opened in, by name: a desktop, a common laptop and a phone.
VIEWS = {"1400": {"width": 1400, "height": 1000}, "1280": {"width": 1280, "height": 800},
         "390": {"width": 390, "height": 844}}
DESKTOP = "1400"
#: At or below this width (a phone) a code block may scroll inside its own box and a wide table must scroll inside its
#: own box; above it, both fit their column.
PHONE_MAX_WIDTH = 600
MIN_CONTRAST = 4.5  # WCAG 2 AA for body text
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
REMOVED_OUTPUT_TAGS = {"remove-output", "remove-cell"}
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception): ", re.MULTILINE)
# Known, harmless script errors of the tool chain: Jupyter Book 1 loads sphinx-thebe's settings twice (the second
# `const` declaration throws; Thebe itself is not used by this book).
KNOWN_SCRIPT_ERRORS = re.compile(r"Identifier 'THEBE_JS_URL' has already been declared")
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$")


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


TOC_PAGES = toc_pages()


def _site_path() -> Path:
    env = os.environ.get(HTML_ENV)
    html = Path(env) if env else ROOT / "_build" / "html"
    return html if html.is_absolute() else ROOT / html


def site_pages(html: Path | None = None) -> list[str]:
    """Every HTML page of the built site, as paths relative to it without ``.html`` (``book/intro``, ``search``...):
    the table of contents' pages first, then the others (index, search, genindex...)."""
    html = html or _site_path()
    found = sorted(str(p.relative_to(html).with_suffix("")) for p in html.rglob("*.html")
                   if not SKIP_DIRS & set(p.relative_to(html).parts))
    return [p for p in TOC_PAGES if p in found] + [p for p in found if p not in TOC_PAGES] or TOC_PAGES


PAGES = site_pages()


def _site_or_skip() -> Path:
    env = os.environ.get(HTML_ENV)
    html = _site_path()
    if not (html / f"{TOC_PAGES[0]}.html").exists():
        if env:
            pytest.fail(f"${HTML_ENV}={env} but {html} holds no built book ({TOC_PAGES[0]}.html is missing): "
                        "run `jupyter-book build --all . -W -n --keep-going` first")
        pytest.skip(f"no built book in {html}: run `jupyter-book build --all . -W -n --keep-going` "
                    f"(or set ${HTML_ENV} to a built site)")
    if not env:
        built = min((html / f"{p}.html").stat().st_mtime for p in TOC_PAGES if (html / f"{p}.html").exists())
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


def test_code_lines_fit_the_limit():
    """Every line of every code cell of the book is at most CODE_LINE_LIMIT characters (no browser needed)."""
    long = [f"{nb.name} cell {i}: {len(line)} characters: {line[:60]!r}"
            for nb in sorted((ROOT / "book").glob("*.ipynb"))
            for i, cell in enumerate(json.loads(nb.read_text())["cells"]) if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > CODE_LINE_LIMIT]
    assert not long, f"code lines longer than {CODE_LINE_LIMIT} characters:\n" + "\n".join(long[:20])


# --- what runs in the page ------------------------------------------------------------------------------------------

WAIT_FOR_PAGE = """async () => {
  // MathJax 3 typesets after load: wait for its startup promise (and any typesetting it queued).
  if (window.MathJax && window.MathJax.startup) {
    for (let i = 0; i < 200 && !window.MathJax.startup.promise; i++) await new Promise(r => setTimeout(r, 50));
    await window.MathJax.startup.promise;
  }
  // Open every dropdown and hidden cell, load every image, so that all of it is measured.
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('img[loading="lazy"]').forEach(i => { i.loading = 'eager'; });
  await Promise.all([...document.images].map(i => i.complete ? null :
      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 10000); })));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
}"""

MEASURE = r"""() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const visible = el => el.checkVisibility ? el.checkVisibility({visibilityProperty: true}) : !!el.offsetParent;
  const firstLine = el => (el.innerText || el.textContent || '').trim().split('\n')[0].slice(0, 100);
  // math
  const maths = [...document.querySelectorAll('.math')];
  const untypeset = maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.trim().slice(0, 100));
  const merrors = [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 100));
  // visible text outside code and outside typeset math
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, kbd, samp';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const parent = n.parentElement;
    if (!parent || parent.closest(skip) || !visible(parent) || !n.textContent.trim()) continue;
    texts.push(n.textContent);
  }
  // code blocks and output tables wider than their column
  const wide = [];
  for (const pre of article.querySelectorAll('pre')) {
    if (!visible(pre)) continue;
    for (const box of [pre, pre.closest('div.highlight')].filter(Boolean)) {
      if (box.scrollWidth > box.clientWidth + 1) {
        const inOutput = !!pre.closest('.cell_output');
        const inInput = !!pre.closest('.cell_input');
        wide.push({kind: inOutput ? 'output' : inInput ? 'code cell' : 'code in prose',
                   scroll: box.scrollWidth, client: box.clientWidth,
                   longest: Math.max(...pre.textContent.split('\n').map(l => l.length)),
                   first_line: firstLine(pre)});
        break;
      }
    }
  }
  const wideTables = [];
  for (const table of article.querySelectorAll('table')) {
    if (!visible(table)) continue;
    let box = table.parentElement;  // the nearest box that scrolls sideways, else the article
    while (box && box !== article && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
    box = box || article;
    const width = table.getBoundingClientRect().width, room = box.clientWidth;
    const ownBox = box !== article;
    if (width > room + 1 || (ownBox && box.scrollWidth > box.clientWidth + 1)) {
      wideTables.push({width: Math.round(Math.max(width, box.scrollWidth)), room: room,
                       in_output: !!table.closest('.cell_output'), own_box: ownBox,
                       box_fits: box.getBoundingClientRect().width <= article.clientWidth + 1,
                       first_line: firstLine(table)});
    }
  }
  // figures: the images of cell outputs, with their alt text and width against their column
  const figures = [...article.querySelectorAll('div.cell_output img')].map(i => ({
      src: (i.getAttribute('src') || '').slice(0, 100), alt: (i.getAttribute('alt') || '').trim(),
      loaded: i.complete && i.naturalWidth > 0, width: Math.round(i.getBoundingClientRect().width),
      column: (i.closest('div.cell') || article).clientWidth}));
  // the sidebars: on a phone both are drawers, closed until opened (off screen or hidden)
  const shown = el => {
    if (!el || !visible(el)) return false;
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.right > 0 && r.left < window.innerWidth;
  };
  const sidebars = {primary: shown(document.querySelector('.bd-sidebar-primary')),
                    secondary: shown(document.querySelector('.bd-sidebar-secondary'))};
  const articleWidth = Math.round(article.getBoundingClientRect().width);
  const codeBlocks = [...article.querySelectorAll('pre')].filter(visible).length;
  // images
  const images = [...document.images].map(i => ({src: i.getAttribute('src') || '', loaded: i.complete && i.naturalWidth > 0,
                                                  in_output: !!i.closest('div.cell_output')}));
  // links: the attribute and the URL the browser resolved it to
  const links = [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'), url: a.href}));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id).concat(
      [...document.querySelectorAll('a[name]')].map(e => e.getAttribute('name')));
  return {
    title: document.title, h1: (document.querySelector('h1') || {}).innerText || '',
    math: maths.length, typeset: document.querySelectorAll('mjx-container').length,
    untypeset, merrors, text: texts.join('\n'), wide, wide_tables: wideTables, code_blocks: codeBlocks,
    figures, sidebars, article_width: articleWidth, window_width: window.innerWidth,
    page_width: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    images, links, ids,
  };
}"""

CONTRAST = r"""(minimum) => {
  const parse = s => {
    const m = s.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, below) => {  // alpha compositing of two colours
    const a = top[3] + below[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    return [0, 1, 2].map(i => (top[i] * top[3] + below[i] * below[3] * (1 - top[3])) / a).concat([a]);
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const style = getComputedStyle(e);
      if (style.backgroundImage && style.backgroundImage !== 'none') return null;  // a picture: not measurable
      const c = parse(style.backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let colour = [255, 255, 255, 1];  // the canvas
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const luminance = c => {
    const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const scope = document.querySelector('.bd-main') || document.body;
  const visible = el => el.checkVisibility ? el.checkVisibility({visibilityProperty: true, opacityProperty: true}) : !!el.offsetParent;
  const bad = [];
  let measured = 0, lowest = Infinity;
  for (const el of scope.querySelectorAll('*')) {
    if (el.closest('svg, mjx-container, .visually-hidden, .sr-only, [aria-hidden="true"]')) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el)) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width < 1 || rect.height < 1) continue;
    const bg = background(el), fg = parse(getComputedStyle(el).color);
    if (!bg || !fg) continue;
    const r = ratio(over(fg, bg), bg);
    measured += 1;
    lowest = Math.min(lowest, r);
    if (r < minimum) bad.push({tag: el.tagName.toLowerCase(), cls: el.className.toString().slice(0, 60),
                               text: el.textContent.trim().slice(0, 60), ratio: Math.round(r * 100) / 100,
                               color: getComputedStyle(el).color, background: 'rgb(' + bg.slice(0, 3).map(Math.round) + ')'});
  }
  return {measured, lowest: Math.round(lowest * 100) / 100, bad: bad.slice(0, 15), n_bad: bad.length,
          theme: document.documentElement.dataset.theme || ''};
}"""


def _redirect_target(file: Path) -> str | None:
    match = re.search(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', file.read_text(errors="replace"))
    return match.group(1) if match else None


def _open(context, site: Path, page: str):
    """Open ``page`` in a fresh tab; returns the tab and what it asked for outside the site or could not find."""
    tab = context.new_page()
    trouble = {"external": [], "missing": [], "errors": []}
    tab.on("pageerror", lambda error: trouble["errors"].append(str(error)[:300]))

    def failed(request):
        if request.url.startswith("file:") and "net::ERR_ABORTED" not in (request.failure or ""):
            trouble["missing"].append(f"{request.url} ({request.failure})")

    tab.on("requestfailed", failed)
    tab.goto((site / f"{page}.html").as_uri(), wait_until="load", timeout=60_000)
    tab.evaluate(WAIT_FOR_PAGE)
    return tab, trouble


def _render(browser, site: Path, page: str, shots: Path, view: str = DESKTOP) -> dict:
    context = browser.new_context(viewport=VIEWS[view], color_scheme="light")
    external: list[str] = []

    def route(route_):
        url = route_.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route_.continue_()
        else:
            external.append(url)
            route_.abort()

    context.route("**/*", route)
    try:
        tab, trouble = _open(context, site, page)
        result = tab.evaluate(MEASURE)
        result["dom"] = tab.content()
        result["light"] = tab.evaluate(CONTRAST, MIN_CONTRAST)
        name = page.replace("/", "__")
        shots = shots / view
        result["screenshot"] = shots / f"{name}.png"
        tab.screenshot(path=str(result["screenshot"]), full_page=True)
        # dark mode: the theme's own switch, as a reader would use it
        switch = tab.locator("button.theme-switch-button").first
        result["dark"] = None
        if switch.count():
            for _ in range(3):
                if tab.evaluate("document.documentElement.dataset.theme") == "dark":
                    break
                switch.click()
                tab.wait_for_timeout(150)
            result["dark"] = tab.evaluate(CONTRAST, MIN_CONTRAST)
            tab.screenshot(path=str(shots / "dark" / f"{name}.jpg"), full_page=True, type="jpeg", quality=70)
        result.update(trouble)
        result["external"] = external
        result["error"] = None
    except Exception as error:  # one broken page must not hide the others
        result = {"error": f"{page}: {type(error).__name__}: {error}"}
    finally:
        context.close()
    return result


@pytest.fixture(scope="session")
def site() -> Path:
    return _site_or_skip()


@pytest.fixture(scope="session")
def browser(site):
    chromium = _chromium_or_skip()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "Playwright for Python is needed: `pip install -r requirements.txt` (no browser download needed)"
        if os.environ.get(HTML_ENV):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def rendered(site, browser) -> dict:
    """``{page: measurements}`` for every page of the site, each opened offline in a fresh browser context."""
    from bs4 import BeautifulSoup

    shots = site.parent / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    for view in VIEWS:
        (shots / view / "dark").mkdir(parents=True)
    start = time.perf_counter()
    out = {}
    for view in VIEWS:
        for page in PAGES:
            file = site / f"{page}.html"
            if not file.exists():
                continue
            if _redirect_target(file):
                out[view, page] = {"redirect": _redirect_target(file), "error": None}
                continue
            out[view, page] = result = _render(browser, site, page, shots, view)
            if not result["error"] and view == DESKTOP:  # the DOM checks run on the desktop rendering
                result["soup"] = BeautifulSoup(result["dom"], "html.parser")
            result.pop("dom", None)
    print(f"\nrendered {len(out)} pages ({len(VIEWS)} widths) in {time.perf_counter() - start:.1f} s; "
          f"screenshots in {shots}")
    return out


#: (width, page) pairs of the checks that depend on the window, with readable test ids.
VIEW_PAGES = [pytest.param(view, page, id=f"{view}-{page}") for view in VIEWS for page in PAGES]


def _page(rendered, page, view=DESKTOP):
    if (view, page) not in rendered:
        pytest.fail(f"{page}.html is missing from the built book")
    result = rendered[view, page]
    if result["error"]:
        pytest.fail(result["error"])
    if "redirect" in result:
        pytest.skip(f"{page}.html only redirects to {result['redirect']}")
    return result


# --- links ----------------------------------------------------------------------------------------------------------

_IDS: dict[Path, set[str]] = {}


def _ids_in(file: Path) -> set[str]:
    if file not in _IDS:
        text = file.read_text(errors="replace")
        _IDS[file] = set(re.findall(r'\b(?:id|name)="([^"]+)"', text))
    return _IDS[file]


def _check_link(site: Path, page: str, href: str, url: str, ids_here: set[str]) -> str | None:
    """``None`` when an internal link resolves, else what is wrong; external links are not followed."""
    if not url.startswith("file:"):
        return None
    parsed = urllib.parse.urlparse(url)
    target = Path(urllib.parse.unquote(parsed.path))
    here = (site / f"{page}.html").resolve()
    if not target.exists():
        return f"{href!r}: {target} does not exist"
    if site.resolve() not in target.resolve().parents:
        return f"{href!r}: {target} is outside the site"
    fragment = urllib.parse.unquote(parsed.fragment)
    if fragment:
        if target.is_dir():
            target = target / "index.html"
        ids = ids_here if target.resolve() == here else _ids_in(target)
        if target.suffix == ".html" and fragment not in ids:
            return f"{href!r}: no element with id {fragment!r} in {target.name}"
    return None


# --- the checks -----------------------------------------------------------------------------------------------------

def test_redirects_resolve(rendered, site):
    redirects = {p: r["redirect"] for (_, p), r in rendered.items() if "redirect" in r}
    for page, target in redirects.items():
        assert (site / page).parent.joinpath(target).is_file(), f"{page}.html redirects to {target}, which is missing"


@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_nothing_fetched_from_outside_the_site(rendered, view, page):
    result = _page(rendered, page, view)
    assert not result["external"], (f"{page}.html needs the network (blocked here): "
                                     + ", ".join(sorted(set(result["external"]))[:10]))
    assert not result["missing"], f"{page}.html asks for files the site lacks: {result['missing'][:10]}"
    errors = [e for e in result["errors"] if not KNOWN_SCRIPT_ERRORS.search(e)]
    assert not errors, f"scripts of {page}.html raised: {errors[:5]}"


@pytest.mark.parametrize("page", PAGES)
def test_page_has_a_title(rendered, page):
    result = _page(rendered, page)
    assert result["title"] and "<no title>" not in result["title"], f"{page}.html has no <title>"
    if page in TOC_PAGES:  # Sphinx's own pages (search, an empty general index) have none
        assert result["h1"].strip(), f"{page}.html has no <h1> heading"


def _doc_of(href: str, page: str) -> str | None:
    """The document a sidebar link points to (``book/02_weighted_mf``), ``None`` for external links."""
    if re.match(r"^[a-z]+:", href):
        return None
    path = href.split("#")[0].split("?")[0]
    if not path:
        return page
    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
    return re.sub(r"(/index)?\.html$", "", resolved)


@pytest.mark.parametrize("page", TOC_PAGES)
def test_sidebar_lists_every_page_of_the_toc(rendered, page):
    soup = _page(rendered, page)["soup"]
    nav = soup.select_one("nav.bd-docs-nav") or soup.select_one("#bd-docs-nav")
    assert nav is not None, f"{page}.html has no sidebar navigation (nav.bd-docs-nav)"
    linked = {_doc_of(a["href"], page) for a in nav.find_all("a", href=True)}
    brand = soup.select_one("a.navbar-brand")  # the theme may show the root page as the book's title only
    if brand is not None and brand.get("href"):
        linked.add(_doc_of(brand["href"], page))
    missing = [p for p in TOC_PAGES if p not in linked]
    assert not missing, f"the sidebar of {page}.html does not list {missing}"


@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_math_is_typeset(rendered, view, page):
    result = _page(rendered, page, view)
    assert not result["untypeset"], (f"{page}.html: {len(result['untypeset'])} of {result['math']} math elements "
                                     f"were not typeset (MathJax missing or failed?): {result['untypeset'][:5]}")
    assert not result["merrors"], f"{page}.html: MathJax could not parse: {result['merrors'][:5]}"
    raw = sorted({m.group(0)[:80] for m in RAW_TEX.finditer(result["text"])})
    assert not raw, f"{page}.html shows raw TeX in its text: {raw[:10]}"


@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_code_fits_its_column(rendered, view, page):
    result = _page(rendered, page, view)
    phone = VIEWS[view]["width"] <= PHONE_MAX_WIDTH
    problems = [] if phone else [
        f"{w['kind']} block {w['scroll']} px wide in a {w['client']} px column (longest line {w['longest']} "
        f"characters): {w['first_line']!r}" for w in result["wide"]]
    problems += [f"{'output ' if t['in_output'] else ''}table {t['width']} px wide in a {t['room']} px "
                 f"{'box' if t['own_box'] else 'column'}: {t['first_line']!r}" for t in result["wide_tables"]
                 if not (phone and t["own_box"] and t["box_fits"])]
    width, room = result["page_width"]
    if width > room + 1:
        problems.append(f"the page scrolls sideways ({width} px in a {room} px window)")
    assert not problems, f"{page}.html, at a {view} px wide window:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_sidebars_collapse_on_a_phone(rendered, page):
    phones = [v for v in VIEWS if VIEWS[v]["width"] <= PHONE_MAX_WIDTH]
    for view in phones:
        result = _page(rendered, page, view)
        open_ = [name for name, shown in result["sidebars"].items() if shown]
        assert not open_, f"{page}.html at {view} px: the {' and '.join(open_)} sidebar is open, not a drawer"
        assert result["article_width"] >= 0.8 * result["window_width"], (
            f"{page}.html at {view} px: the text is {result['article_width']} px wide in a "
            f"{result['window_width']} px window")


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


@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_images_load(rendered, site, view, page):
    result = _page(rendered, page, view)
    broken = [i["src"][:100] for i in result["images"] if not i["loaded"]]
    assert not broken, f"{page}.html: images that did not load: {broken}"
    expected = _expected_figures(site, page)
    if expected is not None:
        shown = sum(i["in_output"] for i in result["images"])
        assert shown == expected, (f"{page}: the notebook has {expected} figure outputs but the page shows "
                                   f"{shown} images in its cell outputs")


@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_figures_have_alt_text_and_fit(rendered, view, page):
    result = _page(rendered, page, view)
    # Sphinx writes the image's own path as its alt text when the cell gives none: that is no description.
    problems = [f"figure {f['src']!r} has no alt text (cell metadata mystnb.image.alt)"
                for f in result["figures"] if not f["alt"] or f["alt"] == f["src"]
                or re.search(r"\.(png|jpe?g|svg|gif)$", f["alt"], re.IGNORECASE)]
    problems += [f"figure {f['src']!r} is {f['width']} px wide in a {f['column']} px column"
                 for f in result["figures"] if f["width"] > f["column"] + 1]
    problems += [f"figure {f['src']!r} did not load" for f in result["figures"] if not f["loaded"]]
    assert not problems, f"{page}.html at {view} px:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_resolve(rendered, site, page):
    result = _page(rendered, page)
    ids_here = set(result["ids"])
    broken = sorted({problem for link in result["links"]
                     if (problem := _check_link(site, page, link["href"], link["url"], ids_here))})
    assert not broken, f"{page}.html has {len(broken)} broken links:\n" + "\n".join(broken[:20])


@pytest.mark.parametrize("page", PAGES)
def test_no_error_output(rendered, page):
    soup = _page(rendered, page)["soup"]
    problems = [f"Sphinx/docutils error: {m.get_text(' ', strip=True)[:300]}"
                for m in soup.select(".system-message, .problematic")]
    for cell in soup.select("div.cell"):
        if {"tag_raises-exception", "tag_error-messages"} & set(cell.get("class", [])):
            continue  # a cell meant to show an exception, or the messages of errors it caught
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


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_text_is_readable(rendered, view, page, theme):
    result = _page(rendered, page, view)
    measured = result[theme]
    assert measured is not None, f"{page}.html has no theme switch (button.theme-switch-button)"
    assert measured["theme"] == theme, f"{page}.html did not switch to the {theme} theme ({measured['theme']!r})"
    assert measured["measured"] > 0, f"no text measured on {page}.html"
    assert not measured["bad"], (f"{page}.html, {theme} theme: {measured['n_bad']} text elements below contrast "
                                 f"{MIN_CONTRAST}:\n" + "\n".join(map(str, measured["bad"])))


@pytest.mark.parametrize("view, page", VIEW_PAGES)
def test_screenshot_shows_something(rendered, view, page):
    from matplotlib.image import imread

    result = _page(rendered, page, view)
    shot = result["screenshot"]
    assert shot.is_file(), f"Chromium wrote no screenshot for {page} at {view} px"
    pixels = imread(shot)
    size = VIEWS[view]
    assert pixels.shape[0] >= size["height"] - 1 and pixels.shape[1] >= size["width"] - 1, (
        f"screenshot of {page} at {view} px: {pixels.shape}")
    assert pixels[..., :3].std() > 0.02, f"the screenshot of {page} is blank ({shot})"


def _search_word(rendered, page: str) -> str:
    """The word of the chapter's title that the fewest other pages' text contains."""
    words = [w for w in re.findall(r"[A-Za-z]{5,}", rendered[DESKTOP, page]["h1"]) if w.lower() not in {"variant", "model"}]
    assert words, f"no search word in the title of {page}: {rendered[DESKTOP, page]['h1']!r}"
    others = [r["text"].lower() for (v, p), r in rendered.items() if v == DESKTOP and p != page and "text" in r]
    return min(words, key=lambda w: (sum(w.lower() in text for text in others), words.index(w)))


CHAPTERS = [p for p in TOC_PAGES if re.search(r"/\d\d_", p)]


@pytest.mark.parametrize("page", CHAPTERS)
def test_search_finds_the_chapter(rendered, browser, site, page):
    _page(rendered, page)
    word = _search_word(rendered, page)
    context = browser.new_context(viewport=VIEWS[DESKTOP])
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                  else r.abort())
    try:
        tab = context.new_page()
        tab.goto((site / "search.html").as_uri() + "?q=" + urllib.parse.quote(word), wait_until="load")
        tab.wait_for_function("() => /Search finished|did not match/.test("
                              "(document.querySelector('#search-results') || {}).innerText || '')", timeout=30_000)
        found = tab.eval_on_selector_all("#search-results ul.search li a",
                                         "links => links.map(a => a.getAttribute('href'))")
    finally:
        context.close()
    docs = [re.sub(r"\.html$", "", h.split("#")[0].split("?")[0]) for h in found]
    assert docs, f"searching for {word!r} found nothing"
    assert page in docs[:3], f"searching for {word!r}: {page} is not among the first 3 results: {docs[:5]}"


def test_print_page_counts(rendered, site, capsys):
    """Per-page counts for the record (also in ``_build/screenshots/counts.txt``)."""
    lines = [f"{'width':>5} {'page':<26} {'math':>5} {'typeset':>7} {'images':>6} {'figures':>7} {'links':>5} "
             f"{'internal':>8} {'code':>5} {'code scrolls':>12} {'table scrolls':>13} {'page scrolls':>12} "
             f"{'contrast light/dark':>20}"]
    for (view, page), result in rendered.items():
        if result.get("error") or "redirect" in result:
            lines.append(f"{view:>5} {page:<26} {result.get('error') or 'redirect to ' + result['redirect']}")
            continue
        internal = sum(link["url"].startswith("file:") for link in result["links"])
        dark = result["dark"]["lowest"] if result["dark"] else float("nan")
        lines.append(f"{view:>5} {page:<26} {result['math']:>5} {result['typeset']:>7} {len(result['images']):>6} "
                     f"{len(result['figures']):>7} {len(result['links']):>5} {internal:>8} "
                     f"{result['code_blocks']:>5} {len(result['wide']):>12} {len(result['wide_tables']):>13} "
                     f"{'yes' if result['page_width'][0] > result['page_width'][1] + 1 else 'no':>12} "
                     f"{result['light']['lowest']:>10.2f}/{dark:<9.2f}")
    table = "\n".join(lines)
    (site.parent / "screenshots" / "counts.txt").write_text(table + "\n")
    with capsys.disabled():
        print("\n" + table)
