"""One core per notebook, and the machine's matmul rate.

When several notebooks run at once on a CPU, each process that runs them
(a worker of book/_ext/execute.py, a pytest-xdist worker) holds one core:
`pin` sets its CPU affinity, which the kernels it starts inherit, and turns
XLA's Eigen thread pool off, so that the notebooks do not fight over
the cores. A notebook run alone keeps every core.

`matmul_rates` times a float32 matmul on all cores and on one core (pinned and
single-threaded as above), each in a fresh process: the machine's rate, against
which the reproducibility appendix sets each chapter's achieved GFLOP/s.
"""

import json
import os
import subprocess
import sys

# XLA's CPU client without Eigen's thread pool; the affinity does the rest
# (checked by `matmul_rates`: the one-core process uses one core's CPU time
# per second of wall time). Only `--` flags: XLA stops reading XLA_FLAGS at
# the first token without them (TensorFlow's `intra_op_parallelism_threads=1`
# would hide every flag after it, e.g. a test's host device count).
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def pin(core: int) -> None:
    """This process, and what it starts, on one core, XLA single-threaded."""
    os.sched_setaffinity(0, {core})
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} {ONE_THREAD}".strip()


TIMER = """
import json, os, sys, time
if sys.argv[1] == "one":
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[2])))
    from single_core import pin
    pin(min(os.sched_getaffinity(0)))
import jax, jax.numpy as jnp
n = 2048
a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
f = jax.jit(lambda a: a @ a)
f(a).block_until_ready()
times, cpu = [], time.process_time()
for _ in range(20):
    start = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - start)
cpu = (time.process_time() - cpu) / sum(times)
best = sorted(times)[len(times) // 2]  # the median call
print(json.dumps({"platform": jax.default_backend(),
                  "gflops": 2 * n**3 / best / 1e9, "cores_busy": cpu}))
"""


def matmul_rate(where: str) -> dict:
    """A 2,048 x 2,048 float32 matmul's GFLOP/s: where = "all" or "one"."""
    result = subprocess.run(
        [sys.executable, "-c", TIMER, where, __file__],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def matmul_rates() -> dict:
    """The machine's matmul rate on all cores and on one (GFLOP/s)."""
    every, one = matmul_rate("all"), matmul_rate("one")
    return {
        "platform": every["platform"],
        "all_cores": round(every["gflops"], 1),
        "one_core": round(one["gflops"], 1),
        "cores_busy_all": round(every["cores_busy"], 2),
        "cores_busy_one": round(one["cores_busy"], 2),
    }


if __name__ == "__main__":
    print(json.dumps(matmul_rates(), indent=1))
