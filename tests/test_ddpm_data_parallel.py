"""Chapter 6's data-parallel training step: same losses on 1 and 8 devices.

The training step is the notebook's own code: a subprocess executes the
notebook's cells (quick-mode settings) in an IPython shell, up to the one
tagged `ddpm-train-step`, then runs a few steps from the notebook's freshly
initialised `model`. XLA's `--xla_force_host_platform_device_count=8` makes the
CPU appear as eight devices, so the batch really is split eight ways and the
gradient reduced across them. The steps run at the highest matmul precision,
so that the comparison does not depend on a backend's default (TF32 on recent
GPUs, bfloat16 passes on TPUs). Last, the train-step cell is run again with a
batch that eight devices cannot split, which must stop with a clear error.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_ddpm_v_prediction.ipynb"
STEPS = 5

RUNNER = f"""
import json
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for cell in json.load(open({str(NOTEBOOK)!r}))["cells"]:
    tags = cell.get("metadata", {{}}).get("tags", [])
    if cell["cell_type"] != "code" or "remove-cell" in tags:
        continue
    source = "".join(cell["source"])
    shell.run_cell(source).raise_error()
    if "ddpm-train-step" in tags:
        break
shell.run_cell('''
model, ema, opt_state = init_training(model)
losses = []
with jax.default_matmul_precision("highest"):
    for step in range({STEPS}):
        step_key = jax.random.fold_in(jax.random.key(2), step)
        model, ema, opt_state, loss = train_step(
            step_key, model, ema, opt_state
        )
        losses.append(float(loss))
leaf = jax.tree.leaves(eqx.filter(model, eqx.is_array))[0]
result = {{"devices": jax.device_count(), "losses": losses,
          "mesh": dict(mesh.shape),
          "replicated": leaf.sharding.is_fully_replicated}}
BATCH_SIZE = jax.device_count() + 1
''').raise_error()
uneven = shell.run_cell(source).error_in_exec
shell.user_ns["result"]["uneven_batch_error"] = repr(uneven)
print(json.dumps(shell.user_ns["result"]))
"""


def run_steps(n_devices: int) -> dict:
    env = {**os.environ, "BOOK_QUICK": "1", "JAX_PLATFORMS": "cpu"}
    # One device: the CPU as nbmake's kernels see it (with this worker's XLA
    # flags, so that chapter 6's compiled programs are found in the cache).
    if n_devices > 1:
        flags = f"--xla_force_host_platform_device_count={n_devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        capture_output=True,
        text=True,
        env=env,
        cwd=NOTEBOOK.parent,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_eight_devices_give_the_losses_of_one():
    one, eight = run_steps(1), run_steps(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    assert eight["mesh"] == {"data": 8}
    assert eight["replicated"], "parameters are replicated"
    assert len(one["losses"]) == STEPS
    for a, b in zip(one["losses"], eight["losses"], strict=True):
        assert a == pytest.approx(b, rel=1e-4), (one, eight)
    assert one["losses"][-1] < one["losses"][0] * 1.5  # nothing diverges
    # A batch of 9 cannot be split over 8 devices: a clear error, not a crash
    # deep inside XLA.
    message = eight["uneven_batch_error"]
    assert "ValueError" in message and "multiple of the device count" in message
