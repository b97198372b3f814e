"""Tests for harness.carbon: hand-computed CO2e cases, the paper's Table 4, validation, region data."""

from __future__ import annotations

import json
import math

import pytest

from harness.carbon import (
    DEFAULT_REGION,
    J_PER_KWH,
    CarbonInputError,
    UnknownRegionError,
    footprint,
    get_region,
    load_regions,
    paper_kwh,
    paper_tco2e,
)

ONE_KWH_J = 3.6e6

# Rows the brief and the paper pin down exactly (Patterson et al. 2021, Tables 1 and 4).
PAPER_ROWS = {
    "us-average": (1.58, 0.429, 0.429),
    "google-iowa-2020": (1.11, 0.478, 0.080),
    "google-georgia-2018": (1.10, 0.431, 0.431),
    "google-taiwan-2019": (1.12, 0.545, 0.545),
    "google-georgia-2019": (1.09, 0.415, 0.415),
    "google-north-carolina-2020": (1.09, 0.201, 0.177),
    "google-georgia-2020": (1.10, 0.403, 0.330),
    "azure-gpt3-2020": (1.10, 0.429, 0.429),
}

GCLOUD_EXPECTED = [
    "us-central1",
    "us-east1",
    "us-west1",
    "europe-west1",
    "europe-north1",
    "europe-west4",
    "asia-east1",
    "asia-northeast1",
]


# --- arithmetic on hand-computed cases -------------------------------------------------------------


def test_one_kwh_us_average() -> None:
    fp = footprint(ONE_KWH_J)
    assert fp.region == DEFAULT_REGION == "us-average"
    assert fp.node_kwh == pytest.approx(1.0)
    assert fp.pue == pytest.approx(1.58)
    assert fp.facility_kwh == pytest.approx(1.58)
    assert fp.co2e_gross_kg == pytest.approx(0.67782)  # 1.58 x 0.429
    assert fp.co2e_net_kg == pytest.approx(0.67782)
    assert fp.overrides == {}


def test_one_kwh_google_iowa() -> None:
    fp = footprint(ONE_KWH_J, region="google-iowa-2020")
    assert fp.facility_kwh == pytest.approx(1.11)
    assert fp.co2e_gross_kg == pytest.approx(0.53058)  # 1.11 x 0.478
    assert fp.co2e_net_kg == pytest.approx(0.0888)  # 1.11 x 0.080


def test_scales_linearly_and_zero_energy_is_zero() -> None:
    fp = footprint(10 * ONE_KWH_J, region="us-central1")
    reg = get_region("us-central1")
    assert fp.co2e_gross_kg == pytest.approx(10 * reg.pue * reg.gross_kg_per_kwh)
    zero = footprint(0.0)
    assert zero.facility_kwh == 0.0 and zero.co2e_gross_kg == 0.0 and zero.co2e_net_kg == 0.0


def test_j_per_kwh() -> None:
    assert J_PER_KWH == 3.6e6


# --- the paper's own formulas against its Table 4 ----------------------------------------------------


def test_paper_gpt3_row() -> None:
    # Table 4, GPT-3: 10,000 V100 x 14.8 days x 330 W x PUE 1.10 -> 1,287 MWh; x 0.429 -> 552.1 tCO2e.
    kwh = paper_kwh(hours=14.8 * 24, processors=10_000, avg_watts=330, pue=1.10)
    assert kwh / 1000 == pytest.approx(1287, rel=0.01)
    assert paper_tco2e(1287 * 1000, 0.429) == pytest.approx(552.1, rel=0.01)
    assert paper_tco2e(kwh, 0.429) == pytest.approx(552.1, rel=0.01)


def test_paper_evolved_transformer_nas_row() -> None:
    # Appendix D: (6.8 x 24 x 200 x 208 x 1.10 / 1000) x 0.431 / 1000 = 3.2 tCO2e.
    kwh = paper_kwh(6.8 * 24, 200, 208, 1.10)
    assert kwh / 1000 == pytest.approx(7.5, rel=0.01)
    assert paper_tco2e(kwh, 0.431) == pytest.approx(3.2, rel=0.01)


def test_footprint_agrees_with_paper_formula() -> None:
    # The same energy fed through joules must give the same tonnes as the paper's formula.
    hours, chips, watts = 14.8 * 24, 10_000, 330
    fp = footprint(hours * chips * watts * 3600, region="azure-gpt3-2020")
    assert fp.co2e_gross_kg / 1000 == pytest.approx(paper_tco2e(paper_kwh(hours, chips, watts, 1.10), 0.429))


# --- overrides ----------------------------------------------------------------------------------------


def test_pue_override_recorded() -> None:
    fp = footprint(ONE_KWH_J, pue=1.2)
    assert fp.overrides == {"pue": 1.2}
    assert fp.sources["pue"] == "user override"
    assert "us-average" in fp.sources["gross_kg_per_kwh"]
    assert fp.co2e_gross_kg == pytest.approx(1.2 * 0.429)


