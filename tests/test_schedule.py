"""harness.carbon.schedule: hourly profile loading and lowest-CO2e (region, start) planning."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.carbon.accounting import CarbonInputError
from harness.carbon.schedule import Profile, example_profile_path, load_profile, plan_job

T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
HEADER = "timestamp,region,kg_per_kwh"

# Region A is flat-ish with one cheaper hour; region B has an obvious 3-hour trough at hours 4-6.
A = [0.5, 0.5, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
B = [0.6, 0.6, 0.6, 0.6, 0.1, 0.1, 0.1, 0.6, 0.6, 0.6]


def _stamp(hour: int) -> str:
    return f"2026-03-01T{hour:02d}:00Z"


def _rows(series: dict[str, list[float]]) -> list[str]:
    return [f"{_stamp(h)},{name},{v}" for name, values in series.items() for h, v in enumerate(values)]


def _write(tmp_path: Path, lines: list[str], name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _profile(tmp_path: Path, series: dict[str, list[float]]) -> Profile:
    return load_profile(_write(tmp_path, [HEADER, *_rows(series)]))


# --- loading -------------------------------------------------------------------------------------


def test_load_profile_reads_regions_in_file_order(tmp_path: Path) -> None:
    lines = ["# comment before the header", HEADER, "", *_rows({"A": A}), "# comment in the middle", *_rows({"B": B})]
    profile = load_profile(_write(tmp_path, lines))
    assert profile.regions == ("A", "B")
    assert profile.start_unix_s == T0
    assert profile.hours == 10
    assert profile.intensity["A"] == tuple(A)
    assert profile.intensity["B"] == tuple(B)
    assert profile.source == str(tmp_path / "p.csv")


def test_load_profile_accepts_offset_naive_and_shuffled_rows(tmp_path: Path) -> None:
    lines = [
        HEADER,
        "2026-03-01T01:00:00+00:00,A,0.2",  # explicit +00:00
        "2026-03-01T00:00,A,0.1",  # naive -> UTC
        "2026-03-01T07:30+05:30,A,0.3",  # = 02:00Z
    ]
    profile = load_profile(_write(tmp_path, lines))
    assert profile.start_unix_s == T0
    assert profile.intensity["A"] == (0.1, 0.2, 0.3)


def _error(tmp_path: Path, lines: list[str]) -> str:
    path = _write(tmp_path, lines)
    with pytest.raises(CarbonInputError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_gap_in_hours_names_line(tmp_path: Path) -> None:
    # Both regions skip 02:00, so the overall range is 00-03 and each region has a hole.
    rows = [f"{_stamp(h)},{r},0.3" for r in ("A", "B") for h in (0, 1, 3)]
    message = _error(tmp_path, [HEADER, *rows])
    assert f"{tmp_path / 'p.csv'}:4:" in message  # A's 03:00 row
    assert "missing 2026-03-01T02:00Z" in message


def test_duplicate_hour_names_line(tmp_path: Path) -> None:
    rows = _rows({"A": [0.1, 0.2, 0.3]})
    message = _error(tmp_path, [HEADER, *rows, f"{_stamp(1)},A,0.9"])
    assert ":5:" in message and "duplicate hour 2026-03-01T01:00Z" in message and "line 3" in message


def test_region_missing_last_hour_names_line(tmp_path: Path) -> None:
    rows = _rows({"A": [0.1, 0.2, 0.3], "B": [0.1, 0.2]})
    message = _error(tmp_path, [HEADER, *rows])
    assert ":6:" in message and "'B'" in message and "missing 2026-03-01T02:00Z" in message


def test_region_missing_first_hour_names_line(tmp_path: Path) -> None:
    rows = [*_rows({"A": [0.1, 0.2, 0.3]}), f"{_stamp(1)},B,0.2", f"{_stamp(2)},B,0.3"]
    message = _error(tmp_path, [HEADER, *rows])
    assert ":5:" in message and "'B'" in message and "missing 2026-03-01T00:00Z" in message


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (f"{_stamp(2)},A,-0.1", "kg_per_kwh must be"),
        (f"{_stamp(2)},A,nan", "kg_per_kwh must be"),
        (f"{_stamp(2)},A,abc", "kg_per_kwh must be"),
        (f"{_stamp(2)},A,412", "g/kWh?"),
        ("2026-03-01 02:00:00junk,A,0.3", "timestamp must be"),
        ("2026-03-01,A,0.3", "timestamp must be"),
        ("1772330400,A,0.3", "timestamp must be"),
        ("2026-03-01T02:30Z,A,0.3", "whole UTC hour"),
        (f"{_stamp(2)},,0.3", "region must be"),
        (f"{_stamp(2)},A", "expected 3 fields"),
    ],
)
def test_bad_row_names_line(tmp_path: Path, row: str, needle: str) -> None:
    message = _error(tmp_path, ["# doc", HEADER, f"{_stamp(0)},A,0.1", f"{_stamp(1)},A,0.2", row])
    assert f"{tmp_path / 'p.csv'}:5:" in message
    assert needle in message


def test_bad_header_and_empty_and_missing_file(tmp_path: Path) -> None:
    assert "header must be timestamp,region,kg_per_kwh" in _error(tmp_path, ["time,region,g_per_kwh"])
    assert "no data rows" in _error(tmp_path, ["# only comments", HEADER])
    with pytest.raises(CarbonInputError, match="cannot read carbon-intensity profile"):
        load_profile(tmp_path / "absent.csv")


# --- planning ------------------------------------------------------------------------------------


def test_plan_picks_trough_and_reports_baseline(tmp_path: Path) -> None:
    plan = plan_job(_profile(tmp_path, {"A": A, "B": B}), hours=3, power_kw=2.0)
    # Best: B from hour 4, 3 h x 2 kW x 0.1 kg/kWh.
    assert plan.best.region == "B"
    assert plan.best.start_unix_s == T0 + 4 * 3600
    assert plan.best.energy_kwh == pytest.approx(6.0)
    assert plan.best.co2e_kg == pytest.approx(0.6)
    # Baseline: A from hour 0, 2 kW x (0.5 + 0.5 + 0.4).
    assert plan.baseline.region == "A"
    assert plan.baseline.start_unix_s == T0
    assert plan.baseline.co2e_kg == pytest.approx(2.8)
    assert plan.saving_kg == pytest.approx(2.2)
    assert plan.saving_pct == pytest.approx(100 * 2.2 / 2.8)
    assert plan.candidates == 2 * 8
    # A's best windows (starts 0, 1, 2 all contain the 0.4 hour) tie, so the earliest wins.
    assert [(w.region, w.start_unix_s, round(w.co2e_kg, 9)) for w in plan.per_region_best] == [
        ("A", T0, 2.8),
        ("B", T0 + 4 * 3600, 0.6),
    ]


def test_regions_order_sets_baseline_and_subset(tmp_path: Path) -> None:
    profile = _profile(tmp_path, {"A": A, "B": B})
    plan = plan_job(profile, hours=3, power_kw=2.0, regions=["B", "A"])
    assert plan.baseline.region == "B" and plan.baseline.co2e_kg == pytest.approx(2 * 1.8)
    assert [w.region for w in plan.per_region_best] == ["B", "A"]
    only_a = plan_job(profile, hours=3, power_kw=2.0, regions=["A"])
    assert only_a.best == only_a.baseline and only_a.saving_kg == 0.0 and only_a.saving_pct == 0.0
    assert only_a.candidates == 8


def test_fractional_last_hour_is_weighted(tmp_path: Path) -> None:
    profile = _profile(tmp_path, {"A": A, "B": B})
    plan = plan_job(profile, hours=2.5, power_kw=2.0)
    # B from 4: 0.1 + 0.1 + 0.5 x 0.1; baseline A from 0: 0.5 + 0.5 + 0.5 x 0.4.
    assert plan.best.region == "B" and plan.best.start_unix_s == T0 + 4 * 3600
    assert plan.best.co2e_kg == pytest.approx(2.0 * 0.25)
    assert plan.baseline.co2e_kg == pytest.approx(2.0 * 1.2)
    assert plan.best.energy_kwh == pytest.approx(5.0)
    assert plan.candidates == 2 * 8  # 2.5 h touches 3 slots


def test_fraction_changes_the_winner(tmp_path: Path) -> None:
    # Counting the partial hour in full would pick start 3 (1.05 < 1.4); weighted, start 0 wins (0.5 < 0.735).
    profile = _profile(tmp_path, {"A": [0.2, 0.2, 1.0, 0.35, 0.35, 0.35]})
    plan = plan_job(profile, hours=2.1, power_kw=1.0)
    assert plan.best.start_unix_s == T0
    assert plan.best.co2e_kg == pytest.approx(0.2 + 0.2 + 0.1 * 1.0)


def test_pue_multiplies_energy_and_co2e(tmp_path: Path) -> None:
    profile = _profile(tmp_path, {"A": A, "B": B})
    plain = plan_job(profile, hours=3, power_kw=2.0)
    scaled = plan_job(profile, hours=3, power_kw=2.0, pue=1.5)
    assert scaled.best.energy_kwh == pytest.approx(1.5 * plain.best.energy_kwh)
    assert scaled.best.co2e_kg == pytest.approx(1.5 * 0.6)
    assert scaled.baseline.co2e_kg == pytest.approx(1.5 * 2.8)
    assert scaled.saving_pct == pytest.approx(plain.saving_pct)


def test_ties_pick_earliest_then_region_order(tmp_path: Path) -> None:
    # Same trough at hours 2 and 6 in both regions.
    trough = [0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.1, 0.5]
    profile = _profile(tmp_path, {"A": trough, "B": trough})
    plan = plan_job(profile, hours=1, power_kw=1.0)
    assert (plan.best.region, plan.best.start_unix_s) == ("A", T0 + 2 * 3600)
    plan = plan_job(profile, hours=1, power_kw=1.0, regions=["B", "A"])
    assert (plan.best.region, plan.best.start_unix_s) == ("B", T0 + 2 * 3600)


def test_tie_survives_float_rounding(tmp_path: Path) -> None:
    # Both windows are 0.3 kg, but prefix sums give 0.30000000000000004 vs 0.29999999999999993:
    # without a tolerance the later window would win.
    profile = _profile(tmp_path, {"A": [0.1, 0.2, 0.2, 0.1]})
    plan = plan_job(profile, hours=2, power_kw=1.0)
    assert plan.best.start_unix_s == T0
    assert plan.saving_kg == 0.0


def test_job_must_fit_inside_profile(tmp_path: Path) -> None:
    profile = _profile(tmp_path, {"A": A, "B": B})
    assert plan_job(profile, hours=10, power_kw=1.0).candidates == 2
    with pytest.raises(CarbonInputError, match=r"job needs 10.5 h \(11 hourly slots\).*covers only 10 h"):
        plan_job(profile, hours=10.5, power_kw=1.0)
    with pytest.raises(CarbonInputError, match="covers only 10 h"):
        plan_job(profile, hours=11, power_kw=1.0)


def test_unknown_region_lists_valid_ones(tmp_path: Path) -> None:
    profile = _profile(tmp_path, {"A": A, "B": B})
    with pytest.raises(CarbonInputError, match=r"unknown region 'C'.*valid regions: A, B$"):
        plan_job(profile, hours=1, power_kw=1.0, regions=["A", "C"])
    with pytest.raises(CarbonInputError, match="non-empty list"):
        plan_job(profile, hours=1, power_kw=1.0, regions=[])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"hours": 0}, "hours must be"),
        ({"hours": -1}, "hours must be"),
        ({"hours": math.nan}, "hours must be"),
        ({"hours": math.inf}, "hours must be"),
        ({"power_kw": 0}, "power_kw must be"),
        ({"power_kw": "x"}, "power_kw must be"),
        ({"pue": 0.9}, "pue must be"),
    ],
)
def test_bad_job_inputs(tmp_path: Path, kwargs: dict, needle: str) -> None:
    profile = _profile(tmp_path, {"A": A})
    args = {"hours": 1.0, "power_kw": 1.0, **kwargs}
    with pytest.raises(CarbonInputError, match=needle):
        plan_job(profile, **args)


# --- shipped example -----------------------------------------------------------------------------


def test_example_profile_loads_and_picks_europe_north1() -> None:
    path = example_profile_path()
    assert "NOT MEASURED" in path.read_text(encoding="utf-8")
    profile = load_profile(path)
    assert profile.regions == ("us-central1", "europe-north1", "asia-south1")
    assert profile.hours == 72 and profile.start_unix_s == T0
    plan = plan_job(profile, hours=6, power_kw=10.0, pue=1.09)
    assert plan.best.region == "europe-north1"
    assert plan.baseline.region == "us-central1" and plan.baseline.start_unix_s == T0
    assert plan.candidates == 3 * 67
    assert 0 < plan.best.co2e_kg < plan.baseline.co2e_kg
    assert plan.saving_pct > 80
    assert [w.region for w in plan.per_region_best] == list(profile.regions)
