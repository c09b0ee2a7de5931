"""Shared set-up: quick mode for every notebook, one quick-mode site build, and
the order of the tests under pytest-xdist.

Each notebook is executed once per test run, by nbmake (the notebook tests),
as many at once as pytest-xdist has workers (`-n`, pytest.ini). Each worker
writes the notebooks it executed to test-artifacts/executed/, and a marker
when one is over (run or failed). The site fixture waits for every notebook
this run executes, then builds the site from those executions (Jupyter Book
is told not to execute them again); a notebook that nbmake did not run in this
session (say, `pytest tests/` alone) is executed by the site build as usual.

The queue, in this order: the Colab simulation (in one worker: one runtime
for all its notebooks), the longest single test, the notebooks, the site's
tests (in one worker: one build, once the notebooks are done), the rest.

To check an already built site instead (say, the full-mode build), point
BOOK_SITE at its html directory:
`BOOK_SITE=_build/html pytest tests/test_browser.py`.
"""

import os
import shutil
import subprocess
import sys
import time
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
EXECUTED = ARTIFACTS / "executed"  # this run's executed notebooks
WAIT = 1200  # seconds the site waits for the other workers' notebooks


def _execute_and_keep(self: NotebookRun, _execute=NotebookRun.execute):
    path = EXECUTED / Path(self.filename).name
    try:
        result = _execute(self)
        nbformat.write(result.nb, path.with_suffix(".partial"))
        path.with_suffix(".partial").rename(path)
        return result
    finally:
        path.with_suffix(".done").touch()  # executed, or failed


NotebookRun.execute = _execute_and_keep  # nbmake's run, and keep the result


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # xdist's controller, or no xdist
        shutil.rmtree(EXECUTED, ignore_errors=True)
        EXECUTED.mkdir(parents=True)


# Tests that share a fixture too costly to set up twice: each group runs in
# one worker (by file; xdist's own `xdist_group` mark is lost under pytest 9,
# pytest-xdist issue 1386).
GROUPS = {
    "tests/test_colab.py": "colab",  # one Colab runtime
    "tests/test_browser.py": "site",  # one site build
    "tests/test_site.py": "site",
}
# The queue: the long chains first (the Colab simulation, the longest single
# test, the notebooks, the site's tests, which wait for the notebooks), then
# the rest.
QUEUE = [
    "tests/test_colab.py",
    "tests/test_ddpm_data_parallel.py",
    ".ipynb",
    "tests/test_browser.py",
    "tests/test_site.py",
]


def rank(nodeid: str) -> int:
    path = nodeid.split("::")[0]
    path = ".ipynb" if path.endswith(".ipynb") else path
    return QUEUE.index(path) if path in QUEUE else len(QUEUE)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: rank(item.nodeid))  # stable


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's
def pytest_xdist_make_scheduler(config, log):
    """xdist's default (`load`) with the groups above, in the order above."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return GROUPS.get(nodeid.split("::")[0], nodeid)

    if config.getvalue("dist") == "load":
        config.option.loadscopereorder = False  # keep the order above
        return Scheduling(config, log)
    return None


def executed_notebooks(session: pytest.Session) -> dict:
    """This run's executions, once every notebook test of it is over."""
    names = [i.path.name for i in session.items if i.path.suffix == ".ipynb"]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not all(
        (EXECUTED / name).with_suffix(".done").exists() for name in names
    ):
        time.sleep(1)
    return {p.name: nbformat.read(p, 4) for p in EXECUTED.glob("*.ipynb")}


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
def site(request, tmp_path_factory) -> Path:
    """Build the site in quick mode, strictly; return its html directory."""
    if os.environ.get("BOOK_SITE"):
        return Path(os.environ["BOOK_SITE"]).resolve()
    tmp = tmp_path_factory.mktemp("site")
    source, out = tmp / "source", tmp / "out"
    source.mkdir()
    start = time.perf_counter()
    executed = executed_notebooks(request.session)
    waited = time.perf_counter() - start
    reused = stage_book(source, executed)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", str(source), "--path-output", str(out)]
        + ["-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        env={**os.environ, "BOOK_QUICK": "1"},
    )
    log = f"waited {waited:.0f} s for nbmake; notebooks reused: {reused}\n"
    log += result.stdout + result.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site-build.log").write_text(log)
    assert result.returncode == 0, log[-5000:]
    return out / "_build" / "html"
