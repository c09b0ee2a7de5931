"""The notebooks on Colab: the set-up cell, `glue` without myst-nb, Colab.

Three parts (issue 11):

1. The set-up cell (cell 1, identical in every notebook) carries the run-time
   pins inline; `requirements.txt` is the one source of truth, so the cell's
   PINS and IF_MISSING must agree with it, and every run-time requirement must
   be pinned, installed if missing, or held as the runtime's own.
2. The imports cell's `glue` falls back to a plain display where myst-nb is
   not importable (Colab): nothing shown for `display=False`, the value shown
   for `display=True`.
3. A simulation of Colab's CPU runtime (marked `colab`; `pytest -m "not colab"`
   leaves it out). Colab publishes its package list (googlecolab/backend-info;
   a copy is tests/colab_stand_in/pip-freeze.txt). We build a virtual
   environment with Colab's versions of the packages the notebooks touch and
   of Colab's kernel stack, plus a stand-in `google.colab` that the kernel
   imports at start, as Colab's launcher does (tests/colab_stand_in/). Colab
   runs Python 3.13; this machine and CI have only Python 3.11, so the
   simulation runs on 3.11, with Colab's version of every package. The base
   is built once (by `make setup`, or else by the first test run that needs
   it) and cached under ~/.cache/jax-book/colab-sim-<hash of its inputs>;
   each test run works on a copy, so the base stays pristine. On the copy,
   a kernel runs the set-up cell exactly as the notebooks carry it (it
   pip-installs the pins); then we check that Colab's own packages are
   unchanged (only the pinned ones replaced, others only added), that
   `pip check` is clean, and that every notebook runs in quick mode
   (BOOK_QUICK=1, JAX_DEBUG_KEY_REUSE=true) in that kernel, without myst-nb.
   The notebooks share the runtime, as a reader's notebooks in one Colab
   session do: the first cell installs, later ones find everything there;
   they run COLAB_JOBS at a time (an environment variable; default: cores),
   first chapter first, and share the test run's JAX compilation cache with
   nbmake's kernels (tests/conftest.py: the set-up cell installs the same
   jaxlib, so a program one of them compiled, the other loads).
   Everything is logged to test-artifacts/colab-sim.log.
4. Colab's GPU runtime (a copy of its list: colab_stand_in/pip-freeze.gpu.txt)
   already has every CUDA library that jax's CUDA plug-in asks for, at a
   version it accepts: the cell installs the plug-in and holds the rest.
"""

import ast
import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import with_kernel_retries, with_kernel_retries_async
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager, KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STAND_IN = Path(__file__).with_name("colab_stand_in")
LOG = ROOT / "test-artifacts" / "colab-sim.log"
# Colab's CPU runtime as published (googlecolab/backend-info, 2026-08-19).
COLAB_LIST = STAND_IN / "pip-freeze.txt"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
# How many notebooks run at once in the simulated runtime (default: cores).
COLAB_JOBS = int(os.environ.get("COLAB_JOBS", len(os.sched_getaffinity(0))))
# Colab's packages that the notebooks import (directly, through the
# set-up cell, or through jaxtyping's run-time checks), and Colab's kernel
# stack. Each is installed at the version of Colab's CPU list, and so is
# every dependency that list names (it is the constraints file).
COLAB_PACKAGES = """
    pip numpy scipy pandas matplotlib seaborn pillow tqdm requests
    jax jaxlib ml_dtypes opt_einsum optax tensorflow-probability
    mlxtend scikit-learn beartype typeguard typing_extensions
    ipython ipykernel jupyter_client jupyter_core tornado traitlets notebook
    matplotlib-inline pyzmq
""".split()
# What colabtools' setup.py makes `google-colab` require of the runtime,
# at the versions of Colab's list (google-auth, ipyparallel and portpicker
# left out: no notebook touches them).
COLAB_REQUIRES = "ipykernel ipython notebook pandas requests tornado".split()


# ---------------------------------------------------------------- helpers


def log(*lines: str) -> None:
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("a") as f:
        for line in lines:
            f.write(f"[{time.strftime('%H:%M:%S')}] {line}\n")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def setup_cell_source(notebook: Path) -> str:
    return "".join(json.loads(notebook.read_text())["cells"][1]["source"])


