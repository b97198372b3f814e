"""The GPU serving demonstration's one command (scripts/gpu_serve.sh), dry-run on the CPU with the tiny pair and a
fake NVML GPU: it trains, serves both routings under LoadGen and writes its summary, so that the script cannot rot
while no GPU is lent. (A file of its own, so that the suite's two workers run it beside gpu_demo.sh's dry run.)"""

from __future__ import annotations

import json

import pytest
from conftest import dry_run


@pytest.mark.e2e
@pytest.mark.dryrun
def test_the_serving_demo_dry_run_trains_serves_both_routings_and_summarises(tmp_path):
    out = tmp_path / "out"
    proc = dry_run("gpu_serve.sh", out, 300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["serve.txt", "serve_runs.tar.gz", "serve_summary.json",
                                                     "serve_summary.txt"]
    for stage in ("== machine", "== train", "== serve, Switch dropless", "== serve, Switch capacity", "== summary"):
        assert stage in (out / "serve.txt").read_text(), stage
    summary = json.loads((out / "serve_summary.json").read_text())
    assert summary["dry_run"] and summary["failed_stages"] == [] and set(summary["routings"]) == {"dropless",
                                                                                                  "capacity"}
    for routing, r in summary["routings"].items():
        (row,) = r["rows"]  # batch 1
        assert row["batch"] == 1 and set(row["models"]) == {"dense-tiny", "switch-tiny"}
        assert row["dense_over_switch_j_per_token"]["dense-tiny/switch-tiny"] > 0
        # the NVML meter's path, on the fake GPU
        assert all(m["energy_method"] == ["measured:nvml-energy-counter"] for m in row["models"].values())
        assert routing != "dropless" or row["models"]["switch-tiny"]["dropped_fraction"] == 0.0
    assert (out / "serve_summary.txt").read_text().startswith("every stage ran\nDRY RUN")
