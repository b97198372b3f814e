"""Benchmark: the mesh code path, measured side by side in one run.

On N devices (simulated CPU devices with --simulate N; the GPUs of a machine otherwise), the compiled step
of a Switch model and its dense twin on the same mesh, interleaved:
- sharded Switch / sharded dense step time at matched activated FLOPs;
- the all-to-all's cost: the Switch model on (data=1, expert=N), where every expert's slots cross devices,
  against (data=N, expert=1), where each device keeps its tokens and holds every expert (local dispatch);
- with --one-device: on one device, the mesh path (a 1x1 mesh, shard_map and all) against the plain
  single-device path (goal <= 1.02: a mesh costs nothing when there is nothing to shard).
Simulated CPU devices share this machine's cores, so these are correctness and overhead figures, not
scaling figures.

    python scripts/bench_mesh.py --simulate 8 [--pair tiny] [--blocks 5] [--steps 20]
    python scripts/bench_mesh.py --one-device [--pair base] [--tiny-width]
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="tiny")
    ap.add_argument("--simulate", type=int, default=0, help="simulate this many CPU devices")
    ap.add_argument("--one-device", action="store_true", help="mesh path vs single-device path on one device")
    ap.add_argument("--tiny-width", action="store_true", help="the pair at tiny width (a CPU dry run)")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if args.simulate:
        # Before JAX starts: the CPU backend reads these once.
        os.environ["JAX_NUM_CPU_DEVICES"] = str(args.simulate)
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.simulate}"

    import jax
    from benchlib import interleaved, line, ratio, seconds_per_step, spec_named

    from workloads.corpus import MarkovMixture
    from workloads.mesh import MeshShape
    from workloads.trainers import build_trainer

    def compiled(name: str, mesh: MeshShape | None):
        spec = spec_named(name, args.tiny_width)
        data = MarkovMixture(spec.corpus)
        trainer = build_trainer("jax", spec, 0, spec.max_steps, data.train_batch(0, 0, spec.batch_size),
                                data.eval_set(), mesh)
        batch = trainer.to_device(data.train_batch(0, 1, spec.batch_size))
        return lambda: seconds_per_step(trainer, lambda i: batch, args.steps)

    dense, switch = f"dense-{args.pair}", f"switch-{args.pair}"
    n = len(jax.devices())
    print(f"devices: {n} x {jax.devices()[0].device_kind} ({jax.default_backend()})")
    if args.one_device:
        times = interleaved(args.blocks, {"single-device path": compiled(switch, None),
                                          "mesh path (1x1)": compiled(switch, MeshShape(1, 1))})
        for name, t in times.items():
            print(line(f"{switch} {name}", t))
        r = ratio(times["mesh path (1x1)"], times["single-device path"])
        print(f"mesh path / single-device path: {r:.3f}  goal <= 1.02: {'MET' if r <= 1.02 else 'NOT MET'}")
        return
    variants = {
        f"{dense} data={n}": compiled(dense, MeshShape(n, 1)),
        f"{switch} data={n}": compiled(switch, MeshShape(n, 1)),
        f"{switch} expert={n}": compiled(switch, MeshShape(1, n)),
    }
    times = interleaved(args.blocks, variants)
    for name, t in times.items():
        print(line(name, t))
    names = list(times)
    print(f"sharded switch / sharded dense (data={n}): {ratio(times[names[1]], times[names[0]]):.3f}")
    a2a = ratio(times[names[2]], times[names[1]])
    print(f"all-to-all dispatch (expert={n}) / local dispatch (data={n}): {a2a:.3f}")
    print("simulated devices share this machine's cores: overhead figures, not scaling figures")


if __name__ == "__main__":
    sys.exit(main())