def setup_cell_lists() -> tuple[dict, dict, list[str]]:
    """PINS, IF_MISSING and HOLD, read from the cell's syntax tree."""
    tree = ast.parse(setup_cell_source(NOTEBOOKS[0]))
    found: dict[str, object] = {"HOLD": ""}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [node.target]
            )
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            for name in set(names) & {"PINS", "IF_MISSING", "HOLD"}:
                value = ast.literal_eval(node.value)
                if isinstance(node, ast.AugAssign):
                    value = found[name] + value
                found[name] = value
    return found["PINS"], found["IF_MISSING"], found["HOLD"].split()


def requirements() -> dict[str, str]:
    """requirements.txt's pins, by normalised name, in the file's order."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[normal(name)] = version.strip()
    return pins


def runtime_requirements() -> dict[str, str]:
    """The pins before the '# notebooks and the site' section: run-time."""
    text = (ROOT / "requirements.txt").read_text()
    runtime = text.split("# notebooks and the site")[0]
    return {
        normal(n): v
        for n, v in re.findall(r"^([\w.\-]+)==(\S+)", runtime, re.M)
    }


def colab_versions(path: Path) -> dict[str, str]:
    return {
        normal(n): v
        for n, v in re.findall(
            r"^([A-Za-z0-9][\w.\-]*)==(\S+)$", path.read_text(), re.M
        )
    }


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", {**os.environ, "PIP_NO_INPUT": "1"})
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


INVENTORY = """
import importlib.metadata as m, json, os
found = {}
for d in m.distributions():
    files = {}
    for f in d.files or []:
        path = d.locate_file(f)
        if f.suffix != ".pyc" and os.path.isfile(path):
            st = os.stat(path)
            files[str(f)] = [st.st_size, st.st_mtime_ns]
    found[d.metadata["Name"]] = {"version": d.version, "files": files}
print(json.dumps(found))
"""


def inventory(python: Path) -> dict[str, dict]:
    """Each distribution's version and its files' sizes and times."""
    out = run([str(python), "-c", INVENTORY], check=True).stdout
    return {normal(n): v for n, v in json.loads(out).items()}


def megabytes(dist: dict) -> float:
    return sum(size for size, _ in dist["files"].values()) / 2**20


def size_mb(path: Path) -> float:
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / 2**20


# ----------------------------------------------- (1) the cell's package list


def test_setup_cell_is_identical_in_every_notebook():
    first = setup_cell_source(NOTEBOOKS[0])
    assert "google.colab" in first
    for notebook in NOTEBOOKS:
        cell = json.loads(notebook.read_text())["cells"][1]
        assert cell["cell_type"] == "code", notebook.name
        assert "remove-cell" in cell["metadata"].get("tags", []), notebook.name
        assert setup_cell_source(notebook) == first, notebook.name


def test_setup_cell_pins_agree_with_requirements():
    pins, if_missing, hold = setup_cell_lists()
    required = requirements()
    for name, version in {**pins, **if_missing}.items():
        assert required.get(normal(name)) == version, (
            f"the cell has {name}=={version}, requirements.txt "
            f"{required.get(normal(name))}"
        )
    assert not set(pins) & set(if_missing)
    # Every run-time requirement is pinned, installed if missing, or held
    # (the runtime's own, which the cell never touches).
    covered = {normal(n) for n in [*pins, *if_missing, *hold]}
    missing = set(runtime_requirements()) - covered
    assert not missing, f"run-time requirements the cell ignores: {missing}"
    # Nothing the cell installs is build or test tooling.
    tooling = set(required) - set(runtime_requirements())
    assert not {normal(n) for n in [*pins, *if_missing]} & tooling


# ------------------------------------------ (2) glue without myst-nb


def test_glue_falls_back_without_myst_nb():
    """Each notebook's imports cell, in a kernel where myst_nb is missing."""
    block = "import sys\nsys.modules['myst_nb'] = None  # not importable"
    cells = [nbformat.v4.new_code_cell(block)]
    for notebook in NOTEBOOKS:
        imports = json.loads(notebook.read_text())["cells"][2]
        cells += [
            nbformat.v4.new_code_cell("glue = None"),
            nbformat.v4.new_code_cell("".join(imports["source"])),
            nbformat.v4.new_code_cell(
                "assert glue.__module__ == '__main__', glue.__module__\n"
                "glue('hidden', 1.25, display=False)"
            ),
            nbformat.v4.new_code_cell("glue('shown', 2.5, display=True)"),
        ]
    nb = nbformat.v4.new_notebook(cells=cells)
    env = {**os.environ, "MPLBACKEND": "agg"}
    with_kernel_retries(
        lambda: NotebookClient(nb, timeout=300, kernel_name="python3").execute(
            env=env
        )
    )
    for i, notebook in enumerate(NOTEBOOKS):
        hidden, shown = nb.cells[3 + 4 * i], nb.cells[4 + 4 * i]
        assert hidden.outputs == [], notebook.name
        assert [o["output_type"] for o in shown.outputs] == ["display_data"]
        assert shown.outputs[0]["data"]["text/plain"] == "2.5", notebook.name


