"""Shared set-up: quick mode for every notebook, one quick-mode site build, and
the order of the tests under pytest-xdist.

Each notebook is executed once per test run, by nbmake (the notebook tests),
as many at once as pytest-xdist has workers (`-n`, pytest.ini). Each worker
writes the notebooks it executed to test-artifacts/executed/, and a marker
when one is over (run or failed). The site fixture waits for every notebook
this run executes, then builds the site from those executions (Jupyter Book
is told not to execute them again); a notebook that nbmake did not run in this
session (say, `pytest tests/` alone) is executed by the site build as usual.

With several workers, each holds one core, XLA single-threaded there
(book/_ext/single_core.py), and the kernels it starts inherit both; with
one worker (or BOOK_NO_PIN=1) nothing is pinned.

The queue, in this order: the Colab simulation (in one worker: one runtime
for all its notebooks), the notebooks, chapter 6's data-parallel test, the
site's tests, the rest. The site is built once per run, once the notebooks
are done, by the first worker that needs it (into test-artifacts/site/); the
others wait for that build, so the site's tests run in every worker.

To check an already built site instead (say, the full-mode build), point
BOOK_SITE at its html directory:
`BOOK_SITE=_build/html pytest tests/test_browser.py`.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
import yaml
from nbmake.nb_run import NotebookRun

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from single_core import pin  # noqa: E402

# Read by every notebook's settings cell; nbmake's kernels inherit both.
os.environ["BOOK_QUICK"] = "1"
os.environ["JAX_DEBUG_KEY_REUSE"] = "true"  # a key used twice is an error
# Quick mode compiles more than it computes, and XLA's CPU backend compiles
# faster with its older fusion emitters (measured on the 2-core machine: the
# eleven notebooks' quick mode, two at a time on one core each, 214 -> 169 s).
# The tests only, for every kernel they start (nbmake's and the Colab
# simulation's, which then share the compilation cache below). The build keeps
# XLA's defaults: in full mode the flag gains nothing overall (measured:
# chapter 11 4 % faster with it, chapter 10 5 % slower), and the published
# numbers are computed as a reader's run computes them.
NO_FUSION_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = (
    f"{os.environ.get('XLA_FLAGS', '')} {NO_FUSION_EMITTERS}".strip()
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
EXECUTED = ARTIFACTS / "executed"  # this run's executed notebooks
SITE = ARTIFACTS / "site"  # this run's quick-mode site, built once
WAIT = 1200  # seconds the site waits for the other workers' notebooks
# One JAX compilation cache per test run, for every kernel the run starts
# (nbmake's, and the Colab simulation's, whose set-up cell installs the same
# jaxlib): the second execution of a notebook loads the programs the first
# one compiled instead of compiling them again. It starts empty each run.
JAX_CACHE = ARTIFACTS / "jax-cache"
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(JAX_CACHE)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


# A kernel that did not start is started again (twice at most): kernels that
# start at the same moment in several processes can be given the same free
# port, and then one of them cannot bind it (zmq: "Address already in use").
# Only the start is retried, never a notebook's own error.
KERNEL_START_FAILURES = ("Kernel didn't respond", "Kernel died before replying")


TRIES = 3


def start_again(error: RuntimeError, attempt: int) -> bool:
    """Whether to start the kernel again after this error of this attempt."""
    return attempt < TRIES and str(error).startswith(KERNEL_START_FAILURES)


def with_kernel_retries(run: Callable):
    """run(), again if its kernel did not start."""
    for attempt in range(1, TRIES + 1):
        try:
            return run()
        except RuntimeError as error:
            if not start_again(error, attempt):
                raise


async def with_kernel_retries_async(run: Callable):
    """await run(), again if its kernel did not start."""
    for attempt in range(1, TRIES + 1):
        try:
            return await run()
        except RuntimeError as error:
            if not start_again(error, attempt):
                raise


def _execute_and_keep(self: NotebookRun, _execute=NotebookRun.execute):
    path = EXECUTED / Path(self.filename).name
    try:
        result = with_kernel_retries(lambda: _execute(self))
        nbformat.write(result.nb, path.with_suffix(".partial"))
        path.with_suffix(".partial").rename(path)
        return result
    finally:
        path.with_suffix(".done").touch()  # executed, or failed


NotebookRun.execute = _execute_and_keep  # nbmake's run, and keep the result


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # xdist's controller, or no xdist
        for folder in (EXECUTED, SITE, JAX_CACHE):
            shutil.rmtree(folder, ignore_errors=True)
        EXECUTED.mkdir(parents=True)
    elif config.workerinput["workercount"] > 1 and not os.environ.get(
        "BOOK_NO_PIN"
    ):
        # Several workers: each holds one core, XLA single-threaded there, and
        # the kernels it starts inherit both (book/_ext/single_core.py).
        cores = sorted(os.sched_getaffinity(0))
        worker = int(config.workerinput["workerid"].removeprefix("gw"))
        pin(cores[worker % len(cores)])


# Tests that share a fixture too costly to set up twice: each group runs in
# one worker (by file; xdist's own `xdist_group` mark is lost under pytest 9,
# pytest-xdist issue 1386). The site is built once, by whichever worker needs
# it first (the `site` fixture), so its tests run in every worker.
GROUPS = {
    "tests/test_colab.py": "colab",  # one Colab runtime
}
# The queue: the long chains first (the Colab simulation, the notebooks,
# chapter 6's data-parallel test, whose one-device run then finds chapter 6's
# programs in the run's compilation cache, and the site's tests, which wait
# for the notebooks), then the rest.
QUEUE = [
    "tests/test_colab.py",
    ".ipynb",
    "tests/test_ddpm_data_parallel.py",
    "tests/test_browser.py",
    "tests/test_site.py",
]


def rank(nodeid: str) -> int:
    path = nodeid.split("::")[0]
    path = ".ipynb" if path.endswith(".ipynb") else path
    return QUEUE.index(path) if path in QUEUE else len(QUEUE)


def order(item: pytest.Item) -> tuple[int, int]:
    """The queue's order; the notebooks from the last chapter to the first:
    the longest first, and in the reverse of the Colab simulation's order, so
    that the two executions of a chapter rarely compile at the same time."""
    if item.path.suffix == ".ipynb":
        return rank(item.nodeid), -int(item.path.name[:2])
    return rank(item.nodeid), 0


def pytest_collection_modifyitems(items):
    items.sort(key=order)  # stable


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
def site(request) -> Path:
    """Build the site in quick mode, strictly; return its html directory.

    The first worker to get here builds it (under a lock) into
    test-artifacts/site/; the others wait for that build and use it, so the
    site's tests can run in every worker."""
    if os.environ.get("BOOK_SITE"):
        return Path(os.environ["BOOK_SITE"]).resolve()
    source, out = SITE / "source", SITE / "out"
    status = SITE / "returncode"
    with open(ARTIFACTS / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not status.exists():
            try:
                code = build_site(request.session, source, out)
            except BaseException:
                status.write_text("raised")  # the others do not try again
                raise
            status.write_text(str(code))
    build_log = ARTIFACTS / "site-build.log"
    log = build_log.read_text() if build_log.exists() else "(no build log)"
    assert status.read_text() == "0", log[-5000:]
    return out / "_build" / "html"


def build_site(session: pytest.Session, source: Path, out: Path) -> int:
    """The quick-mode site from this run's executions; the build's status."""
    source.mkdir(parents=True)
    start = time.perf_counter()
    executed = executed_notebooks(session)
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
    (ARTIFACTS / "site-build.log").write_text(log)
    return result.returncode