def test_gross_override_without_net_sets_net_equal_gross() -> None:
    fp = footprint(ONE_KWH_J, region="google-iowa-2020", carbon_intensity=0.3)
    assert fp.overrides == {"carbon_intensity": 0.3}
    assert fp.net_kg_per_kwh == fp.gross_kg_per_kwh == 0.3
    assert "no carbon-free energy" in fp.sources["net_kg_per_kwh"]
    assert fp.co2e_net_kg == pytest.approx(1.11 * 0.3)


def test_all_overrides() -> None:
    fp = footprint(2 * ONE_KWH_J, pue=1.5, carbon_intensity=0.5, net_intensity=0.1)
    assert fp.overrides == {"pue": 1.5, "carbon_intensity": 0.5, "net_intensity": 0.1}
    assert set(fp.sources.values()) == {"user override"}
    assert fp.co2e_gross_kg == pytest.approx(3.0 * 0.5)
    assert fp.co2e_net_kg == pytest.approx(3.0 * 0.1)


def test_net_override_alone_keeps_region_gross() -> None:
    fp = footprint(ONE_KWH_J, region="google-iowa-2020", net_intensity=0.0)
    assert fp.overrides == {"net_intensity": 0.0}
    assert fp.gross_kg_per_kwh == pytest.approx(0.478)
    assert fp.co2e_net_kg == 0.0


def test_to_dict_is_json_ready_and_detached() -> None:
    fp = footprint(ONE_KWH_J, pue=1.3)
    d = fp.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["overrides"] == {"pue": 1.3} and d["region"] == "us-average"
    d["overrides"]["pue"] = 9.0
    assert fp.overrides == {"pue": 1.3}


# --- validation ---------------------------------------------------------------------------------------


def test_pue_below_one_rejected() -> None:
    with pytest.raises(CarbonInputError, match=r"pue must be .*>= 1\.0.*0\.9"):
        footprint(ONE_KWH_J, pue=0.9)


def test_negative_energy_rejected() -> None:
    with pytest.raises(CarbonInputError, match=r"node_joules must be .*>= 0.*-1"):
        footprint(-1.0)


@pytest.mark.parametrize("kwarg", ["carbon_intensity", "net_intensity"])
def test_negative_intensity_rejected(kwarg: str) -> None:
    with pytest.raises(CarbonInputError, match=rf"{kwarg} must be .*>= 0"):
        footprint(ONE_KWH_J, **{kwarg: -0.1})


@pytest.mark.parametrize("bad", [math.nan, math.inf, "lots"])
def test_non_finite_energy_rejected(bad: object) -> None:
    with pytest.raises(CarbonInputError, match="node_joules"):
        footprint(bad)  # type: ignore[arg-type]


def test_unknown_region_lists_valid_names() -> None:
    with pytest.raises(UnknownRegionError) as info:
        footprint(ONE_KWH_J, region="mars-north1")
    message = str(info.value)
    assert "mars-north1" in message and "us-average" in message and "us-central1" in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_errors_are_value_errors_with_one_line() -> None:
    with pytest.raises(ValueError) as info:
        paper_kwh(1, 1, 1, pue=0.5)
    assert "\n" not in str(info.value)


def test_region_lookup_is_case_insensitive() -> None:
    assert get_region("US-Central1").name == "us-central1"


# --- region table -------------------------------------------------------------------------------------


def test_every_region_row_is_sane_and_sourced() -> None:
    regions = load_regions()
    assert len(regions) >= 10
    for name, reg in regions.items():
        assert reg.name == name and reg.label and reg.source.strip(), name
        assert 1.0 <= reg.pue < 3, name
        assert 0 < reg.gross_kg_per_kwh < 1.5, name
        assert 0 <= reg.net_kg_per_kwh <= reg.gross_kg_per_kwh, name
        assert reg.cfe_fraction is None or 0 <= reg.cfe_fraction <= 1, name


@pytest.mark.parametrize("name", sorted(PAPER_ROWS))
def test_paper_rows_match_paper(name: str) -> None:
    reg = get_region(name)
    pue, gross, net = PAPER_ROWS[name]
    assert (reg.pue, reg.gross_kg_per_kwh, reg.net_kg_per_kwh) == pytest.approx((pue, gross, net))
    assert "Patterson" in reg.source


def test_gcloud_regions_present_and_net_from_cfe() -> None:
    regions = load_regions()
    assert set(GCLOUD_EXPECTED) <= set(regions)
    for name in GCLOUD_EXPECTED:
        reg = regions[name]
        assert reg.cfe_fraction is not None
        assert reg.net_kg_per_kwh == pytest.approx(reg.gross_kg_per_kwh * (1 - reg.cfe_fraction), abs=1e-6)
        assert "approximation" in reg.source and "2024" in reg.source


def test_gcloud_spot_values() -> None:
    # Google Cloud 2024 region data: us-central1 412.72 g/kWh at 87% CFE; europe-north1 39.32 g at 98%.
    iowa = get_region("us-central1")
    assert iowa.gross_kg_per_kwh == pytest.approx(0.41272)
    assert iowa.cfe_fraction == pytest.approx(0.87)
    assert get_region("europe-north1").gross_kg_per_kwh == pytest.approx(0.03932)


def test_load_regions_returns_a_copy() -> None:
    regions = load_regions()
    regions.pop("us-average")
    assert "us-average" in load_regions()
