"""Shared set-up: quick mode for every notebook, and one quick-mode site build.

Each notebook is executed once per test run, by nbmake (the notebook tests). We
keep the notebooks that nbmake executed, and the site fixture builds the site
from those executions (Jupyter Book is told not to execute them again); a
notebook that nbmake did not run in this session (say, `pytest tests/` alone)
is executed by the site build as usual.

To check an already built site instead (say, the full-mode build), point
BOOK_SITE at its html directory:
`BOOK_SITE=_build/html pytest tests/test_browser.py`.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbmake.nb_run import NotebookRun

# Read by every notebook's settings cell; nbmake's kernels inherit both.
os.environ["BOOK_QUICK"] = "1"
os.environ["JAX_DEBUG_KEY_REUSE"] = "true"  # a key used twice is an error

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
EXECUTED: dict[str, nbformat.NotebookNode] = {}  # notebook name -> executed


def _execute_and_keep(self: NotebookRun, _execute=NotebookRun.execute):
    result = _execute(self)
    EXECUTED[Path(self.filename).name] = result.nb
    return result


NotebookRun.execute = _execute_and_keep  # nbmake's run, and keep the result


def stage_book(source: Path, executed: dict) -> list[str]:
    """Copy the book's sources to `source`, with the notebooks nbmake ran."""
    for name in ("_config.yml", "_toc.yml", "book", "notebooks"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    for name, nb in executed.items():
        nbformat.write(nb, source / "notebooks" / name)
    config = yaml.safe_load((source / "_config.yml").read_text())
    excluded = [f"notebooks/{name}" for name in sorted(executed)]
    config["execute"]["exclude_patterns"] = excluded  # run already
    (source / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return excluded


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """Build the site in quick mode, strictly; return its html directory."""
    if os.environ.get("BOOK_SITE"):
        return Path(os.environ["BOOK_SITE"]).resolve()
    tmp = tmp_path_factory.mktemp("site")
    source, out = tmp / "source", tmp / "out"
    source.mkdir()
    reused = stage_book(source, EXECUTED)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", str(source), "--path-output", str(out)]
        + ["-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        env={**os.environ, "BOOK_QUICK": "1"},
    )
    log = f"notebooks reused from nbmake: {reused}\n"
    log += result.stdout + result.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site-build.log").write_text(log)
    assert result.returncode == 0, log[-5000:]
    return out / "_build" / "html"
