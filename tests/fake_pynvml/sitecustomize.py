"""Started first by every Python process that has this folder on PYTHONPATH (the GPU demonstration's CPU dry
run): the runs on the CPU see the fake GPU of pynvml.py here as one of their devices, so that `--meter nvml`
takes the path it takes on a GPU. Test tooling only; nothing in harness/ knows of it."""

from __future__ import annotations

try:
    from harness import session
    from harness.meters.request import Accelerator

    _local = session.local_accelerators

    def _with_the_fake_gpu(devices, process):
        return [*_local(devices, process), Accelerator("gpu", 0, "FAKE GPU (dry run, not a measurement)")]

    session.local_accelerators = _with_the_fake_gpu
except ImportError:  # not where harness is importable: nothing to fake
    pass
