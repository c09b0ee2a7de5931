"""The chapters' exercises: every checked exercise's check rejects wrong
answers and passes the reference solution.

Nothing runs a whole notebook: the exercise cells are taken from the notebook
by their tags (`exercise-helpers`, `exercise-stub`, `exercise-check`,
`exercise-solution`; cell metadata `exercise` names the exercise's label) and
executed, in quick mode, in a namespace that holds only the chapter's imports
(its imports cell) and a `glue` that records. A wrong answer is the reference
solution with one deliberate mistake (an off-by-one step, a wrong sign, a
missing factor), made by replacing one piece of its source: the check must
print `not yet`, and the glued verdict must be False.
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ROLES = ("helpers", "stub", "check", "solution")

# label: [(what is wrong, piece of the solution's source, its replacement)]
WRONG = {
    "ex-01-1": [
        (
            "off by one step: the average before the update",
            "return m, m",
            "return m, m_prev",
        ),
        ("a missing factor (1 - beta)", "(1 - beta) * x_t", "x_t"),
    ],
    "ex-01-2": [
        ("a missing factor 2", "** 2", "** 2 / 2"),
        ("a wrong sign", "return (", "return -("),
    ],
    "ex-02-1": [
        ("a missing factor 1/B", ") / len(labels)", ")"),
        (
            "a wrong sign",
            "jax.nn.softmax(logits) - one_hot",
            "one_hot - jax.nn.softmax(logits)",
        ),
    ],
    "ex-02-2": [
        ("a missing factor 2: c = 1", "np.sqrt(2.0)", "np.sqrt(1.0)"),
        ("c squared instead of c", "np.sqrt(2.0)", "2.0"),
    ],
    "ex-03-1": [
        (
            "the weights, not the responsibilities",
            "responsibilities = jax.nn.softmax(log_terms, axis=1)",
            "responsibilities = weights",
        ),
        ("a wrong sign", "(means - x[:, None])", "(x[:, None] - means)"),
        ("a missing square: / s, not / s^2", "/ sds**2", "/ sds"),
    ],
    "ex-03-2": [
        ("no bias: the target's variance", "s2 / (1 - eta / (4 * s2))", "s2"),
        (
            "a missing factor 1/2 in the drift",
            "eta / (4 * s2)",
            "eta / (2 * s2)",
        ),
    ],
    "ex-04-1": [
        (
            "a wrong sign: the target +z/sigma",
            "+ noise / sigma",
            "- noise / sigma",
        ),
        ("a missing factor 1/sigma", "+ noise / sigma", "+ noise"),
    ],
    "ex-04-2": [
        ("sigma for sigma^2", "sigma**2 * score_fn", "sigma * score_fn"),
        ("a wrong sign", "x_noisy + sigma**2", "x_noisy - sigma**2"),
    ],
    "ex-05-1": [
        (
            "a wrong sign on the model's term",
            "features(x).mean(0) - model_weights",
            "features(x).mean(0) + model_weights",
        ),
        (
            "no model term: log Z forgotten",
            "features(x).mean(0) - model_weights @ features(grid)",
            "features(x).mean(0)",
        ),
    ],
    "ex-05-2": [
        (
            "a wrong sign on the noise density",
            "+ c - log_noise(x)",
            "+ c + log_noise(x)",
        ),
        (
            "the noise term without its minus",
            "log_sigmoid(-log_odds(x_noise))",
            "log_sigmoid(log_odds(x_noise))",
        ),
    ],
    "ex-06-1": [
        (
            "the SNR alone: 1 missing",
            "1 / (1 - alpha_bar)",
            "alpha_bar / (1 - alpha_bar)",
        ),
        ("the epsilon-loss's weight", "1 / (1 - alpha_bar)", "1 / alpha_bar"),
    ],
    "ex-06-2": [
        (
            "off by one step: the noise kept at level t",
            "jnp.sqrt(1 - alpha_bar_s) * eps_hat",
            "jnp.sqrt(1 - alpha_bar_t) * eps_hat",
        ),
        (
            "the coefficients swapped",
            "jnp.sqrt(alpha_bar_s) * x0_hat + jnp.sqrt(1 - alpha_bar_s)",
            "jnp.sqrt(1 - alpha_bar_s) * x0_hat + jnp.sqrt(alpha_bar_s)",
        ),
    ],
    "ex-06-3": [
        ("off by one: one step more", "    return n\n", "    return n + 1\n"),
        ("off by one: one step fewer", "    return n\n", "    return n - 1\n"),
    ],
    "ex-07-1": [
        (
            "1^T J u, not u^T J u",
            "jnp.sum(u * jax.jvp(f, (x,), (u,))[1])",
            "jnp.sum(jax.jvp(f, (x,), (u,))[1])",
        ),
        (
            "probes in {0, 1}, not {-1, 1}",
            "jax.random.rademacher(key, (n_probes, len(x)), dtype=x.dtype)",
            (
                "jax.random.bernoulli(key, 0.5, (n_probes, len(x)))"
                ".astype(x.dtype)"
            ),
        ),
    ],
    "ex-07-2": [
        ("a missing factor 1/2", "return -0.5 * beta_t", "return -beta_t"),
        ("the score's term forgotten", "(1 - 1 / v)", "1"),
    ],
    "ex-08-1": [
        (
            "a wrong sign: exp(+C / epsilon)",
            "(g[None] - cost)",
            "(g[None] + cost)",
        ),
        (
            "half an iteration: the columns never updated",
            "        g = epsilon * (log_b",
            "        _ = epsilon * (log_b",
        ),
    ],
    "ex-08-2": [
        ("a wrong sign on the mean", "return -m + slope", "return m + slope"),
        (
            "s for s^2 in the covariance",
            "(t - (1 - t) * s**2)",
            "(t - (1 - t) * s)",
        ),
    ],
    "ex-09-1": [
        (
            "a wrong sign: + w / tau^2",
            "(1 + w) / s**2 - w / tau**2",
            "(1 + w) / s**2 + w / tau**2",
        ),
        (
            "the mean not divided by the precision",
            "return linear / precision,",
            "return linear * s**2,",
        ),
    ],
    "ex-09-2": [
        ("a missing factor 2", "- 2 * cross.sum()", "- cross.sum()"),
        (
            "the product's square root taken entrywise",
            "np.sqrt(np.clip(np.linalg.eigvalsh(root @ cov2 @ root), 0, None))",
            "np.sqrt(np.clip(np.diag(cov1 @ cov2), 0, None))",
        ),
    ],
    "ex-10-1": [
        (
            "the linear schedule's weight 1/t",
            "return (jnp.pi / 2) / jnp.tan(jnp.pi * t / 4)",
            "return 1 / t",
        ),
        (
            "a missing factor pi/2",
            "return (jnp.pi / 2) / jnp.tan",
            "return 1 / jnp.tan",
        ),
        (
            "pi t / 2 for the half angle",
            "jnp.tan(jnp.pi * t / 4)",
            "jnp.tan(jnp.pi * t / 2)",
        ),
    ],
    "ex-10-2": [
        ("a missing factor 1/k", "/ (k * same_size)", "/ same_size"),
        (
            "marginals, not conditionals",
            "conditional = joint / joint.sum(axis=i, keepdims=True)",
            (
                "conditional = p.sum(keepdims=True, "
                "axis=tuple(j for j in range(length) if j != i))"
            ),
        ),
    ],
    "ex-11-1": [
        ("sigma for sigma^2", "+ sigma**2", "+ sigma"),
        (
            "the gain without the prior covariance",
            "gain = cov @ a / s2",
            "gain = a / s2",
        ),
    ],
    "ex-11-2": [
        (
            "multinomial: one uniform per point",
            "points = (jax.random.uniform(key) + jnp.arange(k)) / k",
            "points = jnp.sort(jax.random.uniform(key, (k,)))",
        ),
        (
            "off by one: points (u + j + 1) / K",
            "+ jnp.arange(k)) / k",
            "+ jnp.arange(1, k + 1)) / k",
        ),
    ],
    "ex-12-1": [
        ("the quadratic term forgotten", " + lam**2 * spread / 2", ""),
        ("a missing factor 1/2", "lam**2 * spread / 2", "lam**2 * spread"),
    ],
    "ex-12-2": [
        ("the quadratic term forgotten", " + lam**2 * spread / 2", ""),
        ("a missing factor 1/2", "lam**2 * spread / 2", "lam**2 * spread"),
    ],
}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def exercise_cells(path: Path) -> tuple[list[str], dict[str, dict]]:
    """The helper cells, and each exercise's stub, check and solution."""
    helpers, exercises = [], {}
    for cell in cells(path):
        tags = cell.get("metadata", {}).get("tags", [])
        role = next((r for r in ROLES if f"exercise-{r}" in tags), None)
        if role == "helpers":
            helpers.append(source(cell))
        elif role is not None:
            label = cell["metadata"]["exercise"]
            exercises.setdefault(label, {})[role] = source(cell)
    return helpers, exercises


