"""The book's house rules, checked on the repository itself."""

import json
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


def ruff(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ruff", *args, "notebooks", "tests"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_ruff_lints_notebooks_and_tests():
    result = ruff("check")  # line length included: code must fit the page
    assert result.returncode == 0, result.stdout + result.stderr


def test_notebooks_and_tests_are_formatted():
    result = ruff("format", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


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
    number = notebook.name[:2]
    code = [c for c in cells(notebook) if c["cell_type"] == "code"]
    clean = all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert clean, "commit notebooks without outputs"
    source = "\n".join("".join(c["source"]) for c in code)
    quick = 'QUICK = os.environ.get("BOOK_QUICK") == "1"'
    assert quick in source, "the quick-mode switch"
    assert "%jaxtyping.typechecker beartype.beartype" in source, "type checks"
    assert "jax.random.key(SEED)" in source, "randomness from an explicit seed"
    colab = "".join(code[0]["source"])
    assert "google.colab" in colab
    assert "remove-cell" in code[0]["metadata"].get("tags", [])
    # The opening shows the headline result and the chapter's run time.
    opening = "".join(
        "".join(c["source"])
        for c in cells(notebook)[: cells(notebook).index(code[0])]
    )
    assert f"glue:figure}} ch{number}_headline" in opening
    assert f"ch{number}_wall_time" in opening
    # One checks cell, collapsed on the site but there to read.
    checks = [
        c
        for c in tagged(notebook, "hide-cell")
        if "".join(c["source"]).startswith("# Checks")
    ]
    assert len(checks) == 1, "one checks cell, tagged hide-cell"
    assert "assert" in "".join(checks[0]["source"])
    assert "bibliography" in "".join(cells(notebook)[-1]["source"])


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
