"""AMD SMI GPU meter against a fake of the amdsmi module: the counter, wraps and resets, a stuck counter, the gauge
cross-check, HIP's device numbering, every reason it is unavailable, auto's choice of vendor, and one run end to
end on a fake AMD GPU."""

from __future__ import annotations

import csv
import json
import math
import sys

import pytest
from amdsmi_fake import (
    AMDSMI_STATUS_DRIVER_NOT_LOADED,
    AMDSMI_STATUS_NO_PERM,
    AMDSMI_STATUS_NOT_SUPPORTED,
    AmdSmiVirtualizationMode,
    ClockedAmdGpu,
    FakeAmdGpu,
    FakeAmdSmi,
)
from conftest import FakeClock, only_run_dir
from nvml_fake import FakeGpu, FakeNvml

from harness.meters import Accelerator, MeterRequest, Sampler, select_meters
from harness.meters.amdsmi import COUNTER, INTEGRATED, STALL_AFTER_S, AmdSmiMeter, visible_gpus
from harness.meters.hip_devices import hip_order
from harness.meters.nvml import NvmlMeter
from harness.meters.window import measure_window

MI300X = Accelerator("gpu", 0, "AMD Instinct MI300X")
H100 = Accelerator("gpu", 0, "NVIDIA H100 80GB HBM3")


def meter(gpus: list[FakeAmdGpu], logical: list[int] | None = None, env: dict | None = None,
          clock: FakeClock | None = None, api: str = "7.0") -> tuple[AmdSmiMeter, FakeAmdSmi]:
    smi = FakeAmdSmi(gpus, api=api)
    return AmdSmiMeter(logical, amdsmi=smi, env=env or {}, clock=clock or FakeClock(100.0)), smi


def test_counter_energy_socket_gauge_and_record():
    gpu, clock = FakeAmdGpu(current_w=250), FakeClock(100.0)
    m, smi = meter([gpu], clock=clock)
    assert m.method == COUNTER and m.components() == ["gpu-0"]
    m.start()
    gpu.add_joules(12.345, 0.05)
    gpu.current_w = 310
    clock.advance(0.05)
    assert m.read() == {"gpu-0": pytest.approx(12.345, abs=2e-5)}  # ticks of 15.3 µJ
    assert m.gauges() == {"gpu-0.power": 310.0}
    assert m.cross_checks() == {"gpu-0": "gpu-0.power"}
    assert m.power_limits_w() == {"gpu-0": 750.0}
    p = m.params()
    assert (p["amdsmi_lib_version"], p["rocm_version"]) == ("25.5.1", "7.0.2")
    g = p["gpus"][0]
    assert g["name"] == "AMD Instinct MI300X" and g["driver_version"] == "6.12.12" and g["power_cap_w"] == 750.0
    assert g["asic_serial"] == "0xCF1182F2988C0A4C" and g["uuid"] and g["counter_resolution_uj"] == pytest.approx(15.3)
    assert g["power_gauge"] == "current_socket_power" and g["counter_stall"] is None
    assert m.warnings() == []
    m.stop()
    m.stop()
    assert smi.inits == 0  # shut down once per meter


def test_older_bindings_and_an_mi200_averaged_gauge():
    # amd-smi 6.1: the accumulator under "power", unsupported fields as a raw 0xFFFF; MI200 fills only the average.
    gpu = FakeAmdGpu(market_name="AMD Instinct MI250X/MI250", current_w="N/A", average_w=94)
    m, _ = meter([gpu], api="6.1")
    m.start()
    gpu.add_joules(5.0, 0.05)
    assert m.read()["gpu-0"] == pytest.approx(5.0, abs=2e-5)
    assert m.gauges() == {"gpu-0.power": 94.0}
    p = m.params()
    assert p["gpus"][0]["power_gauge"] == "average_socket_power" and "MI200" in p["gpus"][0]["power_gauge_source"]
    assert p["amdsmi_lib_version"] == "24.5.1.0" and p["rocm_version"] is None


