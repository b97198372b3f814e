"""Meshes: how a run's devices split the batch (data) and the experts (expert), parsed from --mesh and checked
against a workload so that a mesh always computes exactly the function one device computes."""

from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import InputError
from workloads.specs import WorkloadSpec


@dataclass(frozen=True)
class MeshShape:
    """Devices on each mesh axis: the batch is split over data x expert devices, the experts over expert."""

    data: int = 1
    expert: int = 1

    @property
    def devices(self) -> int:
        return self.data * self.expert

    def __str__(self) -> str:
        return f"data={self.data},expert={self.expert}"


class MeshError(InputError):
    """A --mesh that cannot run this workload; the message says why and what would."""


def parse_mesh(text: str) -> MeshShape:
    """'data=D,expert=E' (either may be left out: 1)."""
    sizes = {"data": 1, "expert": 1}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        if name.strip() not in sizes or not value.strip().isdigit() or int(value) < 1:
            raise MeshError(f"--mesh must look like data=D,expert=E with positive integers, got {text!r}")
        sizes[name.strip()] = int(value)
    return MeshShape(**sizes)


def max_batch_split(spec: WorkloadSpec) -> int:
    """The most devices the batch can be split over: whole routing groups for Switch, sequences for dense."""
    unit = (spec.model.group_sequences or spec.batch_size) if spec.model.num_experts else 1
    return spec.batch_size // unit


def check_mesh(spec: WorkloadSpec, mesh: MeshShape, devices: int) -> None:
    """Raise MeshError unless `mesh` can run `spec` on `devices` devices and compute the 1-device function."""
    if mesh.devices != devices:
        raise MeshError(f"--mesh {mesh} asks for {mesh.devices} devices but {devices} are visible; "
                        f"data x expert must equal {devices}")
    problem = mesh_problem(spec, mesh)
    if problem:
        raise MeshError(f"--mesh {mesh}: {problem}")


def mesh_problem(spec: WorkloadSpec, mesh: MeshShape) -> str | None:
    """Why `spec` cannot run on `mesh` (whatever the device count), or None."""
    experts = spec.model.num_experts
    if mesh.expert > 1 and not experts:
        return f"{spec.name} is dense and has no experts to shard; put every device on data"
    if experts and experts % mesh.expert:
        return f"{spec.name}'s {experts} experts do not split evenly over {mesh.expert} devices"
    if mesh.expert > 1 and spec.model.routing == "dropless":
        return (f"{spec.name} routes dropless, which keeps every expert on every device (data parallel); "
                "put every device on data")
    split = max_batch_split(spec)
    if split % mesh.devices:
        if experts:
            group = spec.model.group_sequences or spec.batch_size
            return (f"{spec.name} routes its batch of {spec.batch_size} in groups of {group} sequences ({split} "
                    f"group(s)) and a group cannot be split: data x expert must divide {split}")
        return f"{spec.name}'s batch of {spec.batch_size} sequences does not split over {mesh.devices} devices"
    unit = (spec.model.group_sequences or spec.batch_size) * mesh.devices if experts else mesh.devices
    eval_batch = spec.eval_batch_size or spec.corpus.eval_sequences
    if eval_batch % unit:
        return (f"{spec.name}'s eval batch of {eval_batch} sequences does not split into {mesh.devices} equal "
                "shards of whole routing groups")
    return None


def default_mesh(spec: WorkloadSpec, devices: int) -> MeshShape:
    """Data parallelism over as many of the devices as the workload allows (all of them where it can)."""
    return MeshShape(data=max(d for d in range(1, devices + 1) if mesh_problem(spec, MeshShape(data=d)) is None))
