"""The built site as a reader sees it, offline, in a real headless browser.

The quick-mode site (built once by the `site` fixture) is served from
127.0.0.1 and every page of the table of contents is opened in Debian's
Chromium driven by Playwright, with every request to another host aborted: the
page must be readable offline. Each page must load without console errors,
request nothing from another host, show every image at a non-zero size,
contain a player for every animation, have every equation typeset by MathJax
(served by the site itself) without a TeX error, show every code block without
horizontal scrolling at 1280 px, contain no traceback, and link only to
internal pages that exist. A screenshot of every page is saved under
test-artifacts/screenshots/.
"""

import functools
import http.server
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest
from conftest import ROOT
from jupyter_cache import get_cache
from test_repo import toc_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = toc_files()
WIDTH = 1280  # the reader's window, in CSS pixels
LINE_LENGTH = 80  # ruff.toml's line length: a code line this long must fit

# Sphinx writes inline maths as <span class="math notranslate nohighlight"> and
# display maths (including amsmath environments) as <div class="math ...">.
MATH = "span.math.notranslate, div.math.notranslate"

# Every math element holds exactly one typeset container, and there are no
# others (MathJax typesets nothing outside the math elements). A TeX error
# (unknown macro, bad argument) is typeset as an error node; unbalanced braces
# keep MathJax from finding the maths at all: it stays source, untypeset. A
# display equation must fit the column at 1280 px (not scroll sideways).
MATH_REPORT = """sel => {
    const maths = [...document.querySelectorAll(sel)];
    const errors = [];
    for (const item of MathJax.startup.document.math) {
        const error = item.typesetRoot?.querySelector('mjx-merror');
        if (error) errors.push(
            `${error.getAttribute('data-mjx-error')}: ${item.math}`);
    }
    return {
        maths: maths.length,
        typeset: document.querySelectorAll('mjx-container').length,
        errors: errors,
        untypeset: maths.filter(
            m => m.querySelectorAll('mjx-container').length !== 1
        ).map(m => m.textContent.slice(0, 80)),
        too_wide: [...document.querySelectorAll('mjx-container[display]')]
            .filter(c => c.scrollWidth > c.clientWidth)
            .map(c => c.closest(sel)?.id || c.textContent.slice(0, 80)),
    };
}"""

# Code blocks (cell inputs, outputs, literal blocks) and other outputs (an
# HTML table, say) that scroll sideways; collapsed cells (hide-cell) and
# folded solutions (sphinx-togglebutton's toggle-hidden) opened.
OVERFLOWING = """() => {
    const closed = [...document.querySelectorAll('details:not([open])')];
    closed.forEach(d => { d.open = true; });
    const folded = [...document.querySelectorAll('.toggle-hidden')];
    folded.forEach(e => e.classList.remove('toggle-hidden'));
    const found = [...document.querySelectorAll(
        'div.highlight pre, div.cell_output *')]
    .filter(e => e.scrollWidth > e.clientWidth
        && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))
    .map(e => ({
        where: e.closest('.cell_output') ? 'output' : 'input',
        overflow: e.scrollWidth - e.clientWidth,
        line: e.textContent.split('\\n').reduce(
            (a, b) => (b.length > a.length ? b : a)).slice(0, 120),
    }));
    closed.forEach(d => { d.open = false; });
    folded.forEach(e => e.classList.add('toggle-hidden'));
    return found;
}"""

