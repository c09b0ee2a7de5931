"""The built site as a reader sees it, in a real headless browser.

The quick-mode site (built once by the `site` fixture) is served from 127.0.0.1 and
every page of the table of contents is opened in Debian's Chromium driven by
Playwright. Each page must load without console errors from our own files, show every
image at a non-zero size, contain a player for every animation, show math as math
markup, contain no traceback, and link only to internal pages that exist. A
screenshot of every page is saved under test-artifacts/screenshots/.
"""

import functools
import http.server
import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest
from conftest import ROOT
from test_repo import toc_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = toc_files()

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


def expected_animations(site: Path, page: str) -> int:
    """How many animation players the page must show: one per jshtml output of its executed notebook."""
    executed = site.parent / "jupyter_execute" / f"{page}.ipynb"
    if not executed.exists():
        return 0
    outputs = [
        o
        for c in json.loads(executed.read_text())["cells"]
        for o in c.get("outputs", [])
    ]
    return sum(
        'class="animation"' in "".join(o.get("data", {}).get("text/html", ""))
        for o in outputs
    )


@pytest.mark.parametrize("page_path", PAGES)
def test_page_renders_for_a_reader(page_path, site, server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    own_errors = []
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and server in (m.location.get("url") or "")
            and own_errors.append(m.text)
        ),
    )
    page.on("pageerror", lambda e: own_errors.append(str(e)))
    page.on(
        "requestfailed",
        lambda r: (
            r.url.startswith(server) and own_errors.append(f"failed: {r.url}")
        ),
    )
    url = f"{server}/{page_path}.html"
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, url
    page.wait_for_timeout(300)

    assert not own_errors, own_errors
    text = page.inner_text("body")
    assert (
        "Traceback (most recent call last)" not in text
        and "Error" not in page.title()
    )

    broken = page.eval_on_selector_all(
        "img",
        "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.src.slice(0, 80))",
    )
    assert not broken, broken

    animations = expected_animations(site, page_path)
    assert page.locator("div.animation").count() == animations
    if animations:
        assert page.locator("div.animation button").count() > 0, (
            "the player's controls"
        )
        frame_sizes = page.eval_on_selector_all(
            "div.animation img", "imgs => imgs.map(i => i.naturalWidth)"
        )
        assert frame_sizes and min(frame_sizes) > 0, frame_sizes

    if page_path.startswith("notebooks/"):
        assert page.locator(".math").count() > 0, (
            "equations are rendered as math markup"
        )
        assert (
            page.locator("a[href*='colab.research.google.com']").count() > 0
        ), "Colab launch button"
        assert page.locator("a[href$='.ipynb']").count() > 0, (
            "notebook download"
        )
        assert page.locator("a.left-prev, a.right-next").count() > 0, (
            "previous/next navigation"
        )
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
    page.close()


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
