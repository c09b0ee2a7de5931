"""The site builds strictly in quick mode, every notebook without error, and
every page reads offline: nothing it loads comes from another host. Every
value its notebooks glue is kept in book/results.json, and the appendix shows
how this build's values compare (tests/test_results.py tests the comparison)."""

import os
import re
from html.parser import HTMLParser

from conftest import ROOT
from test_repo import toc_files
from test_results import NOTEBOOKS, RECORDED, results, values

WIDGET = "application/vnd.jupyter.widget"


class LoadedResources(HTMLParser):
    """The URLs a page loads by itself (not the links a reader may follow)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "embed", "video"):
            self.urls.append(attrs.get("src"))
        elif tag == "link" and attrs.get("rel") != "canonical":
            self.urls.append(attrs.get("href"))
        elif tag == "object":
            self.urls.append(attrs.get("data"))


def test_site_builds_every_page_without_errors(site):
    for file in toc_files():
        page = site / f"{file}.html"
        assert page.exists(), page
        html = page.read_text()
        assert "Traceback" not in html and "output error" not in html, page
    assert (site / "index.html").exists()
    if os.environ.get("BOOK_SITE"):  # a site built elsewhere: no log of ours
        return
    log = (ROOT / "test-artifacts" / "site-build.log").read_text()
    assert not re.search(r": (WARNING|ERROR|CRITICAL):", log), (
        "the Sphinx build must be warning-free"
    )


def test_every_page_loads_only_the_sites_own_files(site):
    for file in toc_files():
        parser = LoadedResources()
        parser.feed((site / f"{file}.html").read_text())
        remote = [u for u in parser.urls if u and re.match(r"(https?:)?//", u)]
        assert not remote, f"{file} loads from other hosts: {remote}"


def test_mathjax_is_served_by_the_site(site):
    assert (site / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    fonts = site / "_static" / "mathjax" / "output" / "chtml" / "fonts"
    assert any(fonts.glob("woff-v2/*.woff")), "MathJax's fonts"
    for file in toc_files():
        html = (site / f"{file}.html").read_text()
        if 'class="math notranslate' in html:
            assert "_static/mathjax/tex-mml-chtml.js" in html, file


def test_no_page_shows_a_widget(site):
    """Widgets need a widget manager from a CDN: progress bars are text."""
    for file in toc_files():
        assert WIDGET not in (site / f"{file}.html").read_text(), file
    for executed in (site.parent / "jupyter_execute").rglob("*.ipynb"):
        assert WIDGET not in executed.read_text(), executed.name


def test_every_glued_value_of_the_build_is_in_results_json(site):
    """Every value (figures and tables aside) that the notebooks glued."""
    current = results.glued(site.parent)
    assert {chapter for chapter, _ in current} == {p.stem for p in NOTEBOOKS}
    missing = set(current) - set(values())
    assert not missing, f"not in book/results.json (make results): {missing}"


def test_the_appendix_shows_the_comparison(site):
    html = (site / "book" / "reproducibility.html").read_text()
    assert (
        f"Of the {len(RECORDED['values'])} values in book/results.json" in html
    )