def test_wrap_is_counted_and_a_reset_told_apart_by_the_power_it_would_imply():
    clock = FakeClock(100.0)
    gpu = FakeAmdGpu(ticks=2**32 - 1000)  # an older firmware's 32-bit accumulator, about to wrap
    m, _ = meter([gpu], clock=clock)
    m.start()
    gpu.ticks, gpu.stamp_ns = 500, gpu.stamp_ns + 50_000_000  # wrapped: 1500 ticks in 50 ms
    clock.advance(0.05)
    assert m.read()["gpu-0"] == pytest.approx(1500 * gpu.resolution_uj * 1e-6)
    gpu.add_joules(10.0, 0.05)
    clock.advance(0.05)
    before = m.read()["gpu-0"]
    gpu.ticks, gpu.stamp_ns = 1000, gpu.stamp_ns + 50_000_000  # back by ~650k ticks in 50 ms: no wrap does that
    clock.advance(0.05)
    assert m.read()["gpu-0"] == pytest.approx(before + 1000 * gpu.resolution_uj * 1e-6)
    p = m.params()["gpus"][0]
    assert (p["counter_wraps"], p["counter_resets"]) == (1, 1)
    assert any("reset 1 time" in w for w in m.warnings())


def _sample(m: AmdSmiMeter, clock: FakeClock, gpus: list[FakeAmdGpu], seconds: float, counter_w: float | None,
            dt: float = 0.05, sampler: Sampler | None = None) -> None:
    """Readings every dt for `seconds`; each GPU's counter advances at counter_w (None: stuck)."""
    for _ in range(int(round(seconds / dt))):
        clock.advance(dt)
        for g in gpus:
            if counter_w is not None:
                g.add_joules(counter_w * dt, dt)
        sampler.sample_once() if sampler else m.read()


def test_a_stuck_counter_is_said_and_its_energy_is_the_gauge_never_zero():
    clock = FakeClock(100.0)
    stuck, healthy = FakeAmdGpu(current_w=300), FakeAmdGpu(current_w=200, asic_serial="0x2")
    m, _ = meter([stuck, healthy], clock=clock)
    s = Sampler([m], clock=clock, wall=lambda: 1.8e9)
    s.start(background=False)
    s.mark("a")
    # The healthy GPU's counter moves; the stuck one repeats one value (and timestamp) while drawing 300 W.
    for _ in range(10):
        clock.advance(0.05)
        healthy.add_joules(200 * 0.05, 0.05)
        s.sample_once()
    assert m.method == COUNTER  # half a second: not yet called stuck, but never 0 J either
    assert s.cumulative[-1]["amdsmi/gpu-0"] == pytest.approx(300 * 0.5)
    for _ in range(20):
        clock.advance(0.05)
        healthy.add_joules(200 * 0.05, 0.05)
        s.sample_once()
    s.mark("b")
    assert m.method == INTEGRATED
    w = measure_window(s, [m], "a", "b")
    assert w["components"]["amdsmi/gpu-0"]["joules"] == pytest.approx(300 * 1.5)
    assert w["components"]["amdsmi/gpu-1"]["joules"] == pytest.approx(200 * 1.5, rel=1e-4)
    assert w["method"] == INTEGRATED and w["cross_checks"] == []  # the gauge is the figure: nothing to compare
    (warning,) = m.warnings()
    assert "gpu-0: energy counter stuck at" in warning and "(its timestamp too)" in warning
    stall = m.params()["gpus"][0]["counter_stall"]
    assert stall["noticed_s"] >= STALL_AFTER_S and stall["watts"] == 300
    assert "until it stalled" in m.params()["note"]