# ------------------------------------------ (3) the simulation of Colab


def base_inputs(freeze_list: Path) -> tuple[list[str], str]:
    """Colab's pinned packages, and the hash of everything the base uses."""
    versions = colab_versions(freeze_list)
    packages = [f"{p}=={versions[normal(p)]}" for p in COLAB_PACKAGES]
    stand_in = sorted(
        (str(p.relative_to(STAND_IN)), p.read_bytes())
        for p in STAND_IN.rglob("*.py")
    )
    digest = hashlib.sha256(
        repr(
            (packages, freeze_list.read_text(), stand_in, COLAB_REQUIRES)
            + (sys.version, sys._base_executable, BUILD_VERSION)
        ).encode()
    ).hexdigest()[:12]
    return packages, digest


BUILD_VERSION = 1  # bump to rebuild every cached base


def install_stand_in(python: Path, versions: dict[str, str]) -> None:
    """google.colab, Colab's kernel launcher, and a google-colab dist-info."""
    site = Path(
        run(
            [
                str(python),
                "-c",
                "import sysconfig as s; print(s.get_path('purelib'))",
            ],
            check=True,
        ).stdout.strip()
    )
    shutil.copytree(STAND_IN / "google", site / "google", dirs_exist_ok=True)
    shutil.copy(STAND_IN / "colab_kernel_launcher.py", site)
    info = site / "google_colab-1.0.0.dist-info"
    info.mkdir()
    requires = [f"Requires-Dist: {n}=={versions[n]}" for n in COLAB_REQUIRES]
    metadata = ["Metadata-Version: 2.1", "Name: google-colab", "Version: 1.0.0"]
    (info / "METADATA").write_text("\n".join(metadata + requires) + "\n")
    (info / "INSTALLER").write_text("colab-sim\n")
    files = ["colab_kernel_launcher.py"]
    files += [
        str(p.relative_to(STAND_IN)) for p in STAND_IN.glob("google/**/*.py")
    ]
    files += [f"{info.name}/{f}" for f in ("METADATA", "INSTALLER", "RECORD")]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def build_base(base: Path, freeze_list: Path, packages: list[str]) -> None:
    """A venv with Colab's versions; built aside, then moved into place."""
    building = base.with_name(f"{base.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    python = building / "bin" / "python"
    constraints = building / "colab-constraints.txt"
    start = time.perf_counter()
    run([sys._base_executable, "-m", "venv", str(building)], check=True)
    versions = colab_versions(freeze_list)
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in versions.items()))
    pip = [str(python), "-m", "pip", "install", "-q", "--only-binary=:all:"]
    for step in ([packages[0]], ["-c", str(constraints), *packages[1:]]):
        result = run(pip + step)
        assert result.returncode == 0, result.stdout + result.stderr
    install_stand_in(python, versions)
    check = run([str(python), "-m", "pip", "check"])
    assert check.returncode == 0, (
        f"Colab's base is inconsistent:\n{check.stdout}"
    )
    seconds = time.perf_counter() - start
    (building / "colab-sim.json").write_text(
        json.dumps({"build_seconds": seconds, "packages": packages})
    )
    try:
        building.rename(base)
    except OSError:  # another run built it meanwhile
        shutil.rmtree(building)
    for old in base.parent.glob("colab-sim-*"):
        if old != base and "." not in old.name:  # ".": a build under way
            shutil.rmtree(old, ignore_errors=True)
    log(f"built the base in {seconds:.0f} s: {base} ({size_mb(base):.0f} MB)")


