"""Execute the book's notebooks into Jupyter Book's cache, several at once.

`jupyter-book build` executes notebooks one after another. `make book` first
runs this: every notebook of _toc.yml whose code is not in the build's
jupyter-cache yet (`_build/.jupyter_cache`, where the build looks) is executed
as jupyter-book would (in its own folder, with _config.yml's timeout), `--jobs`
at a time (default: the machine's cores; a TPU takes one process at a time:
`make book JAX_EXTRA=tpu` runs one), and cached; the build then finds
every notebook cached. The longest notebooks (by book/results.json's wall
times) start first. When several run at once, each worker holds one core
(`pin`): its kernel inherits the affinity, and XLA's Eigen thread pool is
turned off, so notebooks do not fight over cores (JOBS=1 leaves the
one notebook free to use them all). Each notebook's time, the run's wall
time, and the machine's float32 matmul rate on one core and on all cores
(measured before the notebooks, for the efficiency table of the
reproducibility appendix) go to `_build/execution.json`. A failed notebook
is reported (its traceback) after the others have run, and the exit status
is 1.
"""

import argparse
import json
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution
from single_core import matmul_rates, pin

ROOT = Path(__file__).resolve().parents[2]


def toc_notebooks() -> list[Path]:
    """The table of contents' notebooks (.ipynb), in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    files = [entry["file"] for part in parts for entry in part["chapters"]]
    paths = [ROOT / f"{file}.ipynb" for file in files]
    return [path for path in paths if path.exists()]


def recorded_seconds() -> dict[str, float]:
    """Each chapter's wall time in the last full build, by notebook name."""
    path = ROOT / "book" / "results.json"
    values = json.loads(path.read_text())["values"] if path.exists() else []
    return {
        entry["chapter"]: entry["value"]
        for entry in values
        if entry["name"].endswith("_wall_time")
    }


def execute(path: Path, cache_path: Path, timeout: int) -> tuple[float, str]:
    """Execute one notebook and cache it; its time, and a traceback if any."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        result = single_nb_execution(
            nb, cwd=str(path.parent), timeout=timeout, allow_errors=False
        )
    except Exception:  # the kernel died, say
        return time.perf_counter() - start, traceback.format_exc()
    if result.err is None:
        bundle = CacheBundleIn(
            nb, str(path), data={"execution_seconds": result.time}
        )
        get_cache(str(cache_path)).cache_notebook_bundle(
            bundle, check_validity=False, overwrite=True
        )
    return result.time, result.exc_string or ""


def start_worker(cores) -> None:
    """A pool worker: hold one core, with XLA single-threaded there."""
    pin(cores.get())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "_build")
    parser.add_argument(
        "--jobs", type=int, default=len(os.sched_getaffinity(0)) or 1
    )
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    cache_path = args.build / ".jupyter_cache"
    cache = get_cache(str(cache_path))
    todo = []
    for path in toc_notebooks():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    if not todo:
        print("every notebook is cached")
        return 0
    if args.jobs > 1:  # notebooks sharing a GPU: each takes what it needs
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    recorded = recorded_seconds()
    # The longest first; a new notebook (no record yet) before all.
    todo.sort(key=lambda path: -recorded.get(path.stem, float("inf")))
    print(f"executing {len(todo)} notebooks, {args.jobs} at a time")
    rates = matmul_rates()  # GFLOP/s, before the notebooks load the machine
    spawn = multiprocessing.get_context("spawn")  # no state shared
    cores = sorted(os.sched_getaffinity(0))
    # One core each, on a CPU only (BOOK_NO_PIN=1: unpinned, to compare).
    pinned = args.jobs > 1 and rates["platform"] == "cpu"
    pinned = pinned and not os.environ.get("BOOK_NO_PIN")
    queue = spawn.Queue()
    for worker in range(args.jobs):
        queue.put(cores[worker % len(cores)])
    with ProcessPoolExecutor(
        args.jobs,
        mp_context=spawn,
        initializer=start_worker if pinned else None,
        initargs=(queue,) if pinned else (),
    ) as pool:
        start, seconds, failed, finished = time.perf_counter(), {}, {}, []
        runs = {
            pool.submit(execute, path, cache_path, config["timeout"]): path
            for path in todo
        }
        for run in as_completed(runs):
            name = runs[run].stem
            seconds[name], error = run.result()
            finished.append(time.perf_counter() - start)
            if error:
                failed[name] = error
            status = "FAILED" if error else "done"
            print(f"  {name}: {status} in {seconds[name]:.0f} s", flush=True)
    wall = time.perf_counter() - start
    # The idle tail: from the moment a worker finds the queue empty to the end.
    tail = wall - sorted(finished)[-args.jobs] if len(todo) > args.jobs else 0
    how = "one core each" if pinned else "unpinned"
    print(
        f"executed {len(todo)} notebooks in {wall:.0f} s of wall time"
        f" ({how}; idle tail {tail:.0f} s)"
    )
    record_path = args.build / "execution.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record["last_run"] = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "jobs": args.jobs,
        "seconds": round(wall, 1),
        "quick": os.environ.get("BOOK_QUICK") == "1",
        "pinned": pinned,
        "matmul_gflops": rates,
        "idle_tail_seconds": round(tail, 1),
        "notebooks": {n: round(s, 1) for n, s in seconds.items()},
    }
    if len(todo) == len(toc_notebooks()):  # the whole book
        record["last_full_run"] = record["last_run"]
    # The speed of the machine when each notebook ran (one core's matmul
    # rate): its times are compared at one speed (book/_ext/results.py).
    if rates["platform"] == "cpu":
        speeds = record.setdefault("notebook_matmul_gflops", {})
        speeds.update({name: rates["one_core"] for name in seconds})
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    for name, error in failed.items():
        print(f"\n{name} failed:\n{error}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