def test_a_counter_that_stops_mid_run_hands_over_to_the_gauge_without_a_gap():
    clock = FakeClock(100.0)
    gpu = FakeAmdGpu(current_w=250)
    m, _ = meter([gpu], clock=clock)
    m.start()
    _sample(m, clock, [gpu], 0.5, counter_w=400.0)  # the counter (400 W) and the gauge (250 W) disagree
    figures = [m.read()["gpu-0"]]
    for _ in range(40):  # then the counter stops; the gauge goes on
        clock.advance(0.05)
        figures.append(m.read()["gpu-0"])
    assert m.method == INTEGRATED
    assert figures[-1] == pytest.approx(400 * 0.5 + 250 * 2.0)
    assert all(b > a for a, b in zip(figures, figures[1:], strict=False))  # no step back, no jump
    assert m.params()["gpus"][0]["counter_stall"]["last_moved_s"] == pytest.approx(0.5)


def test_a_run_too_short_to_call_the_counter_stuck_is_still_labelled_the_gauge():
    clock = FakeClock(100.0)
    gpu = FakeAmdGpu(current_w=120)
    m, _ = meter([gpu], clock=clock)
    m.start()
    _sample(m, clock, [gpu], 0.3, counter_w=None)
    assert m.read()["gpu-0"] == pytest.approx(120 * 0.3)
    m.stop()
    assert m.method == INTEGRATED
    assert "did not move in the 0.30 s" in m.warnings()[0]


def test_a_gpu_that_shows_neither_energy_nor_power_has_no_figure():
    # The second die of an MI250X: its counter does not move and its gauge reads 0 W.
    clock = FakeClock(100.0)
    die = FakeAmdGpu(market_name="AMD Instinct MI250X/MI250", current_w="N/A", average_w=0)
    m, _ = meter([die], clock=clock)
    m.start()
    _sample(m, clock, [die], 1.5, counter_w=None)
    assert math.isnan(m.read()["gpu-0"])
    m.stop()
    assert m.method == COUNTER
    assert any("neither the energy counter nor the socket gauge" in w for w in m.warnings())


def test_no_energy_counter_in_a_vm_guest_integrates_the_gauge_and_says_so():
    clock = FakeClock(100.0)
    vf = FakeAmdGpu(counter_error=AMDSMI_STATUS_NOT_SUPPORTED, mode=AmdSmiVirtualizationMode.GUEST, current_w=100)
    m, _ = meter([vf], clock=clock)
    assert m.method == INTEGRATED and "VM guest" in m.ready()
    m.start()
    clock.advance(2.0)
    vf.current_w = 300
    assert m.read()["gpu-0"] == pytest.approx(0.5 * (100 + 300) * 2.0)
    assert m.cross_checks() == {}
    assert "energy counter unavailable (unsupported in a VM guest)" in m.warnings()[0]


def _sampled(counter_w: float, gauge_w: int, seconds: float = 2.0):
    clock = FakeClock(100.0)
    gpu = FakeAmdGpu(current_w=gauge_w)
    m, _ = meter([gpu], clock=clock)
    s = Sampler([m], clock=clock, wall=lambda: 1.8e9)
    s.start(background=False)
    s.mark("a")
    _sample(m, clock, [gpu], seconds, counter_w, sampler=s)
    s.mark("b")
    return measure_window(s, [m], "a", "b")


def test_cross_check_counter_against_the_integrated_socket_gauge():
    w = _sampled(counter_w=300.0, gauge_w=300)
    assert w["total_j"] == pytest.approx(600.0, rel=1e-5) and w["method"] == COUNTER
    (check,) = w["cross_checks"]
    assert check["what"] == "amdsmi/gpu-0" and check["disagreement_pct"] == pytest.approx(0.0, abs=1e-3)
    (check,) = _sampled(counter_w=300.0, gauge_w=270)["cross_checks"]
    assert check["disagreement_pct"] == pytest.approx(-10.0, abs=1e-3)


