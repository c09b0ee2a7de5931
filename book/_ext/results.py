"""The book's published numbers, kept and compared.

`book/results.json` keeps every value the chapters glue (figures and tables
aside) as the last full build computed it: its name, chapter, value and a
tolerance (0: exact, for counts, settings and text; a number: an absolute
tolerance; "N%": a relative one), from the rules in TOLERANCES below.
After `make book`:

    python book/_ext/results.py update   # `make results`: refresh the file
    python book/_ext/results.py compare  # what moved beyond its tolerance

`make book` runs `compare` after the build (`--strict`, with
STRICT_RESULTS=1, fails if anything moved). As a Sphinx extension, the
directive `{results-comparison}` shows the same comparison, for the build
that renders it, on the reproducibility appendix.
"""

import argparse
import ast
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "book" / "results.json"
BUILD = ROOT / "_build"
# A glued value's tolerance. Counts, settings and text are exact: a value
# whose numbers are all integers, or a float that a person typed (at most four
# significant digits, unless its name is MEASURED's). Else the first rule
# whose pattern its name matches:
# timings vary with the machine and its load (and with how many notebooks ran
# at once); measured values by their Monte Carlo noise (with 10,000 to 50,000
# samples, a standard error of about 0.005 on a mode weight). Else DEFAULT.
TOLERANCES = [
    (
        r"wall_time|second|_ms_|^jit_|step_cost|cost_ratio|speedup|gflops$",
        "50%",
    ),
    (r"level_excess", "50%"),  # a network's small excess over a minimum
    (r"_weights|_dps_top_", 0.01),  # mode weights
    (r"sde_gap|learned_gain|_ess_(min|max)$", 0.02),  # coverage gaps, shares
    (r"accuracy", 0.005),
    (r"nll|log_z|nce_c|_objective|_se$", 0.01),  # nats
    (r"tv|w1|fd_", "10%"),  # distances to the truth, and their floors
    (r"_z$", 1.0),  # z-scores
    (r"_error$", "100%"),  # errors of an approximation
    (r"mass_outside", "900%"),  # tiny tail masses: a factor of 10
    (r"_log10$", 1.0),  # a decimal logarithm: a factor of 10
    (SHARES := r"_valid|_top10_k|ar_top10|_free_start|near_fraction", 0.01),
]
# Timings and rates are compared at one speed: this machine's speed drifts
# by the hour (one core's float32 matmul rate measured 81 to 178 GFLOP/s in
# one week), so a time is scaled to a reference core of REFERENCE_GFLOPS by
# the one-core matmul rate measured when its notebook ran (time x rate /
# REFERENCE_GFLOPS; a rate x REFERENCE_GFLOPS / rate). A slow hour alone then
# moves nothing.
REFERENCE_GFLOPS = 150.0
TIMES = r"wall_time|seconds|_ms_|_ms$"
RATES = r"gflops$|per_second$"
# Measured shares and accuracies can land on four digits (counts out of 1,000
# or 10,000 samples): never taken for typed settings.
MEASURED = rf"accuracy(?!_bar)|{SHARES}"
DEFAULT = "5%"
ABOUT = (
    "Every value the chapters glue (figures and tables aside), as the last "
    "full build computed it (make book; then make results). tolerance: 0 "
    "exact, a number absolute, 'N%' relative (rules: book/_ext/results.py)."
)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d*)?(?:[eE][-+]?\d+)?")


def value_of(output: dict):
    """A glued value as JSON: the Python literal of its text, or the text."""
    text = output["data"]["text/plain"]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, tuple):
        value = list(value)
    return value if valid(value) else text


def valid(value) -> bool:
    if isinstance(value, list):
        return all(valid(v) for v in value)
    return isinstance(value, int | float | str | bool | None)


def glued(build: Path) -> dict[tuple[str, str], object]:
    """(chapter, name) -> value, for every glued value in a build's notebooks
    (the `.glue.json` files myst-nb writes beside the executed notebooks)."""
    found = {}
    for path in sorted((build / "jupyter_execute").rglob("*.glue.json")):
        docname = path.relative_to(build / "jupyter_execute")
        chapter = docname.name.removesuffix(".glue.json")
        if not (ROOT / docname.parent / f"{chapter}.ipynb").exists():
            continue  # a page that is no longer in the book
        for name, output in json.loads(path.read_text()).items():
            if set(output["data"]) == {"text/plain"}:  # not a figure or table
                found[chapter, name] = value_of(output)
    return found