def labels(path: Path) -> list[str]:
    """The labels of the chapter's exercise directives, in order."""
    text = "\n".join(
        source(c) for c in cells(path) if c["cell_type"] == "markdown"
    )
    found = re.findall(r":::\{exercise\}[^\n]*\n:label: (\S+)", text)
    return found


def imports_cell(path: Path) -> str:
    """The chapter's imports: its first code cell after the Colab cell."""
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    return source(code[1])


CHECKED = [
    (path, label)
    for path in NOTEBOOKS
    for label, parts in exercise_cells(path)[1].items()
    if "check" in parts
]


def ids(case) -> str:
    return case[1]


class Glue(dict):
    def __call__(self, name: str, value, display: bool = True) -> None:
        self[name] = value


def namespace(path: Path) -> dict:
    """The chapter's imports, quick mode, a recording glue, the helpers."""
    ns = {"__name__": "exercises"}
    exec(imports_cell(path), ns)
    ns.update(QUICK=True, SEED=0, glue=Glue())
    for helper in exercise_cells(path)[0]:
        exec(helper, ns)
    return ns


def check_call(check_source: str) -> tuple[str, str]:
    """The check cell's last line, check_x(stub): the two names."""
    last = ast.parse(check_source).body[-1]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
    return last.value.func.id, last.value.args[0].id


