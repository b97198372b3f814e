"""Helpers shared by the test files: the CLI in a subprocess, a run's only result, a settable clock, and trained
runs shared by the tests that only read them."""

from __future__ import annotations

import os

# TensorFlow's oneDNN kernels round differently from XLA's; parity tests against JAX need them off, and
# TensorFlow reads this once, at import. Its start-up logging is noise in test output.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# One persistent XLA compilation cache for the whole session, this process and every subprocess it starts:
# the tests run the same tiny workloads many times, and a warm cache cuts a run's start from ~8 s to ~3 s
# on 2 cores. A fresh folder each session, so nothing carries over between versions.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile as _tempfile

    _OWN_CACHE = _tempfile.mkdtemp(prefix="harness-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


# XLA's CPU backend at LLVM -O0 for every test process: the tests check what the programs compute, not how
# fast, and the tiny programs they run cost more to optimise than to execute (the 8-device mesh probe: 71 s at
# the default level, 44 s at -O0 on 2 cores). Results agree to float32 rounding (the probe's losses to 5e-7).
# Harness records XLA_FLAGS in each result, so a test run's records say so.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()


def pytest_sessionfinish(session, exitstatus) -> None:
    if _OWN_CACHE:
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)

# The files that take longest (seconds of test time on the 2-core VM, `--durations=0` summed per file,
# 2026-12-07), run first. `--dist loadfile` hands files out in collection order, alphabetical by default, which left
# test_study (~50 s) to start last while the other worker sat idle; longest first keeps both busy to the end.
SLOW_FILES = {"test_infer.py": 90, "test_mesh.py": 59, "test_multiprocess.py": 55, "test_study.py": 52,
              "test_dropless.py": 42, "test_faults.py": 40, "test_base.py": 33,
              "test_decode.py": 32, "test_cli.py": 23, "test_disk_full.py": 18,
              "test_dispatch.py": 17, "test_tensorflow.py": 14, "test_text.py": 14, "test_claims.py": 14}


def pytest_collection_modifyitems(session, config, items) -> None:
    items.sort(key=lambda item: -SLOW_FILES.get(item.path.name, 0))  # stable: a file's own order is kept


