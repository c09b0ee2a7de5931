"""Shared set-up: quick mode for every notebook, and one quick-mode site build."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["BOOK_QUICK"] = (
    "1"  # read by every notebook's settings cell (nbmake kernels inherit it)
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """Build the whole site in quick mode, strictly, into a temporary folder; return its html dir."""
    out = tmp_path_factory.mktemp("site")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [
            str(jupyter_book),
            "build",
            str(ROOT),
            "--path-output",
            str(out),
            "-W",
            "-n",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BOOK_QUICK": "1"},
    )
    log = result.stdout + result.stderr
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "site-build.log").write_text(log)
    assert result.returncode == 0, log[-5000:]
    return out / "_build" / "html"
