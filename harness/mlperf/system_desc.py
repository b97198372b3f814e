"""MLPerf training system description (<system_name>.json), filled from a run's recorded environment.

The harness records environment.hardware / environment.software in result.json. Much of what MLPerf asks for
(cooling, storage, interconnects, memory DIMMs) is not visible to software, so those fields get an explicit
"unknown" marker rather than a guess, and ``harness_autofilled`` tells the submitter what to fill in by hand.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.mlperf.rules import RULESET
from harness.results.schema import Device, Hardware

USAGE = "training"
UNKNOWN = "unknown (not detectable from software; fill in by hand)"
NOT_APPLICABLE = "N/A"

# Order of the checker's required fields: identity, host, accelerator, notes, software.
FIELDS = (
    "submitter", "division", "status", "system_name", "number_of_nodes",
    "host_processors_per_node", "host_processor_model_name", "host_processor_core_count",
    "host_processor_vcpu_count", "host_processor_frequency", "host_processor_caches",
    "host_processor_interconnect", "host_memory_capacity", "host_storage_type", "host_storage_capacity",
    "host_networking", "host_networking_topology", "host_memory_configuration",
    "accelerators_per_node", "accelerator_model_name", "accelerator_host_interconnect", "accelerator_frequency",
    "accelerator_on-chip_memories", "accelerator_memory_configuration", "accelerator_memory_capacity",
    "accelerator_interconnect", "accelerator_interconnect_topology",
    "cooling", "hw_notes", "framework", "other_software_stack", "operating_system", "sw_notes",
)

# The training checker (ruleset >= 4) accepts only these status strings; short aliases map onto them.
STATUS_VALUES = ("Available on-premise", "Available cloud", "Research, Development, or Internal (RDI)", "Preview")
STATUS_ALIASES = {
    "available": "Available on-premise", "onprem": "Available on-premise", "on-premise": "Available on-premise",
    "cloud": "Available cloud", "available cloud": "Available cloud",
    "rdi": "Research, Development, or Internal (RDI)", "research": "Research, Development, or Internal (RDI)",
    "preview": "Preview",
}
DIVISIONS = ("closed", "open")
FRAMEWORK_PACKAGES = (("jax", "JAX"), ("flax", "Flax"), ("optax", "Optax"))

# Provenance labels used in harness_autofilled.
_ARGS, _RESULT, _HOST, _UNKNOWN = "from_arguments", "from_result", "from_run_host", "unknown"
Put = Callable[[str, "str | None", str], None]  # records a field's value (None = unknown) and its provenance


def describe_system(org: str, system_name: str, division: str, hardware: Hardware, software: Mapping[str, Any],
                    status: str = "available", nodes: int = 1, framework: Mapping[str, Any] | None = None) -> dict:
    """A system description that passes mlperf_logging's training checker at RULESET.

    hardware/software are the record's environment. Host details (sockets, physical cores, frequency, caches,
    distribution) come from what the run recorded of its host (hardware.cpu); a record from before runs
    recorded them leaves them unknown: the machine that writes the package may not be the one that ran.
    All values are strings, as in MLPerf's published system files (the checker's summary table joins them).
    framework is the record's training.framework: the framework the runs actually used.
    """
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    values: dict[str, str] = {}
    sources: dict[str, str] = {}

    def put(field: str, value: str | None, source: str) -> None:
        values[field] = UNKNOWN if value is None else value
        sources[field] = _UNKNOWN if value is None else source

    for field, value in (("submitter", org), ("division", _division(division)), ("status", _status(status)),
                         ("system_name", system_name), ("number_of_nodes", str(nodes))):
        put(field, value, _ARGS)

    host = dict(hardware.cpu) if hardware.cpu else None
    _fill_host(put, hardware, host, nodes)
    _fill_accelerators(put, hardware.devices, nodes)
    put("cooling", None, _UNKNOWN)
    put("hw_notes", _hw_notes(host), _RESULT)
    _fill_software(put, hardware, software, host, framework)

    desc: dict[str, Any] = {field: values[field] for field in FIELDS}
    desc["harness_autofilled"] = {
        label: [f for f in FIELDS if sources[f] == label] for label in (_ARGS, _RESULT, _HOST, _UNKNOWN)
    }
    desc["harness_autofilled"]["note"] = (
        f"Fields listed under '{_UNKNOWN}' hold the text {UNKNOWN!r} and must be filled in by the submitter; "
        f"'{_HOST}' fields were recorded by the runs from their host's /proc/cpuinfo, sysfs and os-release.")
    return desc


def check_system_desc(path: str | Path) -> list[str]:
    """Problems mlperf_logging's training system-description checker finds in path, one line each; [] if valid.

    Never raises: unreadable files, bad JSON and checker crashes come back as problem lines.
    """
    path = Path(path)
    try:
        contents = json.loads(path.read_text())
    except OSError as e:
        return [f"{path}: cannot read system description: {e.strerror or e}"]
    except (ValueError, UnicodeDecodeError) as e:
        return [f"{path}: not valid JSON: {e}"]
    if not isinstance(contents, dict):
        return [f"{path}: top level must be a JSON object, got {type(contents).__name__}"]
    if importlib.util.find_spec("mlperf_logging") is None:
        return [f"{path}: cannot check: the mlperf_logging package is not installed"]
    try:
        reasons = _run_checker(path)
        # mlperf_logging 4.1.x replaces (not extends) its reason list when status is invalid, hiding e.g.
        # missing fields; a second pass over a copy with a valid status recovers those.
        if reasons and contents.get("status", STATUS_VALUES[0]) not in STATUS_VALUES:
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / path.name
                copy.write_text(json.dumps({**contents, "status": STATUS_VALUES[0]}))
                reasons += [r for r in _run_checker(copy) if r not in reasons]
    except Exception as e:  # a checker crash is a finding about the file, not a failure of ours
        non_str = [k for k, v in contents.items() if k in FIELDS and not isinstance(v, str)]
        hint = f" (MLPerf expects string values; non-strings in: {', '.join(non_str)})" if non_str else ""
        return [f"{path}: system description checker crashed: {type(e).__name__}: {e}{hint}"]
    return [f"{path}: {reason}" for reason in reasons]


def _run_checker(path: Path) -> list[str]:
    """mlperf_logging's verdict on path: [] if valid, else its reasons."""
    from mlperf_logging.system_desc_checker.system_desc_checker import check_system_desc as mlperf_check

    # The checker gives its reasons only through logging.error(fmt, system_name, reasons) on the root logger.
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.ERROR:
        root.setLevel(logging.ERROR)
    try:
        valid = mlperf_check(str(path), USAGE, RULESET)[0]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    if valid:
        return []
    return _reasons(records) or ["system description checker rejected the file without giving a reason"]