def test_hip_numbers_gpus_after_the_visible_devices_variables():
    names = {0: {"aa"}, 1: {"bb"}, 2: {"cf1182f2988c0a4c"}, 3: {"dd"}}
    order = lambda env: hip_order(env, 4, names.__getitem__)  # noqa: E731
    assert order({}) == [0, 1, 2, 3]
    assert order({"HIP_VISIBLE_DEVICES": "2,0"}) == [2, 0]
    assert order({"CUDA_VISIBLE_DEVICES": "3"}) == [3]  # HIP honours it where HIP_VISIBLE_DEVICES is unset
    assert order({"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "3"}) == [1]
    assert order({"ROCR_VISIBLE_DEVICES": "1,2,3", "HIP_VISIBLE_DEVICES": "1"}) == [2]  # HIP picks from ROCr's
    assert order({"ROCR_VISIBLE_DEVICES": "GPU-CF1182F2988C0A4C,0"}) == [2, 0]
    assert order({"HIP_VISIBLE_DEVICES": ""}) == []
    with pytest.raises(RuntimeError, match="names GPU 2, but 2 are visible"):
        order({"ROCR_VISIBLE_DEVICES": "0,1", "HIP_VISIBLE_DEVICES": "2"})
    with pytest.raises(ValueError, match="neither a GPU index"):
        order({"HIP_VISIBLE_DEVICES": "MI300"})


def test_only_the_visible_and_used_amd_gpus_are_metered():
    gpus = [FakeAmdGpu(market_name=f"card{i}", asic_serial=f"0x{i + 10:X}") for i in range(4)]
    m, _ = meter(gpus, logical=[0], env={"HIP_VISIBLE_DEVICES": "2,0"})
    assert [g["name"] for g in m.params()["gpus"]] == ["card2"]
    m, _ = meter(gpus, logical=[1], env={"ROCR_VISIBLE_DEVICES": "GPU-D,GPU-B"})
    assert [g["name"] for g in m.params()["gpus"]] == ["card1"] and m.components() == ["gpu-1"]
    smi = FakeAmdSmi(gpus)
    assert visible_gpus(smi, env={"CUDA_VISIBLE_DEVICES": "3,GPU-B"}) == [Accelerator("gpu", 0, "AMD GPU card3"),
                                                                           Accelerator("gpu", 1, "AMD GPU card1")]
    assert visible_gpus(FakeAmdSmi([FakeAmdGpu()]), env={}) == [MI300X]
    assert smi.inits == 0


def test_each_reason_it_is_unavailable(monkeypatch, tmp_path, capsys):
    def reason(accels=(MI300X,), **kw):
        return AmdSmiMeter.probe(MeterRequest(**kw), list(accels)).reason

    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed: `import amdsmi` fails
    assert reason() == ("AMD SMI: the amdsmi module is not installed (install the amd extra; it needs ROCm's "
                        "libamd_smi.so too)")
    assert reason(accels=()).startswith("AMD SMI: no AMD GPU among the run's devices (backend cpu); the amdsmi")
    # Installed without ROCm's library: amd-smi 7 prints a complaint and fails with a KeyError on import.
    package = tmp_path / "site" / "amdsmi"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("print('Unable to find libamd_smi.so library')\n"
                                         "raise KeyError('libamd_smi.so')\n")
    monkeypatch.delitem(sys.modules, "amdsmi")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert reason() == "AMD SMI: libamd_smi.so not found (ROCm's amd-smi-lib not installed, or ROCM_PATH not set)"
    assert capsys.readouterr().out == ""  # its complaint is not printed into the harness's output
    assert reason(accels=(H100,), amdsmi=FakeAmdSmi([])).startswith(
        "AMD SMI: no AMD GPU among the run's devices (its GPUs are not AMD's: NVIDIA H100")
    assert reason(amdsmi=FakeAmdSmi([])) == "AMD SMI: no AMD GPU here (amdgpu sees none)"
    denied = FakeAmdSmi([FakeAmdGpu()], init_error=AMDSMI_STATUS_NO_PERM)
    assert reason(amdsmi=denied) == "AMD SMI: permission denied (the user needs the render and video groups)"
    no_driver = FakeAmdSmi([FakeAmdGpu()], init_error=AMDSMI_STATUS_DRIVER_NOT_LOADED)
    assert reason(amdsmi=no_driver) == "AMD SMI: amdgpu driver not loaded"
    guest = FakeAmdGpu(counter_error=AMDSMI_STATUS_NOT_SUPPORTED, mode=AmdSmiVirtualizationMode.GUEST,
                       current_w="N/A")
    assert reason(amdsmi=FakeAmdSmi([guest])) == (
        "AMD SMI gpu-0 (AMD Instinct MI300X): no energy counter (unsupported in a VM guest) and no socket power "
        "gauge: nothing to meter it by")
    assert reason(amdsmi=FakeAmdSmi([FakeAmdGpu()])).startswith("ok: 1 AMD GPU(s) (0:AMD Instinct MI300X)")


def test_auto_meters_an_amd_gpu_with_amdsmi_and_an_nvidia_gpu_with_nvml(tmp_path):
    def choose(accel, amd=None, nv=None):
        amd = amd or FakeAmdSmi([FakeAmdGpu()])
        req = MeterRequest(rapl_root=tmp_path, amdsmi=amd, nvml=nv or FakeNvml([FakeGpu()]))
        meters, unused = select_meters(req, [accel])
        for m in meters:
            m.stop()
        return [m.name for m in meters], {u["name"]: u["reason"] for u in unused}

    names, unused = choose(MI300X)
    assert names == ["amdsmi", "cpu-model"] and "gpu-energy" not in unused
    assert unused["nvml"] == "NVML: no NVIDIA GPU among the run's devices (its AMD GPUs are amdsmi's)"
    names, unused = choose(H100)
    assert names == ["nvml", "cpu-model"] and "gpu-energy" not in unused
    assert "its GPUs are not AMD's" in unused["amdsmi"]
    # AMD SMI unusable on an AMD GPU: NVML does not claim it, and the GPU is declared NOT metered, for AMD SMI's reason.
    names, unused = choose(MI300X, amd=FakeAmdSmi([], init_error=AMDSMI_STATUS_DRIVER_NOT_LOADED))
    assert names == ["cpu-model"]
    assert unused["gpu-energy"].startswith("GPU energy NOT metered (AMD SMI: amdgpu driver not loaded)")
    assert NvmlMeter.covers(Accelerator("gpu", 0, "FAKE GPU")) and not AmdSmiMeter.covers(H100)
    assert AmdSmiMeter.covers(Accelerator("gpu", 0, "gfx942:sramecc+:xnack-"))  # how JAX may name an MI300X


@pytest.mark.e2e
def test_a_run_on_a_fake_amd_gpu_is_measured_end_to_end(tmp_path, monkeypatch):
    """`harness run --meter amdsmi` on the CPU with a fake AMD GPU among its devices: the record, the gauge in
    power.csv, the cross-check, and the site's badge."""
    from harness.cli import main
    from harness.report.site.build import build_site
    from harness.runner import devices

    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi([ClockedAmdGpu(current_w=300)]))
    local = devices.local_accelerators
    monkeypatch.setattr(devices, "local_accelerators", lambda d, p: [*local(d, p), MI300X])
    out = tmp_path / "out"
    assert main(["run", "--workload", "switch-tiny", "--max-steps", "20", "--meter", "amdsmi", "--no-progress",
                 "--output-dir", str(out)]) in (0, 1)
    run = only_run_dir(out)
    r = json.loads((run / "result.json").read_text())
    e = r["energy"]
    assert e["method"] == COUNTER and e["components"]["amdsmi/gpu-0"]["part"] == "accelerator"
    assert e["total_j"] == pytest.approx(300 * r["timing"]["run_s"], rel=0.05)
    (gpu,) = e["meters"][0]["gpus"]
    assert gpu["name"] == "AMD Instinct MI300X" and gpu["power_gauge"] == "current_socket_power"
    (check,) = [c for c in e["cross_checks"] if c["what"] == "amdsmi/gpu-0"]
    assert abs(check["disagreement_pct"]) < 2.0
    with open(run / "power.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(row["amdsmi/gpu-0.power_w"]) == 300.0 for row in rows)
    page = build_site([out], tmp_path / "site").parent
    html = "".join(p.read_text() for p in page.rglob("*.html"))
    assert '<span class="badge measured">measured</span>' in html
