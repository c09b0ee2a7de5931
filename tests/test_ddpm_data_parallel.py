"""Chapter 6's data-parallel training step gives the same losses on 1 and on 8 devices.

The training step is the notebook's own code: a subprocess executes the notebook's
cells (quick-mode settings) up to the one tagged `ddpm-train-step`, then runs a few
steps. XLA's `--xla_force_host_platform_device_count=8` makes the CPU appear as eight
devices, so the batch really is split eight ways and the gradient reduced across them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = (
    Path(__file__).resolve().parents[1]
    / "notebooks"
    / "06_ddpm_v_prediction.ipynb"
)
STEPS = 5

RUNNER = f"""
import json, sys
namespace = {{}}
for cell in json.load(open({str(NOTEBOOK)!r}))["cells"]:
    tags = cell.get("metadata", {{}}).get("tags", [])
    if cell["cell_type"] != "code" or "remove-cell" in tags:
        continue
    exec("".join(cell["source"]), namespace)
    if "ddpm-train-step" in tags:
        break
exec('''
import json
model, ema, opt_state = init_training(VelocityModel(jax.random.key(1)))
losses = []
for step in range({STEPS}):
    model, ema, opt_state, loss = train_step(jax.random.fold_in(jax.random.key(2), step), model, ema, opt_state)
    losses.append(float(loss))
leaf = jax.tree.leaves(eqx.filter(model, eqx.is_array))[0]
print(json.dumps({{"devices": jax.device_count(), "losses": losses,
                  "mesh": dict(mesh.shape), "replicated": leaf.sharding.is_fully_replicated}}))
''', namespace)
"""


def run_steps(n_devices: int) -> dict:
    env = {
        **os.environ,
        "BOOK_QUICK": "1",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_eight_devices_give_the_losses_of_one():
    one, eight = run_steps(1), run_steps(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    assert eight["mesh"] == {"data": 8}
    assert eight["replicated"], "parameters are replicated"
    assert len(one["losses"]) == STEPS
    for a, b in zip(one["losses"], eight["losses"], strict=True):
        assert a == pytest.approx(b, rel=1e-4), (one["losses"], eight["losses"])
    assert (
        one["losses"][-1] < one["losses"][0] * 1.5
    )  # training runs, nothing diverges
