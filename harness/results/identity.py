"""What makes two runs the same benchmark on the same system: the one definition every reader groups and matches
runs by (`harness compare`, `report`, `study`, `site` and the claim rules).

Runs are only ever averaged, scored or paired within one identity. Its parts, and why each is in it:

- what was measured (`benchmark`; every comparison, even between systems, matches these):
  - workload: the registered name, so a sweep's `switch-small-e8` is not `switch-small`;
  - spec_sha256: the canonical spec (workloads/specs.py `spec_sha256`: model, corpus, optimiser, batch, target),
    so a recalibrated learning rate or a resized model is another benchmark even under the same name, while a
    field added to the harness later (with the value older runs used) is not a difference;
  - data: the spec's corpus ("default", "control") or the user's data ("user:<sha12>"), and eval_sha256, the
    held-out set's hash: a control-corpus run costs a hundredth of a default one, by design;
- how it was run (`setup`; one row's runs match these, a comparison between systems states them):
  - framework: JAX and TensorFlow take different times on the same steps;
  - precision: the matmul dtype (in the spec too, named here so that a row says it);
  - mesh: data and expert parallelism and the processes, which change the step's communication;
- where it ran (`system`): the accelerator model and count, and the host CPU model and count; on a CPU-only
  system the host CPU is what trains.

What is disclosed but never matched (`disclosed`): framework and library versions, the steps a compiled call
ran, the harness commit, the energy method, the carbon region, the OS and driver. Two runs that differ only there
are the same benchmark on the same system; a claim or report lists the difference beside its figure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from harness.results.schema import RunRecord
from workloads.specs import spec_sha256

NO_ACCELERATOR = ""


@dataclass(frozen=True, order=True)
class Identity:
    """A run's benchmark, setup and system (see the module docstring for why each part is here)."""

    workload: str
    spec_sha256: str
    data: str  # "default" | "control" | "user:<sha12>"
    eval_sha256: str
    framework: str
    precision: str
    mesh: str  # "data=D,expert=E" (", P processes" when more than one)
    accelerator: str  # the accelerator's model; "" for a CPU-only system
    accelerators: int
    host_cpu: str  # "AMD EPYC (2 CPUs)"

    BENCHMARK = ("workload", "spec_sha256", "data", "eval_sha256")
    SETUP = ("framework", "precision", "mesh")
    SYSTEM = ("accelerator", "accelerators", "host_cpu")

    @property
    def benchmark(self) -> tuple[str, ...]:
        """What was measured: matched by every comparison, also between systems."""
        return tuple(getattr(self, k) for k in self.BENCHMARK)

    @property
    def setup(self) -> tuple[str, ...]:
        return tuple(getattr(self, k) for k in self.SETUP)

    @property
    def system(self) -> tuple[str | int, ...]:
        return tuple(getattr(self, k) for k in self.SYSTEM)

    @property
    def system_text(self) -> str:
        """'1 x NVIDIA H200 (host: Intel Xeon, 16 CPUs)' or 'AMD EPYC (2 CPUs), no accelerator'."""
        if self.accelerator == NO_ACCELERATOR:
            return f"{self.host_cpu}, no accelerator"
        return f"{self.accelerators} x {self.accelerator} (host: {self.host_cpu})"

    @property
    def data_text(self) -> str:
        """'' for the workload's registered corpus, else which data ('control corpus', 'data 1a2b3c4d5e6f')."""
        if self.data == "default":
            return ""
        if self.data.startswith("user:"):
            return f"data {self.data.removeprefix('user:')}"
        return f"{self.data} corpus"

    def same_run_as(self, other: Identity) -> bool:
        """The same benchmark, set up the same way: what a comparison between two systems needs, or between
        reference runs and yours."""
        return self.benchmark == other.benchmark and self.setup == other.setup

    def differences(self, other: Identity) -> list[str]:
        """Each part in which `other` differs, named: 'framework jax vs tensorflow'."""
        return [f"{f.name} {getattr(self, f.name)} vs {getattr(other, f.name)}" for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]

    def label(self, among: Iterable[Identity] = ()) -> str:
        """The workload as a table names it among `among`: with its data where it is not the registered corpus,
        and with each part in which it differs from another row of the same workload, data and system there,
        where its own is not the usual one (the registered spec, JAX, the spec's precision, one device)."""
        parts = [self.data_text] if self.data_text else []
        rivals = [o for o in among if o != self and (o.workload, o.data, o.system) == (self.workload, self.data,
                                                                                        self.system)]
        usual = {"spec_sha256": _registered_spec(self.workload), "framework": "jax", "mesh": "data=1,expert=1"}
        for part, text in (("spec_sha256", f"spec {self.spec_sha256[:8]}"), ("framework", self.framework),
                           ("precision", self.precision), ("mesh", f"mesh {self.mesh}")):
            mine = getattr(self, part)
            if mine != usual.get(part) and any(getattr(o, part) != mine for o in rivals):
                parts.append(text)
        return f"{self.workload} ({', '.join(parts)})" if parts else self.workload


@cache
def _registered_spec(workload: str) -> str | None:
    from workloads.registry import WORKLOADS

    spec = WORKLOADS.get(workload)
    return spec_sha256(spec.to_dict()) if spec else None


def identity(r: RunRecord) -> Identity:
    """The identity of a run, from its record."""
    hw = r.environment.hardware
    accel = hw.accelerators
    return Identity(workload=r.workload, spec_sha256=spec_sha256(r.spec), data=r.corpus,
                    eval_sha256=str(r.data.get("eval_sha256") or ""), framework=r.framework,
                    precision=str(r.spec["model"].get("dtype", "float32")), mesh=mesh_text(r.parallelism or {}),
                    accelerator=accel[0].kind if accel else NO_ACCELERATOR, accelerators=len(accel),
                    host_cpu=f"{hw.cpu_model} ({hw.logical_cpus} CPUs)")


def mesh_text(p: dict[str, Any]) -> str:
    processes = int(p.get("processes", 1) or 1)
    return f"data={p.get('data', 1)},expert={p.get('expert', 1)}" + (f", {processes} processes" if processes > 1
                                                                     else "")


def group(records: Iterable[RunRecord], part: Callable[[Identity], Hashable] = lambda i: i
          ) -> dict[Any, list[RunRecord]]:
    """Records by identity, or by a part of it (`part`: e.g. `lambda i: i.system`), in the order each is first met."""
    out: dict[Any, list[RunRecord]] = {}
    for r in records:
        out.setdefault(part(identity(r)), []).append(r)
    return out


def disclosed(r: RunRecord) -> dict[str, str]:
    """What differs between runs of one identity without making them another benchmark, and must be stated
    beside any figure that compares them."""
    sw = r.environment.software
    packages = sw.get("packages") or {}
    return {
        "framework version": f"{r.framework} {r.training.framework.get('version', '')}".strip(),
        # How the steps were dispatched changes their time, not what they compute (workloads/specs.py).
        "steps per dispatch": str(r.training.framework.get("steps_per_dispatch", 1)),
        "software": ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v),
        "harness commit": str(sw.get("git_commit")),
        "energy method": r.energy.method,
        "carbon region": r.carbon.region if r.carbon else "none",
        "platform": str(r.environment.hardware.platform),
    }
