"""NVML GPU meter against a fake of pynvml: counters, resets, missing fields, permissions, other processes."""

from __future__ import annotations

import pynvml
import pytest
from nvml_fake import FakeGpu, FakeNvml

from harness.meters import Sampler
from harness.meters.nvml import NvmlMeter, parse_visible_devices
from harness.meters.window import measure_window

OWN_PID = 4242


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def meter(gpus: list[FakeGpu], logical: list[int] | None = None, env: dict | None = None,
          clock: Clock | None = None) -> tuple[NvmlMeter, FakeNvml]:
    nv = FakeNvml(gpus)
    return NvmlMeter(logical, nvml=nv, env=env or {}, clock=clock or Clock(), pid=OWN_PID), nv


def test_counter_energy_and_instant_gauge():
    gpu = FakeGpu(watts=250.0)
    m, _ = meter([gpu])
    assert m.method == "measured:nvml-energy-counter"
    assert m.components() == ["gpu-0"]
    m.start()
    gpu.energy_mj += 12_345  # 12.345 J
    gpu.watts = 310.5
    assert m.read() == {"gpu-0": pytest.approx(12.345)}
    assert m.gauges() == {"gpu-0.instant": pytest.approx(310.5)}
    assert m.cross_checks() == {"gpu-0": "gpu-0.instant"}
    p = m.params()
    assert p["driver"] == "550.54.15"
    assert p["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and p["gpus"][0]["power_limit_w"] == 700.0
    assert "POWER_INSTANT" in p["gpus"][0]["power_gauge_source"]
    assert m.warnings() == []


def test_counter_reset_counts_energy_since_reset_and_warns():
    gpu = FakeGpu(energy_mj=5_000_000)
    m, _ = meter([gpu])
    m.start()
    gpu.energy_mj += 2_000
    assert m.read()["gpu-0"] == pytest.approx(2.0)
    gpu.energy_mj = 700  # driver reloaded: counter restarted from 0 and has 0.7 J since
    assert m.read()["gpu-0"] == pytest.approx(2.7)
    assert m.params()["gpus"][0]["counter_resets"] == 1
    assert any("reset 1 time" in w for w in m.warnings())


def test_missing_instant_field_falls_back_to_power_usage_and_says_it_is_averaged():
    gpu = FakeGpu(has_instant_field=False, watts=200.0)
    m, _ = meter([gpu])
    m.start()
    assert m.gauges()["gpu-0.instant"] == pytest.approx(200.0)
    assert "1 s moving average" in m.params()["gpus"][0]["power_gauge_source"]


def test_no_energy_counter_integrates_the_gauge_and_is_labelled_so():
    clock = Clock()
    gpu = FakeGpu(has_counter=False, watts=100.0)
    m, _ = meter([gpu], clock=clock)
    assert m.method == "measured:nvml-power-integrated"
    assert m.update_period_s == 0.0
    m.start()
    clock.t += 2.0
    gpu.watts = 300.0
    assert m.read()["gpu-0"] == pytest.approx(0.5 * (100 + 300) * 2.0)  # trapezoid
    assert m.cross_checks() == {}  # the gauge is the figure itself: nothing independent to compare
    assert "energy counter unavailable (not supported on this GPU)" in m.warnings()[0]


def test_memory_power_is_a_gauge_never_added_to_energy():
    gpu = FakeGpu(memory_watts=55.0)
    m, _ = meter([gpu])
    m.start()
    assert m.gauges()["gpu-0.memory"] == pytest.approx(55.0)
    assert m.components() == ["gpu-0"]  # nested inside the board counter: not a component
    assert "gpu-0.memory" not in meter([FakeGpu()])[0].gauges()


def test_only_the_visible_and_used_gpus_are_metered():
    gpus = [FakeGpu(uuid=f"GPU-{i}", name=f"card{i}") for i in range(4)]
    m, _ = meter(gpus, logical=[0], env={"CUDA_VISIBLE_DEVICES": "2,0"})
    assert [g["name"] for g in m.params()["gpus"]] == ["card2"]
    m, _ = meter(gpus, logical=[1], env={"CUDA_VISIBLE_DEVICES": "GPU-3,GPU-1"})
    assert [g["name"] for g in m.params()["gpus"]] == ["card1"]
    assert m.components() == ["gpu-1"]
    m, _ = meter(gpus, env={"CUDA_VISIBLE_DEVICES": "1,3"})
    assert [g["name"] for g in m.params()["gpus"]] == ["card1", "card3"]


def test_visible_devices_parsing():
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("0, 2") == ["0", "2"]
    assert parse_visible_devices("1,foo,2") == ["1"]  # CUDA stops at the first invalid entry
    with pytest.raises(ValueError, match="MIG slice"):
        parse_visible_devices("MIG-abc")


def test_probe_reasons():
    nv = FakeNvml([FakeGpu()])
    assert NvmlMeter.check([0], nvml=nv, env={}).available
    assert nv.inits == 0  # the probe shuts NVML down again
    denied = FakeNvml([FakeGpu()], init_error=FakeNvml.NVML_ERROR_NO_PERMISSION)
    assert NvmlMeter.check([0], nvml=denied, env={}).reason == "NVML: permission denied by the driver"
    no_driver = FakeNvml([], init_error=FakeNvml.NVML_ERROR_DRIVER_NOT_LOADED)
    assert NvmlMeter.check([0], nvml=no_driver, env={}).reason == "NVML: NVIDIA driver not loaded"
    mig = NvmlMeter.check([0], nvml=FakeNvml([FakeGpu()]), env={"CUDA_VISIBLE_DEVICES": "MIG-1"})
    assert not mig.available and "MIG" in mig.reason
    hidden = NvmlMeter.check([0], nvml=FakeNvml([FakeGpu()]), env={"CUDA_VISIBLE_DEVICES": ""})
    assert not hidden.available and "not among the 0 visible" in hidden.reason
    bad = NvmlMeter.check([0], nvml=FakeNvml([FakeGpu()]), env={"CUDA_VISIBLE_DEVICES": "5"})
    assert not bad.available and "NVML sees 1" in bad.reason


def test_real_pynvml_on_a_machine_without_driver_says_so():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    reason = NvmlMeter.check([0]).reason
    assert reason in ("NVML: no NVIDIA driver (libnvidia-ml.so not found)", "NVML: NVIDIA driver not loaded")


def test_other_processes_are_warned_about_and_rechecked_over_time():
    clock = Clock()
    gpu = FakeGpu(pids=[OWN_PID])
    m, nv = meter([gpu], clock=clock)
    m.start()
    assert m.warnings() == []
    gpu.pids = [OWN_PID, 777]
    m.read()
    assert m.warnings() == []  # not rechecked yet: the process list is queried every few seconds
    clock.t += 6.0
    m.read()
    assert any("pids [777]" in w for w in m.warnings())
    assert m.params()["gpus"][0]["other_pids"] == [777]


def test_container_pid_namespace_is_reported_as_unattributed():
    gpu = FakeGpu(pids=[11, 12])  # host PIDs; ours (4242) is not among them
    m, _ = meter([gpu])
    m.start()
    (w,) = m.warnings()
    assert "2 processes" in w and "PID namespace" in w


def _sampled(watts: float, gauge_watts: float, ticks: int, dt: float = 0.05):
    clock = Clock()
    gpu = FakeGpu(watts=gauge_watts)
    m, _ = meter([gpu], clock=clock)
    s = Sampler([m], clock=clock, wall=lambda: 1.8e9)
    s.start(background=False)
    s.mark("a")
    for _ in range(ticks):
        clock.t += dt
        gpu.energy_mj += int(round(watts * dt * 1000))
        s.sample_once()
    s.mark("b")
    return s, m


def test_cross_check_counter_against_integrated_instant_power():
    s, m = _sampled(watts=300.0, gauge_watts=300.0, ticks=40)
    w = measure_window(s, [m], "a", "b")
    assert w["total_j"] == pytest.approx(300.0 * 2.0)
    (check,) = w["cross_checks"]
    assert check["a"]["joules"] == pytest.approx(600.0) and check["b"]["joules"] == pytest.approx(600.0)
    assert check["disagreement_pct"] == pytest.approx(0.0, abs=1e-9)
    s, m = _sampled(watts=300.0, gauge_watts=270.0, ticks=40)
    (check,) = measure_window(s, [m], "a", "b")["cross_checks"]
    assert check["disagreement_pct"] == pytest.approx(-10.0)


def test_window_shorter_than_counter_update_is_flagged_not_zero():
    s, m = _sampled(watts=300.0, gauge_watts=300.0, ticks=1, dt=0.05)  # 50 ms < ~100 ms counter period
    w = measure_window(s, [m], "a", "b")
    assert w["total_j"] is None
    assert w["components"]["nvml/gpu-0"]["joules"] is None
    assert "not measurable, not 0 J" in w["flags"][0]