def glued_verdict(ns: dict, label: str):
    """The verdict the solution cell glued: ex_NN_K_passes."""
    number = label.removeprefix("ex-").replace("-", "_")
    return ns["glue"][f"ex_{number}_passes"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_has_exercises_one_checked(notebook):
    found = labels(notebook)
    _, exercises = exercise_cells(notebook)
    assert 2 <= len(found) <= 4, found
    assert any("check" in exercises.get(label, {}) for label in found)
    for label, parts in exercises.items():
        assert label in found, label
        if "check" in parts:
            assert {"stub", "check", "solution"} <= set(parts), label


def test_the_book_has_at_least_25_exercises():
    assert sum(len(labels(p)) for p in NOTEBOOKS) >= 25


def test_every_checked_exercise_has_wrong_answers():
    assert {label for _, label in CHECKED} <= set(WRONG)


@pytest.mark.parametrize("case", CHECKED, ids=ids)
def test_stub_is_not_attempted_and_solution_passes(case, capsys):
    path, label = case
    parts = exercise_cells(path)[1][label]
    ns = namespace(path)
    exec(parts["stub"], ns)
    exec(parts["check"], ns)
    assert "not attempted" in capsys.readouterr().out
    check, stub = check_call(parts["check"])
    assert ns[check](ns[stub])[0] is None
    capsys.readouterr()
    exec(parts["solution"], ns)
    out = capsys.readouterr().out
    assert glued_verdict(ns, label) is True, out
    assert out.startswith("passes: "), out


@pytest.mark.parametrize("case", CHECKED, ids=ids)
def test_wrong_answers_are_rejected(case, capsys):
    path, label = case
    parts = exercise_cells(path)[1][label]
    ns = namespace(path)
    exec(parts["stub"], ns)
    exec(parts["check"], ns)
    capsys.readouterr()
    for what, piece, replacement in WRONG[label]:
        assert parts["solution"].count(piece) == 1, (label, piece)
        wrong = parts["solution"].replace(piece, replacement)
        exec(wrong, ns)
        out = capsys.readouterr().out
        assert glued_verdict(ns, label) is False, (label, what, out)
        assert out.startswith("not yet: "), (label, what, out)