def tolerance_for(name: str, value):
    numbers, _ = numbers_and_text(value)
    typed = isinstance(value, float) and float(f"{value:.4g}") == value
    if all(x.is_integer() for x in numbers) or (
        typed and not re.search(MEASURED, name)
    ):
        return 0
    for pattern, tolerance in TOLERANCES:
        if re.search(pattern, name):
            return tolerance
    return DEFAULT


def numbers_and_text(value) -> tuple[list[float], str]:
    """A value's numbers, and what is left when they are taken out."""
    if isinstance(value, bool) or value is None:
        return [], repr(value)
    if isinstance(value, int | float):
        return [float(value)], "#"
    if isinstance(value, list):
        parts = [numbers_and_text(v) for v in value]
        return [x for xs, _ in parts for x in xs], repr([t for _, t in parts])
    found = [float(n.replace(",", "")) for n in NUMBER.findall(value)]
    return found, NUMBER.sub("#", value)


def within(old, new, tolerance) -> bool:
    (xs, text), (ys, new_text) = numbers_and_text(old), numbers_and_text(new)
    if text != new_text or len(xs) != len(ys):
        return False
    if isinstance(tolerance, str):  # "N%"
        r = float(tolerance.rstrip("%")) / 100
        return all(abs(y - x) <= r * abs(x) for x, y in zip(xs, ys))
    return all(abs(y - x) <= tolerance for x, y in zip(xs, ys))


def speeds(record: dict) -> dict[str, float]:
    """Each chapter's one-core matmul rate (GFLOP/s) when it last ran on a
    CPU, from an execution record (book/_ext/execute.py's)."""
    run = record.get("last_full_run", record.get("last_run", {}))
    rates = run.get("matmul_gflops", {})
    if rates.get("platform") != "cpu":
        return {}
    by_chapter = dict.fromkeys(run.get("notebooks", {}), rates["one_core"])
    return {**by_chapter, **record.get("notebook_matmul_gflops", {})}


def at_reference(name: str, value, speed: float | None):
    """A timing or rate as it would be on a REFERENCE_GFLOPS core."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not speed:
        return value
    if re.search(TIMES, name):
        return value * speed / REFERENCE_GFLOPS
    if re.search(RATES, name):
        return value * REFERENCE_GFLOPS / speed
    return value


def scalable(name: str) -> bool:
    return bool(re.search(f"{TIMES}|{RATES}", name))


def compare(
    recorded: dict, current: dict, current_speeds: dict | None = None
) -> list[dict]:
    """Every recorded value that moved beyond its tolerance or is gone, and
    every glued value that the file does not have. Timings and rates are
    compared at one speed when both runs' speeds are known (`speeds`)."""
    rows = []
    kept = {(e["chapter"], e["name"]): e for e in recorded["values"]}
    old_speeds = speeds(recorded.get("execution", {}))
    new_speeds = current_speeds or {}
    for key, entry in kept.items():
        new = current.get(key, "(not glued)")
        old, (chapter, name) = entry["value"], key
        both = old_speeds.get(chapter) and new_speeds.get(chapter)
        if both and scalable(name) and key in current:
            old = at_reference(name, old, old_speeds[chapter])
            new = at_reference(name, new, new_speeds[chapter])
        if key not in current or not within(old, new, entry["tolerance"]):
            scaled = old is not entry["value"]
            rows.append({**entry, "value": old, "now": new, "scaled": scaled})
    for (chapter, name), value in current.items():
        if (chapter, name) not in kept:
            row = {"chapter": chapter, "name": name, "tolerance": "-"}
            rows.append({**row, "value": "(not recorded)", "now": value})
    return rows


def short(value, width: int = 24) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list):
        text = ", ".join(short(v) for v in value)
    return text if len(text) <= width else text[: width - 1] + "…"


COLUMNS = ["chapter", "name", "value", "now", "tolerance"]