def cached_base(freeze_list: Path = COLAB_LIST) -> Path:
    """The base for Colab's list, built if the cache does not have it."""
    packages, digest = base_inputs(freeze_list)
    base = CACHE / "jax-book" / f"colab-sim-{digest}"
    log(f"Colab's list: {freeze_list}", f"base: {' '.join(packages)}")
    if not base.exists():
        base.parent.mkdir(parents=True, exist_ok=True)
        build_base(base, freeze_list, packages)
    else:
        built = json.loads((base / "colab-sim.json").read_text())
        log(f"cached base {base} (built in {built['build_seconds']:.0f} s)")
    return base


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> dict:
    """A copy of the cached base, with the set-up cell run in its kernel."""
    LOG.parent.mkdir(exist_ok=True)
    LOG.write_text("")
    base = cached_base()
    tmp = tmp_path_factory.mktemp("colab")
    env_dir = tmp / "runtime"
    start = time.perf_counter()
    shutil.copytree(base, env_dir, symlinks=True)
    log(f"copied the base in {time.perf_counter() - start:.0f} s")
    python = env_dir / "bin" / "python"
    kernels = tmp / "kernels" / "colab-sim"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [str(python), "-m", "colab_kernel_launcher"]
        + ["-f", "{connection_file}"],
        "display_name": "Colab stand-in",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MPLBACKEND")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PATH=f"{python.parent}:{env['PATH']}",
        IPYTHONDIR=str(tmp / "ipython"),
        BOOK_QUICK="1",
        JAX_DEBUG_KEY_REUSE="true",
        PIP_NO_INPUT="1",
    )
    runtime = {
        "python": python,
        "kernel_dirs": [str(kernels.parent)],
        "env": env,
        "before": inventory(python),
        "size_before": size_mb(env_dir),
    }
    # The set-up cell, exactly as the notebooks carry it, in Colab's kernel.
    source = setup_cell_source(NOTEBOOKS[0])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    start = time.perf_counter()
    execute(nb, runtime, cwd=tmp)
    seconds = time.perf_counter() - start
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    runtime["after"] = inventory(python)
    size = size_mb(env_dir) - runtime["size_before"]
    log(
        f"set-up cell (kernel start included): {seconds:.0f} s, "
        f"+{size:.0f} MB in the environment",
        f"it printed: {printed.strip()}",
    )
    return runtime


def colab_client(nb, runtime: dict, manager=KernelManager) -> NotebookClient:
    """A client for a new kernel of Colab's runtime (sync or async manager)."""
    km = manager(
        kernel_name="colab-sim",
        kernel_spec_manager=KernelSpecManager(
            kernel_dirs=runtime["kernel_dirs"]
        ),
    )
    return NotebookClient(
        nb, km=km, timeout=900, kernel_name="colab-sim", allow_errors=False
    )


def execute(nb, runtime: dict, cwd: Path) -> None:
    with_kernel_retries(
        lambda: colab_client(nb, runtime).execute(
            env=runtime["env"], cwd=str(cwd)
        )
    )


# tfp-nightly is TensorFlow Probability's nightly build: it writes the same
# `tensorflow_probability` files over Colab's 0.25 release (whose JAX substrate
# cannot import with the pinned jax), and pip does not notice. Any other
# package of Colab's whose files change fails the test.
SAME_FILES = {"tensorflow-probability": "tfp-nightly"}


def touched_files(before: dict, after: dict) -> dict[str, int]:
    """Colab's distributions whose files changed, with how many changed."""
    touched = {}
    for name, dist in before.items():
        now = after.get(name, {"files": {}})["files"]
        differ = [f for f, stat in dist["files"].items() if now.get(f) != stat]
        if differ:
            touched[name] = len(differ)
    return touched


@pytest.mark.colab
def test_colab_keeps_its_own_packages(colab):
    pins, _, hold = setup_cell_lists()
    pins, hold = {normal(n) for n in pins}, {normal(n) for n in hold}
    before, after = colab["before"], colab["after"]
    version = {n: d["version"] for n, d in before.items()}
    new = {n for n, d in after.items() if d["version"] != version.get(n)}
    touched = touched_files(
        {n: d for n, d in before.items() if n not in new}, after
    )
    lines = [
        f"  {n}: {before.get(n, {}).get('version', '(new)')} -> "
        f"{after[n]['version']} ({megabytes(after[n]):.1f} MB)"
        for n in sorted(new)
    ]
    lines += [f"  {k} files of {n} overwritten" for n, k in touched.items()]
    total = sum(megabytes(after[n]) for n in new)
    log(f"the set-up cell installed {total:.0f} MB:", *lines)
    assert set(before) <= set(after), set(before) - set(after)
    assert not hold & (new | set(touched)), hold & (new | set(touched))
    assert {n for n in new if n in before} <= pins
    for name in touched:
        assert SAME_FILES.get(name) in new, f"{name}'s files were changed"
    assert "google-colab" in after and "myst-nb" not in after


