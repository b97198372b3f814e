"""The devices a run trains on: the framework lists them, this picks the mesh and tells the meters which
accelerators are this process's own (meters themselves never import a framework)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import UsageError
from harness.meters import Accelerator
from harness.runner.cluster import Cluster, HostInfo
from harness.session import local_accelerators
from workloads.framework import Device
from workloads.mesh import MeshError, MeshShape, check_mesh, default_mesh, parse_mesh
from workloads.specs import WorkloadSpec
from workloads.trainers import runtime


@dataclass(frozen=True)
class Placement:
    """Where a run trains: its mesh (None: one device, no sharding), every device it uses, and notes."""

    mesh: MeshShape | None
    devices: list[Device]
    process: int
    processes: int
    notes: tuple[str, ...] = ()
    hosts: list[HostInfo] = field(default_factory=list)  # every process's host (multi-process runs)

    @property
    def host(self) -> HostInfo | None:
        return next((h for h in self.hosts if h.process == self.process), None)

    @property
    def leads_host(self) -> bool:
        """Whether this process reads its host's node- and CPU-scope meters (one process per host does)."""
        return self.host is None or self.host.leader

    def leader_of_host(self) -> str:
        me = self.host
        leader = next((h for h in self.hosts if me and h.host_id == me.host_id and h.leader), None)
        return f"process {leader.process}" if leader else "another process"

    @property
    def local_devices(self) -> list[Device]:
        return [d for d in self.devices if d.process == self.process]

    def accelerators(self) -> list[Accelerator]:
        """This process's accelerators in the run: what its meters must see."""
        return local_accelerators(self.devices, self.process)


def place(spec: WorkloadSpec, mesh_text: str | None, framework: str = "jax") -> Placement:
    """The mesh for `spec` from --mesh (exact: data x expert = every device), or by default every device on
    data where the workload's batch can be split that far (else as many as it can, and a note says so)."""
    rt = runtime(framework)
    devices, process, processes = rt.devices(), rt.process_index(), rt.process_count()
    hosts = _hosts(rt) if processes > 1 else []
    try:
        if mesh_text:
            mesh = parse_mesh(mesh_text)
            check_mesh(spec, mesh, len(devices))
            return Placement(mesh, devices, process, processes, hosts=hosts)
        mesh = default_mesh(spec, len(devices))
    except MeshError as e:
        raise UsageError(str(e)) from None
    if processes > 1 and mesh.devices != len(devices):
        raise UsageError(f"{spec.name} can split its batch over at most {mesh.devices} of the run's {len(devices)} "
                         f"devices, and every process must hold part of it; give --mesh or fewer processes")
    notes = ()
    if mesh.devices < len(devices):
        notes = (f"{spec.name} can split its batch over {mesh.devices} of the {len(devices)} devices; "
                 f"{len(devices) - mesh.devices} stay idle and unmetered",)
    if mesh.devices == 1 and processes == 1:
        return Placement(None, devices[:1], process, processes, notes)
    return Placement(mesh, devices[:mesh.devices], process, processes, notes, hosts)


_HOSTS: list[HostInfo] = []


def _hosts(rt) -> list[HostInfo]:
    """Every process's physical host, asked once a process (every run of a session shares them)."""
    if not _HOSTS:
        _HOSTS.extend(Cluster(rt, "harness/session").hosts())
    return _HOSTS
