"""Tests for harness.meters: RAPL, CPU model, fake meter, sampler and backend selection."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
from conftest import FakeClock

from harness.meters import (
    BACKENDS,
    Accelerator,
    FakeMeter,
    MeterRequest,
    MeterSelectionError,
    Sampler,
    SineTrace,
    parse_meter_names,
    select_meters,
)
from harness.meters import cpu_model as cpu_model_mod
from harness.meters import rapl as rapl_mod
from harness.meters.cpu_model import CpuModelMeter, load_tdp_table, match_tdp, read_proc_stat
from harness.meters.rapl import RaplMeter

MAX_UJ = 262_143_328_850  # a real max_energy_range_uj value


# ---------------------------------------------------------------- RAPL


def make_zone(path: Path, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def rapl_root(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    pkg = make_zone(root / "intel-rapl:0", "package-0", MAX_UJ - 1_000_000)
    make_zone(pkg / "intel-rapl:0:0", "core", 100)
    make_zone(pkg / "intel-rapl:0:1", "uncore", 100)
    make_zone(pkg / "intel-rapl:0:2", "dram", 5_000_000)
    make_zone(root / "intel-rapl:1", "psys", 0)  # platform zone that contains the package
    make_zone(root / "intel-rapl-mmio:0", "package-0", 0)  # same package counter via MMIO
    (root / "intel-rapl").mkdir()  # the control-type directory, not a zone
    return root


def test_rapl_components_exclude_nested_and_overlapping_zones(rapl_root: Path) -> None:
    m = RaplMeter(rapl_root)
    assert m.components() == ["cpu-package-0", "dram-0"]
    skipped = {s["name"] for s in m.params()["skipped_zones"]}
    assert skipped == {"core", "uncore", "psys"}
    assert m.method == "measured:rapl"


def test_rapl_wraparound_and_no_double_counting(rapl_root: Path) -> None:
    pkg, dram = rapl_root / "intel-rapl:0", rapl_root / "intel-rapl:0" / "intel-rapl:0:2"
    core = pkg / "intel-rapl:0:0"
    clock = FakeClock()
    m = RaplMeter(rapl_root, clock=clock)
    m.start()
    assert m.read() == {"cpu-package-0": 0.0, "dram-0": 0.0}
    clock.advance(0.05)
    set_energy(pkg, MAX_UJ - 400_000)  # +0.6 J
    set_energy(core, 10_000_000)  # core is inside the package: must not add anything
    set_energy(dram, 5_250_000)  # +0.25 J
    r1 = m.read()
    assert r1["cpu-package-0"] == pytest.approx(0.6)
    assert r1["dram-0"] == pytest.approx(0.25)
    clock.advance(0.05)
    set_energy(pkg, 1_500_000)  # wrapped: 0.4 J to the top, then 1.5 J (38 W over 50 ms: plausible)
    r2 = m.read()
    assert r2["cpu-package-0"] == pytest.approx(0.6 + 0.4 + 1.5)
    assert r2["dram-0"] == pytest.approx(0.25)
    assert m.params()["counter_wraps"] == 1
    assert m.params()["counter_resets"] == 0 and m.warnings() == []


def test_rapl_counter_reset_is_not_mistaken_for_a_wrap(rapl_root: Path) -> None:
    pkg = rapl_root / "intel-rapl:0"
    (pkg / "constraint_0_max_power_uw").write_text("125000000\n")  # PL1 125 W
    set_energy(pkg, 50_000_000)
    clock = FakeClock()
    m = RaplMeter(rapl_root, clock=clock)
    m.start()
    clock.advance(0.05)
    # Back from 50 J to 0.3 J: a wrap would mean MAX_UJ - 49.7 J in 50 ms, millions of watts. A reset.
    set_energy(pkg, 300_000)
    assert m.read()["cpu-package-0"] == pytest.approx(0.3)
    assert m.params()["counter_resets"] == 1 and m.params()["counter_wraps"] == 0
    assert any("reset 1 time" in w for w in m.warnings())


def test_rapl_reports_wrap_period_and_warns_when_reads_are_too_far_apart(rapl_root: Path) -> None:
    pkg = rapl_root / "intel-rapl:0"
    (pkg / "constraint_0_max_power_uw").write_text("125000000\n")
    small = 1_000_000_000  # 1 kJ range: wraps every 8 s at 125 W
    (pkg / "max_energy_range_uj").write_text(f"{small}\n")
    set_energy(pkg, 0)
    clock = FakeClock()
    m = RaplMeter(rapl_root, clock=clock)
    (dom,) = [d for d in m.params()["domains"] if d["component"] == "cpu-package-0"]
    assert dom["wrap_period_s_at_max_power"] == pytest.approx(8.0)
    m.start()
    clock.advance(5.0)  # more than half the wrap period between two reads
    set_energy(pkg, 400_000_000)
    m.read()
    assert any("a wrap may have been missed" in w for w in m.warnings())


def test_rapl_flat_subzone_links_are_found(tmp_path: Path) -> None:
    # Real sysfs also lists subzones flat under the root; they must be found once, not twice.
    root = tmp_path / "powercap"
    make_zone(root / "intel-rapl:0", "package-0", 0)
    make_zone(root / "intel-rapl:0:0", "dram", 0)
    make_zone(root / "amd-rapl:1", "package-1", 0)
    assert RaplMeter(root).components() == ["cpu-package-1", "cpu-package-0", "dram-0"]


def test_rapl_probe_absent(tmp_path: Path) -> None:
    av = RaplMeter.check(root=tmp_path / "nope")
    assert not av.available
    assert "absent" in av.reason and "RAPL" in av.reason


def test_rapl_probe_ok(rapl_root: Path) -> None:
    av = RaplMeter.check(root=rapl_root)
    assert av.available and av.reason.startswith("ok: 2 domains")


def test_rapl_probe_permission_error(rapl_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, for whom chmod 000 changes nothing; simulate the kernel's root-only energy_uj.
    real = rapl_mod._read_int

    def denied(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read_int", denied)
    av = RaplMeter.check(root=rapl_root)
    assert not av.available and "not readable" in av.reason and "root-only" in av.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read mode-000 files")
def test_rapl_probe_chmod_000(rapl_root: Path) -> None:
    (rapl_root / "intel-rapl:0" / "energy_uj").chmod(0)
    assert "not readable" in RaplMeter.check(root=rapl_root).reason


def test_rapl_probe_energy_file_is_directory(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = root / "intel-rapl:0"
    (zone / "energy_uj").mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    av = RaplMeter.check(root=root)
    assert not av.available and "not readable" in av.reason


def test_rapl_probe_no_package_zone(tmp_path: Path) -> None:
    (tmp_path / "intel-rapl").mkdir()
    av = RaplMeter.check(root=tmp_path)
    assert not av.available and "no intel-rapl:N" in av.reason


# ---------------------------------------------------------------- CPU model


def write_stat(path: Path, busy: int, idle: int, ncpu: int = 2) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice; guest must not be counted twice.
    lines = [f"cpu  {busy} 0 0 {idle} 0 0 0 0 999 0"]
    lines += [f"cpu{i} 1 0 0 1 0 0 0 0 0 0" for i in range(ncpu)]
    path.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n")


@pytest.fixture
def procfs(tmp_path: Path) -> tuple[Path, Path]:
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    write_stat(stat, busy=1000, idle=1000)
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n")
    return stat, cpuinfo


def test_read_proc_stat_ignores_guest(procfs: tuple[Path, Path]) -> None:
    assert read_proc_stat(procfs[0]) == (1000, 2000, 2)


def test_cpu_model_half_busy_interval(procfs: tuple[Path, Path]) -> None:
    stat, cpuinfo = procfs
    clock = FakeClock(10.0)
    m = CpuModelMeter(stat_path=stat, cpuinfo_path=cpuinfo, clock=clock)
    tdp = 280.0 * 2 / 128  # EPYC 7763 package share for 2 of 128 threads
    idle = 0.3 * tdp
    assert m.tdp_w == pytest.approx(tdp) and m.idle_w == pytest.approx(idle)
    m.start()
    write_stat(stat, busy=1100, idle=1100)
    clock.advance(2.0)
    assert m.read()["cpu"] == pytest.approx((idle + 0.5 * (tdp - idle)) * 2.0)
    write_stat(stat, busy=1300, idle=1100)  # fully busy for the next second
    clock.advance(1.0)
    assert m.read()["cpu"] == pytest.approx((idle + 0.5 * (tdp - idle)) * 2.0 + tdp * 1.0)
    clock.advance(0.5)  # no jiffies elapsed: the last busy fraction (1.0) carries forward
    assert m.read()["cpu"] == pytest.approx((idle + 0.5 * (tdp - idle)) * 2.0 + tdp * 1.5)


@pytest.mark.parametrize(("visible", "expected"), [(2, 280 * 2 / 128), (64, 140.0), (256, 280.0)])
def test_cpu_model_scales_by_visible_cpus(procfs: tuple[Path, Path], visible: int, expected: float) -> None:
    stat, cpuinfo = procfs
    write_stat(stat, 1000, 1000, ncpu=visible)
    m = CpuModelMeter(stat_path=stat, cpuinfo_path=cpuinfo)
    p = m.params()
    assert p["visible_cpus"] == visible and p["threads_per_package"] == 128
    assert p["tdp_w_package"] == 280.0 and p["tdp_w_modelled"] == pytest.approx(expected)


def test_cpu_model_explicit_tdp_overrides_table(procfs: tuple[Path, Path]) -> None:
    stat, cpuinfo = procfs
    cpuinfo.write_text("model name\t: Mystery CPU 9000\n")
    m = CpuModelMeter(tdp_w=100.0, stat_path=stat, cpuinfo_path=cpuinfo)
    assert m.tdp_w == 100.0 and m.params()["tdp_source"] == "user: --cpu-tdp"
    scaled = CpuModelMeter(tdp_w=100.0, threads_per_package=8, stat_path=stat, cpuinfo_path=cpuinfo)
    assert scaled.tdp_w == pytest.approx(25.0)


def test_cpu_model_unknown_without_tdp_is_unavailable(procfs: tuple[Path, Path]) -> None:
    stat, cpuinfo = procfs
    cpuinfo.write_text("model name\t: Mystery CPU 9000\n")
    av = CpuModelMeter.check(stat_path=stat, cpuinfo_path=cpuinfo)
    assert not av.available and "--cpu-tdp" in av.reason and "Mystery CPU 9000" in av.reason
    assert CpuModelMeter.check(tdp_w=65.0, stat_path=stat, cpuinfo_path=cpuinfo).available


def test_cpu_model_params(procfs: tuple[Path, Path]) -> None:
    p = CpuModelMeter(stat_path=procfs[0], cpuinfo_path=procfs[1]).params()
    required = {"method", "cpu_model", "tdp_w_package", "threads_per_package", "visible_cpus",
                "tdp_w_modelled", "idle_w", "idle_fraction", "tdp_source", "note"}
    assert required <= p.keys()
    assert p["method"] == "modelled:cpu-tdp-utilization" and p["note"] == "modelled, not measured"
    assert p["idle_fraction"] == 0.3 and "AMD product page" in p["tdp_source"]


def test_tdp_table_matching() -> None:
    table = load_tdp_table()
    assert all(r.source and r.tdp_w > 0 and r.threads_per_package > 0 for r in table)
    assert match_tdp("AMD EPYC", table).pattern == "AMD EPYC"
    assert "generic estimate" in match_tdp("AMD EPYC", table).source
    assert match_tdp("AMD EPYC 9654 96-Core Processor", table).tdp_w == 360
    assert match_tdp("Intel(R) Xeon(R) Platinum 8480+", table).tdp_w == 350
    assert "generic estimate" in match_tdp("Intel(R) Xeon(R) Gold 6148 CPU", table).source
    assert match_tdp("intel(r) xeon(r) platinum 8375c cpu @ 2.90ghz", table).threads_per_package == 64
    assert match_tdp("Apple M2", table) is None


# ---------------------------------------------------------------- fake meter and sampler


def test_sine_trace_integral_is_exact() -> None:
    tr = SineTrace(a=40.0, b=10.0, period=3.0)
    n, t1 = 30_000, 2.2
    mid = sum(tr.watts((i + 0.5) * t1 / n)["cpu"] for i in range(n)) * t1 / n
    assert tr.energy(t1)["cpu"] == pytest.approx(mid, rel=1e-8)


def drive(s: Sampler, clock: FakeClock, until: float, step: float = 0.05) -> None:
    while clock.t + step <= until + 1e-12:
        clock.advance(step)
        s.sample_once()


def test_sampler_energy_between_marks_matches_analytic_integral() -> None:
    clock = FakeClock(100.0)
    trace = SineTrace(a=40.0, b=10.0, period=3.0)
    s = Sampler([FakeMeter.sine(40.0, 10.0, 3.0, clock=clock)], hz=20, clock=clock, wall=lambda: 1.7e9)
    s.start(background=False)
    drive(s, clock, 100.35)
    clock.advance(0.02)  # marks fall between ticks
    t_a = s.mark("a")
    drive(s, clock, 102.77)
    clock.advance(0.04)
    t_b = s.mark("b")
    drive(s, clock, 103.5)
    s.stop()
    s.stop()  # idempotent
    assert t_a == pytest.approx(1.7e9 + 0.37) and t_b == pytest.approx(1.7e9 + 2.81)
    expected = trace.energy(2.81)["cpu"] - trace.energy(0.37)["cpu"]
    assert abs(s.energy_between("a", "b")["fake/cpu"] - expected) < 1e-9
    t_end = clock.t - 100.0
    assert s.joules_since("a") == pytest.approx(trace.energy(t_end)["cpu"] - trace.energy(0.37)["cpu"])
    assert s.achieved_hz() > 20  # periodic ticks plus the two marks
    with pytest.raises(ValueError):
        s.mark("a")


def test_sampler_power_rows_integrate_to_energy() -> None:
    clock = FakeClock(5.0)
    trace = SineTrace(a=40.0, b=10.0, period=3.0)
    s = Sampler([FakeMeter.sine(40.0, 10.0, 3.0, clock=clock)], hz=20, clock=clock, wall=lambda: 1.7e9)
    s.start(background=False)
    drive(s, clock, 9.0)
    rows = s.power_rows()
    assert len(rows) == 80 and set(rows[0]) == {"time_unix_s", "fake/cpu_w"}
    prev, total = s.start_unix_s, 0.0
    for r in rows:
        total += r["fake/cpu_w"] * (r["time_unix_s"] - prev)
        prev = r["time_unix_s"]
    assert total == pytest.approx(trace.energy(4.0)["cpu"], rel=0.01)
    # Over the last second the average power is the exact energy difference.
    assert s.watts_now() == pytest.approx(trace.energy(4.0)["cpu"] - trace.energy(3.0)["cpu"])


class FlakyMeter(FakeMeter):
    name = "flaky"

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__(clock or time.monotonic)
        self.calls = 0

    def read(self) -> dict[str, float]:
        self.calls += 1
        if self.calls % 2 == 0:
            raise OSError("sensor went away")
        return super().read()


def test_sampler_records_read_errors() -> None:
    clock = FakeClock()
    s = Sampler([FlakyMeter(clock), FakeMeter(clock)], clock=clock, wall=lambda: 0.0)
    s.start(background=False)
    clock.advance(1.0)
    s.mark("a")  # second read of the flaky meter: fails
    clock.advance(1.0)
    s.mark("b")
    s.stop()
    assert len(s.errors) == 2 and s.errors[0].meter == "flaky" and "sensor went away" in s.errors[0].error
    e = s.energy_between("a", "b")
    assert math.isnan(e["flaky/cpu"])  # unknown stays visibly unknown
    assert e["fake/cpu"] == pytest.approx(50.0)


def test_sampler_real_thread_smoke() -> None:
    s = Sampler([FakeMeter(), FlakyMeter()], hz=50)
    s.start()
    t0 = s.mark("begin")
    time.sleep(0.2)
    t1 = s.mark("end")
    s.stop()
    assert s._thread is not None and not s._thread.is_alive()
    assert s.achieved_hz() >= 10
    assert s.errors  # the flaky meter raised inside the thread, which kept going
    # Timestamps and meter readings are taken together under the sampler's lock.
    assert s.energy_between("begin", "end")["fake/cpu"] == pytest.approx(50.0 * (t1 - t0), abs=0.01)
    assert s.watts_now() > 0


# ---------------------------------------------------------------- selection


def test_backends_order() -> None:
    assert list(BACKENDS) == ["nvml", "amdsmi", "rapl", "tpu-model", "cpu-model", "external", "fake"]


@pytest.mark.skipif(Path("/sys/class/powercap").exists(), reason="this machine has RAPL")
def test_select_meters_on_this_machine() -> None:
    meters, unused = select_meters(MeterRequest(), [])
    assert [m.name for m in meters] == ["cpu-model"]
    assert meters[0].method.startswith("modelled:")
    reasons = {u["name"]: u["reason"] for u in unused}
    assert "absent" in reasons["rapl"]
    assert "no GPU among the run's devices" in reasons["nvml"]
    assert "--meter-command" in reasons["external"]


def test_select_meters_prefers_rapl(rapl_root: Path) -> None:
    meters, unused = select_meters(MeterRequest(rapl_root=rapl_root), [])
    assert [m.name for m in meters] == ["rapl"]
    reasons = {u["name"]: u["reason"] for u in unused}
    assert "preferred" in reasons["cpu-model"]


def test_select_meters_fake_only() -> None:
    meters, unused = select_meters(MeterRequest(("fake",)), [])
    assert [type(m) for m in meters] == [FakeMeter]
    assert {u["name"] for u in unused} == set(BACKENDS) - {"fake"}


def test_select_meters_nothing_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_model_mod, "read_cpu_model", lambda path: "Mystery CPU 9000")
    meters, unused = select_meters(MeterRequest(rapl_root=tmp_path / "none"), [])
    assert meters == []
    reasons = {u["name"]: u["reason"] for u in unused}
    assert "--cpu-tdp" in reasons["cpu-model"]
    req = MeterRequest(cpu_tdp=50.0, rapl_root=tmp_path / "none")
    assert [m.name for m in select_meters(req, [])[0]] == ["cpu-model"]


def test_select_meters_with_a_gpu_uses_nvml_and_the_cpu(tmp_path: Path) -> None:
    from nvml_fake import FakeGpu, FakeNvml

    gpu = [Accelerator("gpu", 0, "NVIDIA H100 80GB HBM3")]
    meters, unused = select_meters(MeterRequest(rapl_root=tmp_path, nvml=FakeNvml([FakeGpu()])), gpu)
    assert [m.name for m in meters] == ["nvml", "cpu-model"]
    assert not any(u["name"] == "gpu-energy" for u in unused)
    # NVML unusable on a GPU machine: the run goes ahead on the CPU meter but says the GPU is NOT metered.
    broken = FakeNvml([], init_error=FakeNvml.NVML_ERROR_DRIVER_NOT_LOADED)
    meters, unused = select_meters(MeterRequest(rapl_root=tmp_path, nvml=broken), gpu)
    assert [m.name for m in meters] == ["cpu-model"]
    reasons = {u["name"]: u["reason"] for u in unused}
    assert "GPU energy NOT metered (NVML: NVIDIA driver not loaded)" in reasons["gpu-energy"]


def test_named_meters_are_required_never_substituted(tmp_path: Path) -> None:
    with pytest.raises(MeterSelectionError, match="--meter nvml: NVML: no GPU among the run's devices"):
        select_meters(MeterRequest(("nvml",)), [])
    with pytest.raises(MeterSelectionError, match="--meter rapl: RAPL: .* absent"):
        select_meters(MeterRequest(("rapl",), rapl_root=tmp_path / "none"), [])
    with pytest.raises(MeterSelectionError, match="--meter external: external: no --meter-command"):
        select_meters(MeterRequest(("auto", "external")), [])


def test_parse_meter_names() -> None:
    assert parse_meter_names("auto,external") == ("auto", "external")
    for bad in ("", "gpu", "auto,nvm", "fake,rapl"):
        with pytest.raises(MeterSelectionError):
            parse_meter_names(bad)


def test_sampler_records_gauges_and_gaps() -> None:
    from nvml_fake import FakeGpu, FakeNvml

    from harness.meters.nvml import NvmlMeter

    clock = FakeClock(10.0)
    gpu = FakeGpu(watts=100.0)
    m = NvmlMeter([0], nvml=FakeNvml([gpu]), env={}, clock=clock)
    s = Sampler([m], clock=clock, wall=lambda: 1000.0)
    s.start(background=False)
    s.mark("a")
    for watts, dt in ((100.0, 1.0), (300.0, 3.0)):
        clock.advance(dt)
        gpu.watts = watts
        s.sample_once()
    s.mark("b")
    assert s.gauge_keys() == ["nvml/gpu-0.instant"]
    # Trapezoid: 100 W for 1 s, then a 100 -> 300 W ramp over 3 s = 100 + 600 J.
    assert s.gauge_energy_between("a", "b", "nvml/gpu-0.instant") == pytest.approx(700.0)
    (gap,) = s.gaps(2.0)
    assert gap["seconds"] == pytest.approx(3.0) and gap["start_unix_s"] == pytest.approx(1001.0)
    assert [r["nvml/gpu-0.instant_w"] for r in s.power_rows()] == [100.0, 300.0]  # zero-length intervals dropped
