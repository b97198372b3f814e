"""Run in a fresh process with 8 simulated CPU devices (set before JAX starts): 20 steps of a workload on one
device and on each mesh given (DxE, or DxEkK for K steps a compiled call), and print per-step losses, routing
statistics, eval loss and shardings as JSON.

    python tests/mesh_probe.py switch-tiny 8x1 2x4 1x8 2x4k4
    python tests/mesh_probe.py switch-tiny-dropless,dense-tiny 8x1
"""

from __future__ import annotations

import json
import os
import sys

os.environ["JAX_NUM_CPU_DEVICES"] = "8"
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

from workloads.corpus import MarkovMixture  # noqa: E402
from workloads.mesh import MeshShape  # noqa: E402
from workloads.registry import WORKLOADS  # noqa: E402
from workloads.trainers import build_trainer  # noqa: E402

STEPS = 20


def run(name: str, mesh: MeshShape | None, k: int = 1) -> dict:
    spec = WORKLOADS[name]
    data = MarkovMixture(spec.corpus)
    b = spec.batch_size
    trainer = build_trainer("jax", spec, 0, 200, data.train_batch(0, 0, b), data.eval_set(), mesh, k)
    batch_sharding = str(getattr(trainer.to_device(data.train_batch(0, 1, b)).sharding, "spec", ""))
    if k == 1:
        handles = [trainer.step(trainer.to_device(data.train_batch(0, s, b))) for s in range(1, STEPS + 1)]
    else:
        handles = [trainer.step(trainer.to_device(data.train_batches(0, s, k, b))) for s in range(1, STEPS + 1, k)]
    metrics = trainer.host_metrics(handles)
    return {
        "loss": [m["loss"] for m in metrics],
        "dropped": [m.get("dropped_fraction") for m in metrics],
        "load": [m["expert_load"].tolist() if "expert_load" in m else None for m in metrics],
        "eval": trainer.evaluate().loss,
        "params": trainer.param_shardings(),
        "batch": batch_sharding,
        "devices": len(trainer.describe()["devices"]),
    }


def runs(name: str, meshes: list[str]) -> dict:
    out = {"1": run(name, None)}
    for m in meshes:
        shape, _, k = m.partition("k")
        d, e = (int(x) for x in shape.split("x"))
        out[m] = run(name, MeshShape(d, e), int(k or 1))
    return out


def main() -> None:
    """One workload: its runs by mesh; several, comma-separated (one process, one start-up): by workload."""
    names, meshes = sys.argv[1].split(","), sys.argv[2:]
    print(json.dumps(runs(names[0], meshes) if len(names) == 1 else {n: runs(n, meshes) for n in names}))


if __name__ == "__main__":
    main()