import functools  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def harness(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """`python -m harness.cli ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`tiny_run(workload, framework)`: the folder of one converged run (`harness run --workload W --framework F
    --meter fake --no-progress`, in this process), made the first time a test asks for it and shared by every
    test that only reads it; the folder's parent is the run's output folder (with emissions.csv). Read-only: a
    test that changes a run copies it first."""
    from harness.cli import main

    made: dict[tuple[str, str], Path] = {}

    def get(workload: str = "switch-tiny", framework: str = "jax") -> Path:
        if (workload, framework) not in made:
            out = tmp_path_factory.mktemp(f"{workload}-{framework}-run")
            assert main(["run", "--workload", workload, "--framework", framework, "--meter", "fake", "--no-progress",
                         "--output-dir", str(out)]) == 0
            made[workload, framework] = only_run_dir(out)
        return made[workload, framework]

    return get


@pytest.fixture(scope="session")
def switch_tiny_run(tiny_run) -> Path:
    """The session's switch-tiny run in JAX (tiny_run): read-only."""
    return tiny_run("switch-tiny", "jax")


TRAINING_STUDY = Path(__file__).resolve().parents[1] / "reference_results/cpu-2core/inference/training"


@pytest.fixture(scope="session")
def trained_switch_small():
    """(spec, params, held-out contexts) of a switch-small trained to its target on the default corpus (the first
    run of the shipped inference study's training, 2026-12-02): routing that real data crowds, as random weights
    never do."""
    import numpy as np

    from workloads.jax_impl.decode import params_from_flat
    from workloads.registry import WORKLOADS

    spec = WORKLOADS["switch-small"]
    weights = sorted(TRAINING_STUDY.glob("default/runs/*-switch-small-*/weights.npz"))[0]
    with np.load(weights) as npz:
        params = params_from_flat({k: npz[k] for k in npz.files})
    return spec, params, corpus_once(spec.corpus).eval_set()


@functools.cache
def corpus_once(cfg):
    """The corpus cfg names (workloads/sources.py open_corpus: a MarkovMixture, or the shipped text), built once a
    session per corpus config (the base corpus's tables take seconds to build, and a dense/Switch pair shares its
    corpus). Read-only: it is stateless once built."""
    from workloads.sources import open_corpus

    return open_corpus(cfg)


def script(name: str):
    """scripts/<name>.py imported as a module (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def only_result(out_dir: Path) -> dict:
    results = list(Path(out_dir).glob("*/result.json"))
    assert len(results) == 1, results
    return json.loads(results[0].read_text())


def run_dirs(out_dir: Path) -> list[Path]:
    """The run directories in an output folder (which also holds emissions.csv), sorted."""
    return sorted(d for d in Path(out_dir).iterdir() if d.is_dir())


def only_run_dir(out_dir: Path) -> Path:
    (run_dir,) = run_dirs(out_dir)
    return run_dir


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


MESH_ENV = {"JAX_NUM_CPU_DEVICES": "8",
            "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=8"}


def with_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `extra` (for a subprocess that must see 8 simulated devices)."""
    import os

    return {**os.environ, **extra}


def dry_run(script: str, out: Path, timeout: int, **env: str):
    """scripts/<script> run as its dry run (DEMO_TINY=1) into `out`, with this interpreter unless PYTHON is given,
    and without scipy, as on the GPU machine (tests/device_image): the finished process (stdout and stderr
    captured)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(p for p in (str(root / "tests" / "device_image"), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(["bash", f"scripts/{script}"], cwd=root, capture_output=True, text=True, timeout=timeout,
                          env=with_env({"DEMO_TINY": "1", "OUT": str(out), "PYTHON": sys.executable,
                                        "PYTHONPATH": path, **env}))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_processes(n: int, *args: str, port: int | None = None) -> list[subprocess.Popen]:
    """`harness ARGS` as processes 0..n-1 of one multi-process run on this machine (one CPU device each)."""
    port = port or free_port()
    env = with_env({"JAX_NUM_CPU_DEVICES": "1"})
    return [subprocess.Popen([sys.executable, "-m", "harness.cli", *args, "--coordinator", f"127.0.0.1:{port}",
                              "--num-processes", str(n), "--process-id", str(i)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env) for i in range(n)]


def make_run(workload: str = "switch-tiny", *, run_id: str | None = None, seed: int = 0, status: str = "converged",
             energy_j: float | None = 100.0, method: str = "measured:nvml-energy-counter", complete: bool = True,
             run_s: float = 10.0, steps: int = 60, device: str = "cpu", region: str = "us-average",
             corpus: str = "default", accelerator_j: float | None = None, **changes):
    """A typed run record (harness/results/schema.py) with figures chosen by the test, built through the
    schema as the runner builds one: every derived figure follows from these."""
    import dataclasses

    from harness import carbon
    from harness.results.schema import (
        Component,
        Device,
        Energy,
        Environment,
        EvalPoint,
        Hardware,
        RunRecord,
        Status,
        Target,
        Timing,
        Training,
        Work,
    )
    from workloads.registry import WORKLOADS

    spec = WORKLOADS[workload]
    platform = "cpu" if device == "cpu" else "gpu"
    tokens = steps * spec.batch_size * spec.seq_len
    components = {"cpu-model/cpu": Component(joules=energy_j if accelerator_j is None else energy_j - accelerator_j,
                                             init_joules=1.0, method=method, part="cpu")}
    if accelerator_j is not None:
        components["nvml/gpu-0"] = Component(joules=accelerator_j, init_joules=1.0, method=method, part="accelerator",
                                             power_limit_w=700.0, peak_watts=accelerator_j / run_s * 1.2)
    marks = {"init_start": 1000.0, "init_stop": 1001.0, "run_start": 1001.0, "run_stop": 1001.0 + run_s}
    record = RunRecord(
        run_id=run_id or f"{workload}-seed{seed}", created_unix_s=1002.0 + run_s, workload=workload,
        status=Status(status), seed=seed, spec=json.loads(json.dumps(spec.to_dict())),
        data={"kind": "procedural", "corpus": corpus, "eval_sha256": "0" * 64, "eval_sequences": 64,
              "entropy_floor": 0.84},
        target=Target(target_loss=1.84, entropy_floor=0.84, max_steps=spec.max_steps),
        timing=Timing(init_s=1.0, run_s=run_s, marks_unix_s=marks),
        training=Training(steps=steps, tokens=tokens, train_flops_per_token=1e5, params_total=1000,
                          params_activated=500, framework={"framework": "jax"}),
        energy=Energy(window="run_start..run_stop", seconds=run_s, total_j=energy_j, method=method, basis=None,
                      device_j=energy_j, node_j=None, init_j=2.0, components=components, complete=complete,
                      incomplete_reasons=() if complete else ("cpu-model: 1 failed reading(s) in the window",)),
        work=Work(window="run_start..run_stop", seconds=run_s, tokens=tokens, model_flops=3e5 * tokens,
                  peak_flops_per_s=None if device == "cpu" else 989e12, peak={"devices": 1}),
        carbon=carbon.pricing(region),
        eval_trace=(EvalPoint(step=steps, elapsed_s=run_s, tokens=tokens, eval_loss=1.8, train_loss=1.9,
                              energy_j=energy_j, eval_start_unix_s=1000.5 + run_s,
                              eval_stop_unix_s=1001.0 + run_s),),
        environment=Environment(hardware=Hardware(platform="Linux-test", machine="x86_64", cpu_model="AMD EPYC",
                                                  logical_cpus=2, memory_gib=24.0,
                                                  devices=(Device(kind=device, platform=platform),)),
                                software={"python": "3.11"}))
    return dataclasses.replace(record, **changes)


def write_run(folder: Path, record=None, **kwargs) -> Path:
    """`record` (or make_run(**kwargs)) as `folder`/result.json; returns the file."""
    from harness.results.writer import write_record

    folder.mkdir(parents=True, exist_ok=True)
    return write_record(folder, record if record is not None else make_run(**kwargs))


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium_driver(javascript: bool = True, log_network: bool = True):
    """Headless Chromium from the distribution's packages, driven by Selenium; pytest.skip (or, with CI set,
    pytest.fail) when it is not installed."""
    import shutil

    import pytest

    chromium = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    driver = shutil.which("chromedriver") or (CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None)
    if not chromium or not driver:
        why = "no Chromium here: install the distribution's chromium and chromium-driver packages"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    # As this machine's probe starts it: no first-run, sync or background traffic (the network is closed).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(flag)
    if not javascript:
        opts.add_argument("--blink-settings=scriptEnabled=false")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if log_network else {})})
    return webdriver.Chrome(service=Service(driver), options=opts)
