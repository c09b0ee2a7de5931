"""The site builds strictly in quick mode, every notebook without error."""

import re

from conftest import ROOT
from test_repo import toc_files


def test_site_builds_every_page_without_errors(site):
    for file in toc_files():
        page = site / f"{file}.html"
        assert page.exists(), page
        html = page.read_text()
        assert "Traceback" not in html and "output error" not in html, page
    assert (site / "index.html").exists()
    log = (ROOT / "test-artifacts" / "site-build.log").read_text()
    assert not re.search(r": (WARNING|ERROR|CRITICAL):", log), (
        "the Sphinx build must be warning-free"
    )