def cells(row: dict, width: int = 24) -> list[str]:
    name = row["name"]
    if row.get("scaled"):
        name += f" (at {REFERENCE_GFLOPS:.0f} GFLOP/s)"
    return [row["chapter"][:2], name] + [
        short(row[c], width) for c in COLUMNS[2:]
    ]


def table(rows: list[dict]) -> str:
    """Rows as a plain-text table."""
    lines = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
        for line in lines
    )


def execution_record(build: Path) -> dict:
    """What book/_ext/execute.py recorded of the build's execution."""
    path = build / "execution.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update(build: Path, file: Path) -> dict:
    current = glued(build)
    if not current:
        sys.exit(f"no glued values under {build}/jupyter_execute: make book")
    record = execution_record(build)
    if record.get("last_run", {}).get("quick"):
        sys.exit(f"{build} was executed in quick mode: make book")
    results = {
        "about": ABOUT,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "execution": record,
        "values": [
            {
                "chapter": chapter,
                "name": name,
                "value": value,
                "tolerance": tolerance_for(name, value),
            }
            for (chapter, name), value in current.items()
        ],
    }
    # Indented, but one value a line (readable diffs).
    head = json.dumps(
        {k: v for k, v in results.items() if k != "values"}, indent=1
    )
    lines = ",\n".join(
        json.dumps(e, ensure_ascii=False) for e in results["values"]
    )
    head = head.removesuffix("\n}")
    file.write_text(f'{head},\n "values": [\n{lines}\n]}}\n')
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["update", "compare"])
    parser.add_argument("--build", type=Path, default=BUILD)
    parser.add_argument("--file", type=Path, default=FILE)
    parser.add_argument("--strict", action="store_true", help="fail if moved")
    args = parser.parse_args(argv)
    if args.command == "update":
        results = update(args.build, args.file)
        print(f"{args.file}: {len(results['values'])} values")
        return 0
    current = glued(args.build)
    speeds_now = speeds(execution_record(args.build))
    rows = compare(json.loads(args.file.read_text()), current, speeds_now)
    if not rows:
        print(f"every glued value is within its tolerance of {args.file}")
        return 0
    print(f"{len(rows)} glued values moved from {args.file}:\n{table(rows)}")
    return 1 if args.strict else 0


# ----------------------------------------------------------- Sphinx


class placeholder(nodes.General, nodes.Element):
    """Filled in once every page has been read (see `fill`)."""


def directive(kind: str) -> type[SphinxDirective]:
    class Directive(SphinxDirective):
        def run(self) -> list[nodes.Node]:
            self.env.note_dependency(str(FILE))
            return [placeholder(kind=kind)]

    return Directive


def docutils_table(head: list[str], body: list[list[str]]) -> nodes.table:
    def line(texts: list[str]) -> nodes.row:
        entries = (nodes.entry("", nodes.paragraph(text=t)) for t in texts)
        return nodes.row("", *entries)

    group = nodes.tgroup(cols=len(head))
    group += [nodes.colspec(colwidth=1) for _ in head]
    group += nodes.thead("", line(head))
    group += nodes.tbody("", *(line(texts) for texts in body))
    return nodes.table("", group)


def comparison(build: Path) -> list[nodes.Node]:
    recorded = json.loads(FILE.read_text())
    rows = compare(recorded, glued(build), speeds(execution_record(build)))
    text = (
        f"Of the {len(recorded['values'])} values in book/results.json "
        f"(updated {recorded['updated'][:10]}), "
    )
    if not rows:
        return [nodes.paragraph(text=text + "none moved in this build.")]
    text += f"{len(rows)} moved in this build beyond their tolerance"
    if os.environ.get("BOOK_QUICK") == "1":
        text += " (this build ran in quick mode, with small budgets)"
    body = [cells(r, 40) for r in rows]
    return [nodes.paragraph(text=text + ":"), docutils_table(COLUMNS, body)]


