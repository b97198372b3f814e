"""emissions.csv in CodeCarbon's format: written under the header a file already has, read back by pandas."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from conftest import make_run

from harness.results.emissions import CODECARBON_COLUMNS, COLUMNS, append_row, row_from_record

# The header CodeCarbon 3.3.0 writes (codecarbon/output_methods/emissions_data.py, EmissionsData, in order),
# copied from its release rather than from our own constant, so that a drift in ours shows.
CODECARBON_3_HEADER = (
    "timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
    "cpu_energy,gpu_energy,ram_energy,energy_consumed,water_consumed,country_name,country_iso_code,region,"
    "cloud_provider,cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,"
    "longitude,latitude,ram_total_size,tracking_mode,cpu_utilization_percent,gpu_utilization_percent,"
    "ram_utilization_percent,ram_used_gb,on_cloud,pue,wue")
CODECARBON_3_ROW = (
    "2026-11-01T10:00:00,codecarbon,5b0fa12a-3dd7-45bb-9766-cc326314d9f1,5b0fa12a-3dd7-45bb-9766-cc326314d9f1,"
    "12.5,0.0001,8e-06,42.5,0.0,3.0,0.0001,0.0,1e-05,0.00011,0.0,France,FRA,île-de-france,,,Linux-6.1,3.11.7,"
    "3.3.0,8,Intel(R) Xeon(R),0,,2.35,48.85,16.0,machine,12.5,0.0,30.0,4.8,N,1.0,0.0")
CODECARBON_2_HEADER = ",".join(CODECARBON_COLUMNS[i] for i in range(len(CODECARBON_COLUMNS))
                               if CODECARBON_COLUMNS[i] not in ("experiment_id", "water_consumed",
                                                                "cpu_utilization_percent", "gpu_utilization_percent",
                                                                "ram_utilization_percent", "ram_used_gb", "wue"))


def _row(tmp_path, **kwargs):
    record = make_run(**kwargs)
    return record, row_from_record(record, tmp_path / "result.json")


def test_our_header_is_codecarbons_then_ours():
    assert ",".join(CODECARBON_COLUMNS) == CODECARBON_3_HEADER
    assert COLUMNS[len(CODECARBON_COLUMNS):] == ("energy_method", "harness_record")
    assert len(CODECARBON_2_HEADER.split(",")) == 31


def test_a_row_under_codecarbons_own_file_stays_aligned(tmp_path):
    # Before: our 33 columns appended under CodeCarbon 3.x's 38, so pandas read our emissions as `duration`.
    path = tmp_path / "emissions.csv"
    path.write_text(CODECARBON_3_HEADER + "\n" + CODECARBON_3_ROW + "\n")
    record, row = _row(tmp_path, energy_j=7200.0, run_s=20.0, method="modelled:cpu-tdp-utilization")
    assert append_row(path, row) is None
    df = pd.read_csv(path)
    assert list(df.columns) == CODECARBON_3_HEADER.split(",")  # its header, kept
    ours = df.iloc[1]
    assert ours["run_id"] == record.run_id
    assert ours["duration"] == pytest.approx(20.0)
    assert ours["energy_consumed"] == pytest.approx(7200.0 / 3.6e6)  # kWh
    assert ours["emissions"] == pytest.approx(record.co2e_gross_kg)
    assert ours["pue"] == pytest.approx(1.58) and pd.isna(ours["water_consumed"])  # blank: no figure of ours
    # Its header has no energy_method column: the method rides in project_name instead of being lost.
    assert "modelled:cpu-tdp-utilization" in ours["project_name"]
    assert df.iloc[0]["project_name"] == "codecarbon" and df.iloc[0]["duration"] == pytest.approx(12.5)


def test_a_row_under_codecarbon_2_stays_aligned(tmp_path):
    path = tmp_path / "emissions.csv"
    path.write_text(CODECARBON_2_HEADER + "\n")
    record, row = _row(tmp_path, energy_j=3600.0, run_s=10.0)
    append_row(path, row)
    df = pd.read_csv(path)
    assert len(df.columns) == 31 and df.iloc[0]["duration"] == pytest.approx(10.0)
    assert df.iloc[0]["energy_consumed"] == pytest.approx(0.001)


def test_a_new_file_carries_our_columns_and_the_method(tmp_path):
    path = tmp_path / "emissions.csv"
    record, row = _row(tmp_path, complete=False, energy_j=50.0)
    append_row(path, row)
    append_row(path, _row(tmp_path, run_id="second")[1])
    df = pd.read_csv(path)
    assert list(df.columns) == list(COLUMNS) and len(df) == 2
    assert df.iloc[0]["energy_method"] == "measured:nvml-energy-counter (INCOMPLETE)"
    assert df.iloc[0]["harness_record"] == str(tmp_path / "result.json")


def test_a_header_we_cannot_write_under_is_moved_aside_and_said(tmp_path):
    path = tmp_path / "emissions.csv"
    path.write_text("when,what\n1,2\n")
    (tmp_path / "emissions.csv.bak").write_text("an older backup\n")
    note = append_row(path, _row(tmp_path)[1])
    assert note and "emissions.csv_0.bak" in note and "started a new one" in note
    assert (tmp_path / "emissions.csv_0.bak").read_text() == "when,what\n1,2\n"
    assert (tmp_path / "emissions.csv.bak").read_text() == "an older backup\n"  # never overwritten
    assert next(csv.reader(open(path))) == list(COLUMNS)


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "emissions.csv"
    append_row(path, _row(tmp_path)[1])
    before = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError, match="No space"):
        append_row(path, _row(tmp_path, run_id="x")[1])
    assert path.read_bytes() == before  # no half row