# How many characters fit on one line of a code cell: a probe line in a copy of
# the page's first visible input block, lengthened until it scrolls.
CHARACTERS_THAT_FIT = """() => {
    const pre = [...document.querySelectorAll(
        'div.cell_input div.highlight pre')].find(p => p.clientWidth > 0);
    if (!pre) return null;
    const probe = pre.cloneNode(false);
    pre.parentNode.appendChild(probe);
    let n = 40;
    do { probe.textContent = 'x'.repeat(++n); }
    while (probe.scrollWidth <= probe.clientWidth && n < 400);
    probe.remove();
    return n - 1;
}"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make browser)"
)


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def offline_page(browser, server):
    """A 1280 px page that can reach our server only; what else it asked for."""
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    elsewhere = []

    def route(route):
        url = route.request.url
        if url.startswith((server, "data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    page = context.new_page()
    yield page, elsewhere
    context.close()


def executed_cells(site: Path, page: str) -> list[dict]:
    """The page's executed cells: from jupyter_execute/, where the test run's
    site puts them, or else from the build's notebook cache (`make book`:
    there jupyter_execute/ holds the notebook without its outputs)."""
    executed = site.parent / "jupyter_execute" / f"{page}.ipynb"
    if not executed.exists():
        return []
    nb = nbformat.read(executed, as_version=4)
    cache = site.parent / ".jupyter_cache"
    if cache.exists() and not any(c.get("outputs") for c in nb.cells):
        _, nb = get_cache(str(cache)).merge_match_into_notebook(nb)
    return nb.cells


def expected_animations(site: Path, page: str) -> int:
    """How many animation players the page must show: one per jshtml output."""
    outputs = [
        o for c in executed_cells(site, page) for o in c.get("outputs", [])
    ]
    return sum(
        'class="animation"' in "".join(o.get("data", {}).get("text/html", ""))
        for o in outputs
    )


def wait_for_mathjax(page) -> None:
    """Wait until MathJax has typeset the page (if any maths) with its fonts."""
    if page.locator(MATH).count() == 0:
        return
    page.wait_for_function(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
        timeout=30_000,
    )
    page.evaluate("() => MathJax.startup.promise.then(() => true)")
    failed_fonts = page.evaluate(
        """() => document.fonts.ready.then(fonts => [...fonts]
            .filter(f => f.status === 'error').map(f => f.family))"""
    )
    assert not failed_fonts, f"fonts that did not load: {failed_fonts}"


@pytest.mark.parametrize("page_path", PAGES)
def test_page_renders_for_a_reader(page_path, site, server, offline_page):
    page, elsewhere = offline_page
    errors = []
    page.on(
        "console",
        lambda m: m.type == "error" and errors.append(f"{m.text} {m.location}"),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    own = server + "/"
    page.on(
        "requestfailed",
        lambda r: r.url.startswith(own) and errors.append(f"failed: {r.url}"),
    )
    url = f"{server}/{page_path}.html"
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, url
    wait_for_mathjax(page)
    page.wait_for_timeout(300)

    assert not elsewhere, f"requests to other hosts: {elsewhere}"
    assert not errors, errors
    text = page.inner_text("body")
    assert "Traceback (most recent call last)" not in text
    assert "Error" not in page.title()

    if page.locator(MATH).count():
        maths = page.evaluate(MATH_REPORT, MATH)
        assert (
            not maths["errors"]
            and not maths["untypeset"]
            and maths["typeset"] == maths["maths"]
        ), f"equations not typeset, or with TeX errors: {maths}"
        assert not maths["too_wide"], f"equations that scroll: {maths}"
    else:
        assert not page_path.startswith("notebooks/"), "a chapter has maths"

    overflowing = page.evaluate(OVERFLOWING)
    assert not overflowing, f"code blocks scroll sideways: {overflowing}"
    fit = page.evaluate(CHARACTERS_THAT_FIT)
    assert fit is None or fit >= LINE_LENGTH, f"{fit} characters fit"

    broken = page.eval_on_selector_all(
        "img",
        """imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0
            && i.naturalHeight > 0)).map(i => i.src.slice(0, 80))""",
    )
    assert not broken, broken

    animations = expected_animations(site, page_path)
    assert page.locator("div.animation").count() == animations
    if animations:
        controls = page.locator("div.animation button").count()
        assert controls > 0, "the player's controls"
        icons = page.locator("div.animation button svg").count()
        assert icons == controls, "the controls' icons (the theme's)"
        frame_sizes = page.eval_on_selector_all(
            "div.animation img", "imgs => imgs.map(i => i.naturalWidth)"
        )
        assert frame_sizes and min(frame_sizes) > 0, frame_sizes

    if page_path.startswith("notebooks/"):
        colab = "a[href*='colab.research.google.com']"
        assert page.locator(colab).count() > 0, "Colab launch button"
        download = page.locator("a[href$='.ipynb']").count()
        assert download > 0, "notebook download"
        navigation = page.locator("a.left-prev, a.right-next").count()
        assert navigation > 0, "previous/next navigation"
        # Exercises (sphinx-exercise), numbered per chapter, each solution
        # folded: its title shows, its derivation and code do not.
        exercises = page.locator("div.exercise.admonition")
        assert exercises.count() >= 2, "the chapter's exercises"
        chapter = int(page_path.split("/")[-1][:2])
        titles = exercises.locator(".admonition-title").all_inner_texts()
        assert all(t.startswith(f"Exercise {chapter}.") for t in titles), titles
        solutions = page.locator("div.solution.admonition")
        assert solutions.count() >= 1, "the solutions"
        for i in range(solutions.count()):
            solution = solutions.nth(i)
            assert solution.locator(".admonition-title").is_visible()
            body = solution.locator("> :not(.admonition-title)")
            assert body.count() > 0
            assert not any(
                body.nth(j).is_visible() for j in range(body.count())
            ), f"solution {i + 1} is open"
    assert (
        page.locator("button.copybtn").count() > 0
        or not page.locator("div.highlight").count()
    )

    links = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    for link in {urldefrag(h)[0] for h in links if h.startswith(server)}:
        target = urlparse(link).path
        try:
            with urllib.request.urlopen(f"{server}{target}") as r:
                assert r.status == 200, link
        except urllib.error.HTTPError as error:
            pytest.fail(f"{url} links to {link}: {error}")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / (page_path.replace("/", "__") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_site_has_the_reader_features(site):
    assert (site / "_static" / "logo.svg").exists() or any(
        site.glob("_static/*logo*")
    )
    assert "book/intro.html" in (site / "index.html").read_text(), (
        "the site opens on the landing page"
    )
    assert 'rel="icon"' in (site / "book" / "intro.html").read_text(), "favicon"
    assert (site / "book" / "bibliography.html").exists()
    for page in PAGES:
        if page.startswith("notebooks/"):
            assert (site / "_sources" / f"{page}.ipynb").exists(), (
                f"download of {page}.ipynb"
            )