def execution(build: Path) -> list[nodes.Node]:
    record = execution_record(build)
    run = record.get("last_full_run", record.get("last_run"))
    if not run:
        text = (
            "This build has no record of a parallel execution: its notebooks "
            "were executed by the tests, or one at a time by jupyter-book."
        )
    else:
        total = sum(run["notebooks"].values())
        text = (
            f"The last execution of the book ({run['finished'][:16]} UTC) ran "
            f"{len(run['notebooks'])} notebooks, {run['jobs']} at a time, "
            f"in {run['seconds']:.0f} s of wall time (one after another, "
            f"their own times add up to {total:.0f} s)."
        )
    if not run or not speeds(record):  # not run, or not on a CPU
        return [nodes.paragraph(text=text)]
    one_core = run["matmul_gflops"]["one_core"]
    text += (
        f" This machine's speed drifts by the hour, so times are also shown "
        f"at one speed, that of a reference core that multiplies float32 "
        f"matrices at {REFERENCE_GFLOPS:.0f} GFLOP/s (measured time x the "
        f"one-core matmul rate of the run that executed the notebook / "
        f"{REFERENCE_GFLOPS:.0f}); this run's core reached {one_core:.0f} "
        f"GFLOP/s, so its wall time at the reference speed is "
        f"{run['seconds'] * one_core / REFERENCE_GFLOPS:.0f} s. Each "
        f"notebook's time, kernel start included:"
    )
    head = ["notebook", "seconds", f"at {REFERENCE_GFLOPS:.0f} GFLOP/s"]
    body = [
        [name, f"{seconds:.0f}", f"{seconds * one_core / REFERENCE_GFLOPS:.0f}"]
        for name, seconds in sorted(run["notebooks"].items())
    ]
    return [nodes.paragraph(text=text), docutils_table(head, body)]


def efficiency(build: Path) -> list[nodes.Node]:
    """Each training chapter's GFLOP/s beside the machine's matmul rate."""
    values = glued(build)
    record = execution_record(build)
    run = record.get("last_full_run", record.get("last_run", {}))
    rates = run.get("matmul_gflops", {})
    head = ["chapter", "GFLOP per step", "steps per s", "GFLOP/s"]
    if rates:
        head += ["of 1 core's matmul", "of all cores' matmul"]
    body = []
    for chapter in sorted({c for c, _ in values}):
        number = chapter[:2]
        step = values.get((chapter, f"ch{number}_step_flops"))
        rate = values.get((chapter, f"ch{number}_steps_per_second"))
        gflops = values.get((chapter, f"ch{number}_gflops"))
        if None in (step, rate, gflops):
            continue  # no training loop
        row = [chapter, f"{step / 1e9:.3g}", f"{rate:.3g}", f"{gflops:.3g}"]
        if rates:
            row += [
                f"{gflops / rates['one_core']:.0%}",
                f"{gflops / rates['all_cores']:.0%}",
            ]
        body.append(row)
    if rates:
        text = (
            f"A float32 2,048 x 2,048 matmul, timed by this build before its "
            f"notebooks ran, reached {rates['one_core']:.0f} GFLOP/s on one "
            f"core (XLA single-threaded) and {rates['all_cores']:.0f} GFLOP/s "
            f"on all cores ({rates['platform']})."
        )
    else:
        text = (
            "This build has no measurement of the machine's matmul rate (its "
            "notebooks were not executed by book/_ext/execute.py)."
        )
    if os.environ.get("BOOK_QUICK") == "1":
        text += " Its chapters ran in quick mode (short, mostly compiling)."
    table = [docutils_table(head, body)] if body else []
    return [nodes.paragraph(text=text), *table]


FILLERS = {"comparison": comparison, "execution": execution}
FILLERS["efficiency"] = efficiency


def fill(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    build = Path(app.outdir).parent
    for node in doctree.findall(placeholder):
        node.replace_self(FILLERS[node["kind"]](build))


def rewrite(app: Sphinx, env) -> list[str]:
    """Pages with a placeholder: their input is every other page."""
    return [
        docname
        for docname in env.found_docs
        if Path(env.doc2path(docname)).suffix == ".md"
        and "{results-" in Path(env.doc2path(docname)).read_text()
    ]


def setup(app: Sphinx) -> dict:
    app.add_node(placeholder)
    app.add_directive("results-comparison", directive("comparison"))
    app.add_directive("results-execution", directive("execution"))
    app.add_directive("results-efficiency", directive("efficiency"))
    app.connect("doctree-resolved", fill)
    app.connect("env-get-updated", rewrite)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.exit(main())
