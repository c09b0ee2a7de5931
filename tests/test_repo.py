"""The book's house rules, checked on the repository itself."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def tagged(path: Path, tag: str) -> list[dict]:
    return [
        c for c in cells(path) if tag in c.get("metadata", {}).get("tags", [])
    ]


def toc_files() -> list[str]:
    """Every page of the table of contents, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    return [toc["root"]] + [
        entry["file"] for part in parts for entry in part["chapters"]
    ]


def test_ruff_lints_notebooks_and_tests():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "notebooks", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_toc_lists_every_chapter_in_order_and_only_existing_pages():
    files = toc_files()
    for file in files:
        assert any(
            (ROOT / f"{file}{ext}").exists() for ext in (".md", ".ipynb")
        ), file
    chapters = [f for f in files if f.startswith("notebooks/")]
    assert chapters == [f"notebooks/{p.stem}" for p in NOTEBOOKS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_conventions(notebook):
    code = [c for c in cells(notebook) if c["cell_type"] == "code"]
    assert all(
        not c["outputs"] and c["execution_count"] is None for c in code
    ), "commit notebooks without outputs"
    source = "\n".join("".join(c["source"]) for c in code)
    assert 'QUICK = os.environ.get("BOOK_QUICK") == "1"' in source, (
        "the quick-mode switch"
    )
    assert "jax.random.key(SEED)" in source, "randomness from an explicit seed"
    colab = "".join(code[0]["source"])
    assert "google.colab" in colab and "remove-cell" in code[0]["metadata"].get(
        "tags", []
    )
    checks = [
        c
        for c in tagged(notebook, "remove-cell")
        if "".join(c["source"]).startswith("# Checks")
    ]
    assert len(checks) == 1 and "assert" in "".join(checks[0]["source"]), (
        "one hidden checks cell"
    )
    assert "bibliography" in "".join(cells(notebook)[-1]["source"]), (
        "references at the end"
    )


def test_reproducibility_appendix_lists_every_chapter():
    appendix = (ROOT / "book" / "reproducibility.md").read_text()
    for notebook in NOTEBOOKS:
        number = notebook.name[:2]
        for key in (f"ch{number}_wall_time", f"ch{number}_device"):
            assert f"../notebooks/{notebook.name}::{key}" in appendix, (
                notebook.name,
                key,
            )
        source = "".join("".join(c["source"]) for c in cells(notebook))
        assert (
            f'glue("ch{number}_wall_time"' in source
            and f'glue("ch{number}_device"' in source
        )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_from_the_configured_repository(notebook):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"][
        "url"
    ]
    owner_repo = url.removeprefix("https://github.com/")
    colab = "".join(
        cells(notebook)[
            1 if cells(notebook)[0]["cell_type"] == "markdown" else 0
        ]["source"]
    )
    assert f"raw.githubusercontent.com/{owner_repo}/main" in colab
    jax_pin = re.search(
        r"^jax==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M
    ).group(1)
    assert f"=={jax_pin}" in colab, "the Colab cell installs the pinned jax"