@pytest.mark.colab
def test_colab_pip_check_is_clean(colab):
    result = run([str(colab["python"]), "-m", "pip", "check"])
    log(f"pip check: {result.stdout.strip()} {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout


def has_error(cell) -> bool:
    outputs = cell.get("outputs", [])
    return any(o.get("output_type") == "error" for o in outputs)


async def run_on_colab(notebook: Path, runtime: dict) -> Exception | None:
    """Run a notebook in a kernel of Colab's runtime; its error, if any."""
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    try:
        await with_kernel_retries_async(
            lambda: colab_client(nb, runtime, AsyncKernelManager).async_execute(
                env=runtime["env"], cwd=str(notebook.parent)
            )
        )
    except CellExecutionError as error:
        seconds = time.perf_counter() - start
        failed = [c for c in nb.cells if has_error(c)]
        where = failed[0].source.splitlines()[0] if failed else "?"
        evalue = re.sub(r"\x1b\[[0-9;]*m", "", error.evalue).strip()
        log(
            f"{notebook.name}: FAILED after {seconds:.0f} s, in the cell "
            f"starting {where!r}: {error.ename}: {evalue[:1500]}"
        )
        return error
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    log(
        f"{notebook.name}: quick mode in {time.perf_counter() - start:.0f} s"
        f" (set-up cell: {printed.strip()})"
    )
    return None


@pytest.fixture(scope="module")
def colab_runs(colab, request) -> dict[Path, Exception | None]:
    """The notebooks of this session's tests, in the one runtime, COLAB_JOBS
    at a time (as a reader's notebooks share a Colab session: the first cell
    installs, later ones find everything there)."""
    notebooks = [
        item.callspec.params["notebook"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_notebook_runs_on_colab"
    ]

    async def run_all() -> list:
        slots = asyncio.Semaphore(COLAB_JOBS)

        async def run(notebook: Path) -> Exception | None:
            async with slots:
                return await run_on_colab(notebook, colab)

        return await asyncio.gather(*map(run, notebooks))

    start = time.perf_counter()
    errors = asyncio.run(run_all())
    log(
        f"{len(notebooks)} notebooks, {COLAB_JOBS} at a time, in "
        f"{time.perf_counter() - start:.0f} s"
    )
    return dict(zip(notebooks, errors))


@pytest.mark.colab
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_colab(colab_runs, notebook):
    if colab_runs[notebook] is not None:
        raise colab_runs[notebook]


# ------------------------------------------ (4) Colab's GPU runtime

COLAB_GPU_LIST = STAND_IN / "pip-freeze.gpu.txt"  # Colab's GPU list, as above


@pytest.mark.colab
def test_gpu_runtime_has_the_cuda_libraries_jax_needs(tmp_path):
    """On a GPU runtime the cell installs jax[cuda12], whose plug-in asks for
    CUDA libraries (nvidia-*) that Colab's torch needs too. The cell holds the
    runtime's nvidia-* versions, so every one the plug-in asks for must be
    there at a version it accepts (else pip stops, on purpose)."""
    from packaging.requirements import Requirement

    pins, _, _ = setup_cell_lists()
    plugin = f"jax-cuda12-plugin[with-cuda]=={pins['jax']}"
    report = tmp_path / "report.json"
    result = run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet"]
        + ["--no-deps", "--ignore-installed", "--only-binary=:all:"]
        + ["--python-version", "3.13", "--target", str(tmp_path / "t")]
        + ["--platform", "manylinux_2_27_x86_64", "--report", str(report)]
        + [plugin]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (found,) = json.loads(report.read_text())["install"]
    gpu = colab_versions(COLAB_GPU_LIST)
    marker_env = {"extra": "with-cuda", "sys_platform": "linux"}
    cuda = [
        Requirement(r)
        for r in found["metadata"]["requires_dist"]
        if normal(r).startswith("nvidia-")
    ]
    cuda = [
        r for r in cuda if r.marker is None or r.marker.evaluate(marker_env)
    ]
    assert cuda, found["metadata"]["requires_dist"]
    for req in cuda:
        have = gpu.get(normal(req.name))
        log(f"GPU runtime: {req.name}{req.specifier} needed, has {have}")
        assert have and req.specifier.contains(have, prereleases=True), (
            f"{plugin} needs {req}; Colab's GPU runtime has {have}"
        )


if __name__ == "__main__":  # `make setup`: build (or find) the cached base
    print(cached_base())
