"""book/results.json: every glued value of every chapter is kept, and a value
that moved beyond its tolerance is reported (book/_ext/results.py)."""

import json
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import results  # noqa: E402

RECORDED = json.loads(results.FILE.read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def values() -> dict:
    return {(e["chapter"], e["name"]): e["value"] for e in RECORDED["values"]}


def doctored(entry: dict):
    """The entry's value, moved twice its tolerance (or by one, if exact)."""
    value, tolerance = entry["value"], entry["tolerance"]
    if isinstance(value, list):
        return [doctored({**entry, "value": v}) for v in value]
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"{value} (doctored)"
    if isinstance(tolerance, str):  # relative
        return value + 2 * float(tolerance.rstrip("%")) / 100 * abs(value) + 1
    return value + 2 * tolerance + (tolerance == 0)


def write_build(build, current: dict) -> None:
    """A build folder as `make book` leaves it: myst-nb's glue files."""
    chapters = {chapter for chapter, _ in current}
    for chapter in chapters:
        glue = {
            name: {
                "output_type": "display_data",
                "data": {"text/plain": repr(value)},
                "metadata": {"scrapbook": {"name": name, "mime_prefix": ""}},
            }
            for (c, name), value in current.items()
            if c == chapter
        }
        path = build / "jupyter_execute" / "notebooks" / f"{chapter}.glue.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(glue))


def test_every_chapter_has_its_run_time_and_device_recorded():
    recorded = values()
    for notebook in NOTEBOOKS:
        number = notebook.name[:2]
        for name in (f"ch{number}_wall_time", f"ch{number}_device"):
            assert (notebook.stem, name) in recorded, (notebook.name, name)


def test_the_same_values_are_not_reported():
    assert results.compare(RECORDED, values()) == []


def test_every_doctored_value_is_reported():
    for entry in RECORDED["values"]:
        key = entry["chapter"], entry["name"]
        rows = results.compare(RECORDED, {**values(), key: doctored(entry)})
        assert [(r["chapter"], r["name"]) for r in rows] == [key], entry


def test_a_lost_or_new_value_is_reported():
    current = values()
    lost = next(iter(current))
    del current[lost]
    current["01_jax_primitives", "new_value"] = 1.0
    rows = results.compare(RECORDED, current)
    assert {(r["chapter"], r["name"]) for r in rows} == {
        lost,
        ("01_jax_primitives", "new_value"),
    }


def cli(*args: str) -> subprocess.CompletedProcess:
    script = ROOT / "book" / "_ext" / "results.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True
    )


def test_the_commands_read_a_build_folder(tmp_path):
    """`update` and `compare --strict` (make results, make book
    STRICT_RESULTS=1) on a build folder's glue files."""
    build, file = tmp_path / "_build", tmp_path / "results.json"
    write_build(build, values())
    assert (
        cli("update", "--build", str(build), "--file", str(file)).returncode
        == 0
    )
    kept = json.loads(file.read_text())["values"]
    assert kept == RECORDED["values"]  # the same values, the same tolerances
    strict = ("compare", "--build", str(build), "--file", str(file), "--strict")
    assert cli(*strict).returncode == 0
    entry = next(e for e in kept if isinstance(e["value"], float))
    key = entry["chapter"], entry["name"]
    write_build(build, {**values(), key: doctored(entry)})
    result = cli(*strict)
    assert result.returncode == 1 and entry["name"] in result.stdout
    assert cli(*strict[:-1]).returncode == 0  # reported, not failed


def test_timings_are_compared_at_one_speed():
    """A slow hour (half the matmul rate, twice the time) moves no timing; a
    timing that doubled at the same speed is reported, at that speed."""
    chapter = NOTEBOOKS[0].stem
    name = f"ch{chapter[:2]}_wall_time"
    run = {"notebooks": {chapter: 10.0}}
    run["matmul_gflops"] = {"platform": "cpu", "one_core": 180.0}
    recorded = {"execution": {"last_full_run": run}}
    recorded["values"] = [
        {"chapter": chapter, "name": name, "value": 100.0, "tolerance": "50%"}
    ]
    slow = {(chapter, name): 200.0}
    assert results.compare(recorded, slow, {chapter: 90.0}) == []
    [row] = results.compare(recorded, slow, {chapter: 180.0})
    assert row["scaled"] and row["value"] == 120.0 and row["now"] == 240.0
    assert results.compare(recorded, slow) != []  # speed unknown: as measured