class _Collect(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def _reasons(records: list[logging.LogRecord]) -> list[str]:
    out: list[str] = []
    for r in records:
        # Expected shape: args == (system_name, [reason, ...]); fall back to the formatted message otherwise.
        if isinstance(r.args, tuple) and len(r.args) == 2 and isinstance(r.args[1], list):
            out.extend(str(x) for x in r.args[1])
        else:
            out.append(r.getMessage().strip())
    return out


def _division(division: str) -> str:
    d = division.strip().lower()
    if d not in DIVISIONS:
        raise ValueError(f"division must be one of {DIVISIONS}, got {division!r}")
    return d


def _status(status: str) -> str:
    if status in STATUS_VALUES:
        return status
    mapped = STATUS_ALIASES.get(status.strip().lower())
    if mapped is None:
        raise ValueError(f"status must be one of {STATUS_VALUES} or an alias {tuple(STATUS_ALIASES)}, got {status!r}")
    return mapped


# ---- host -------------------------------------------------------------------------------------------------


def _fill_host(put: Put, hw: Hardware, host: dict | None, nodes: int) -> None:
    host = host or {}
    model = hw.cpu_model
    put("host_processors_per_node", _text(host.get("sockets")), _HOST)
    put("host_processor_model_name", model if model and model != "unknown" else None, _RESULT)
    put("host_processor_core_count", _text(host.get("cores_per_socket")), _HOST)
    put("host_processor_vcpu_count", str(hw.logical_cpus) if hw.logical_cpus else None, _RESULT)
    # A cpufreq maximum is a property of the host; an Intel-style "@ 2.20GHz" is in the recorded model name.
    nominal = re.search(r"@\s*([\d.]+)\s*GHz", model or "")
    if host.get("max_mhz"):
        put("host_processor_frequency", f"{host['max_mhz']} MHz (maximum, from cpufreq)", _HOST)
    else:
        put("host_processor_frequency", f"{nominal.group(1)} GHz (nominal, from the model name)" if nominal else None,
            _RESULT)
    put("host_processor_caches", host.get("caches"), _HOST)
    put("host_processor_interconnect", None, _UNKNOWN)
    put("host_memory_capacity", f"{hw.memory_gib} GiB" if hw.memory_gib else None, _RESULT)
    put("host_storage_type", None, _UNKNOWN)
    put("host_storage_capacity", None, _UNKNOWN)
    put("host_networking", None, _UNKNOWN)
    put("host_networking_topology", f"{NOT_APPLICABLE} (single node)" if nodes == 1 else None, _ARGS)
    put("host_memory_configuration", None, _UNKNOWN)  # DIMM layout needs DMI tables (root), not recorded


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _hw_notes(host: dict | None) -> str:
    notes = ["Generated by harness.mlperf.system_desc from the run's recorded environment; see harness_autofilled."
             " host_processor_core_count is physical cores per processor, host_processor_vcpu_count is logical"
             " CPUs per node."]
    if host and host.get("virtual_machine"):
        notes.append("The host is a virtual machine: CPU topology is as presented by the hypervisor.")
    return " ".join(notes)


# ---- accelerators -----------------------------------------------------------------------------------------


def _fill_accelerators(put: Put, devices: tuple[Device, ...], nodes: int) -> None:
    accel = [d for d in devices if d.platform != "cpu"]
    if not accel:
        # CPU-only run: there is no accelerator, which is a fact we know, not an unknown.
        put("accelerators_per_node", "0", _RESULT)
        put("accelerator_model_name", f"{NOT_APPLICABLE} (CPU only)", _RESULT)
        for field in ("accelerator_host_interconnect", "accelerator_frequency", "accelerator_on-chip_memories",
                      "accelerator_memory_configuration", "accelerator_memory_capacity", "accelerator_interconnect",
                      "accelerator_interconnect_topology"):
            put(field, NOT_APPLICABLE, _RESULT)
        return
    # jax.devices() lists every device of every process, so per-node is the total split over the nodes.
    per_node = len(accel) // nodes if len(accel) % nodes == 0 else None
    put("accelerators_per_node", str(per_node) if per_node is not None else None, _RESULT)
    kinds = Counter(str(d.kind or "unknown") for d in accel)
    name = next(iter(kinds)) if len(kinds) == 1 else ", ".join(f"{n}x {k}" for k, n in kinds.items())
    put("accelerator_model_name", name, _RESULT)
    for field in ("accelerator_host_interconnect", "accelerator_frequency", "accelerator_on-chip_memories",
                  "accelerator_memory_configuration", "accelerator_memory_capacity"):
        put(field, None, _UNKNOWN)
    single = len(accel) == 1
    for field in ("accelerator_interconnect", "accelerator_interconnect_topology"):
        put(field, f"{NOT_APPLICABLE} (single accelerator)" if single else None, _RESULT)


# ---- software ---------------------------------------------------------------------------------------------


def _fill_software(put: Put, hw: Hardware, sw: Mapping[str, Any], host: dict | None,
                   used: Mapping[str, Any] | None) -> None:
    packages = {k: v for k, v in (sw.get("packages") or {}).items() if v}
    if used and used.get("framework") == "tensorflow":
        framework = f"TensorFlow {used.get('version')} (XLA, tf.function(jit_compile=True))"
    else:  # JAX, named by the run or, in results from before the framework seam, by the installed packages
        framework = ", ".join(f"{label} {packages[name]}" for name, label in FRAMEWORK_PACKAGES if name in packages)
    put("framework", framework or None, _RESULT)
    framework_names = {name for name, _ in FRAMEWORK_PACKAGES}
    others = [f"Python {sw['python']}"] if sw.get("python") else []
    others += [f"{name} {ver}" for name, ver in packages.items() if name not in framework_names]
    put("other_software_stack", ", ".join(others) or None, _RESULT)
    os_text = _os_text(hw.platform, hw.machine)
    distro = (host or {}).get("distro")
    if distro and os_text:
        put("operating_system", f"{distro}; {os_text}", _HOST)
    else:
        put("operating_system", os_text, _RESULT)
    notes = [f"harness {packages['harness']}" if "harness" in packages else "harness",
             f"git commit {sw.get('git_commit') or 'unknown'}",
             f"XLA_FLAGS={sw.get('xla_flags') or '(empty)'}"]
    if hw.backend:
        notes.append(f"backend {hw.backend}")
    put("sw_notes", "; ".join(notes), _RESULT)


def _os_text(platform_str: str | None, machine: str | None) -> str | None:
    """'Linux-5.15.0-1057-gcp-x86_64-with-glibc2.35' -> 'Linux 5.15.0-1057-gcp (glibc2.35)'."""
    if not platform_str:
        return None
    base, _, libc = platform_str.partition("-with-")
    if machine and base.endswith(f"-{machine}"):
        base = base[: -len(machine) - 1]
    system, _, release = base.partition("-")
    text = f"{system} {release}".strip()
    return f"{text} ({libc})" if libc else text
