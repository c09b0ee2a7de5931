"""Chapters 7 and 8 redraw chapter 5's held-out points (its seed, its key
splits, its sampler) to score the true density on them, and chapter 8 draws
chapter 7's own held-out points again. These tests run the code that draws
the points, taken from the notebooks themselves, and fail when a copy stops
matching its source: say chapter 5 splits its key once more before its data,
or changes its sampler, and the copies in chapters 7 and 8 do not follow.

The code is taken by a backward slice of each notebook's top-level
statements: from a target (chapter 5's `x_test`, a call of
`chapter5_test_points`), every earlier statement that binds a name the
target needs, and so on back to the settings cell and the imports. Nothing
else of a notebook runs, so the tests take seconds.
"""

import ast
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from IPython.core.inputtransformer2 import TransformerManager

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CH5 = NOTEBOOKS / "05_energy_based_models.ipynb"
CH7 = NOTEBOOKS / "07_fast_samplers_likelihood.ipynb"
CH8 = NOTEBOOKS / "08_flow_matching.ipynb"


def statements(notebook: Path) -> list[ast.stmt]:
    """The top-level statements of the notebook's code cells, in order
    (IPython's magics turned into Python; the Colab cell left out)."""
    transform = TransformerManager().transform_cell
    body = []
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "google.colab" in source:
            continue
        body += ast.parse(transform(source)).body
    return body


def bound(node: ast.stmt) -> set[str]:
    """The names a top-level statement binds."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def used(node: ast.AST) -> set[str]:
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def evaluate(notebook: Path, target: str, quick: bool):
    """The value of the expression `target` (a call found in the notebook,
    or a name it binds), after the statements it depends on: a backward
    slice, run with QUICK fixed instead of read from the environment."""
    body = statements(notebook)
    expression = ast.parse(target, mode="eval")
    # the target's position: the first statement that binds or calls it
    name = target.split("(")[0]
    end = next(
        i
        for i, node in enumerate(body)
        if name in bound(node) or target in ast.unparse(node)
    )
    needed = used(expression)
    if name in bound(body[end]):  # a name: the statement that binds it too
        end += 1
    kept = []
    for node in reversed(body[:end]):
        names = bound(node) - {"QUICK"}
        if names & needed:
            kept.append(node)
            needed = (needed - names) | used(node)
    module = ast.Module(body=kept[::-1], type_ignores=[])
    namespace = {"QUICK": quick}
    exec(compile(module, str(notebook), "exec"), namespace)
    return np.asarray(eval(compile(expression, target, "eval"), namespace))


@functools.cache
def chapter5_points(quick: bool) -> np.ndarray:
    return evaluate(CH5, "x_test", quick)


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_chapter7_redraws_chapter5_held_out_points(quick):
    # chapter 7 redraws chapter 5's full-mode points in both of its modes
    copy = evaluate(CH7, "chapter5_test_points()", quick)
    np.testing.assert_allclose(copy, chapter5_points(False), atol=1e-5)


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_chapter8_redraws_chapter5_held_out_points(quick):
    # chapter 8 redraws chapter 5's points in the same mode as its own
    copy = evaluate(CH8, "chapter5_test_points()", quick)
    np.testing.assert_allclose(copy, chapter5_points(quick), atol=1e-5)


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_chapter8_draws_chapter7_held_out_points(quick):
    ch7, ch8 = evaluate(CH7, "x_test", quick), evaluate(CH8, "x_test", quick)
    np.testing.assert_array_equal(ch8, ch7)
