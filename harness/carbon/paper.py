"""The seed paper's arithmetic, recomputed: its Table 4 and its running example (Table 1), and the 4M product.

Inputs and published outputs live in paper_runs.csv; every computed figure here comes from the formula
(paper_kwh, paper_tco2e), never from the published column, so the comparison can fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.carbon.accounting import paper_kwh, paper_tco2e
from harness.carbon.regions import read_data_csv

RUNS_CSV = "paper_runs.csv"


@dataclass(frozen=True)
class PaperRun:
    run: str
    table: str
    processor: str
    chips: int
    days: float
    watts_per_chip: float
    pue: float
    gross_kg_per_kwh: float
    net_kg_per_kwh: float
    published_mwh: float | None
    published_gross_t: float | None
    published_net_t: float | None
    source: str
    published_places: dict[str, int]  # decimal places the paper printed, per published figure
    total_flops: float | None = None  # the run's total computation (FLOPs), Table 4
    tflops_per_chip: float | None = None  # measured system TFLOP/s per chip, Table 4

    def it_kwh(self) -> float:
        """Energy at the processors (PUE 1): what the 'model' and 'machine' factors compare."""
        return paper_kwh(self.days * 24, self.chips, self.watts_per_chip, 1.0)

    def kwh(self) -> float:
        return paper_kwh(self.days * 24, self.chips, self.watts_per_chip, self.pue)

    def gross_t(self) -> float:
        return paper_tco2e(self.kwh(), self.gross_kg_per_kwh)

    def net_t(self) -> float:
        return paper_tco2e(self.kwh(), self.net_kg_per_kwh)


def _optional(text: str) -> float | None:
    return float(text) if text.strip() else None


def _places(text: str) -> int:
    return len(text.strip().split(".")[1]) if "." in text else 0


def load_runs() -> dict[str, PaperRun]:
    runs = {}
    for row in read_data_csv(RUNS_CSV):
        runs[row["run"]] = PaperRun(
            row["run"], row["table"], row["processor"], int(row["chips"]), float(row["days"]),
            float(row["watts_per_chip"]), float(row["pue"]), float(row["gross_kg_per_kwh"]),
            float(row["net_kg_per_kwh"]), _optional(row["published_mwh"]), _optional(row["published_gross_t"]),
            _optional(row["published_net_t"]), row["source"],
            {k: _places(row[f"published_{k}"]) for k in ("mwh", "gross_t", "net_t")},
            _optional(row["total_flops"]), _optional(row["tflops_per_chip"]))
    return runs


# The paper rounds its days and prints its outputs to a few digits, so a recomputation cannot match exactly. A row
# agrees when it is within 1 % of the printed figure plus half a unit of that figure's last printed digit.
TOLERANCE_PCT = 1.0


def _diff_pct(computed: float, published: float | None) -> float | None:
    return None if published in (None, 0) else 100.0 * (computed - published) / published


def agrees(computed: float, published: float | None, places: int) -> bool | None:
    if published is None:
        return None
    return abs(computed - published) <= TOLERANCE_PCT / 100 * abs(published) + 0.5 * 10.0 ** -places


def recompute() -> list[dict[str, Any]]:
    """Every paper run: inputs, computed MWh and tCO2e, the published figures, and the difference in percent."""
    rows = []
    for r in load_runs().values():
        mwh, gross, net = r.kwh() / 1000.0, r.gross_t(), r.net_t()
        rows.append({
            "run": r.run, "table": r.table, "processor": r.processor, "chips": r.chips, "days": r.days,
            "watts_per_chip": r.watts_per_chip, "pue": r.pue, "gross_kg_per_kwh": r.gross_kg_per_kwh,
            "net_kg_per_kwh": r.net_kg_per_kwh,
            "computed": {"mwh": mwh, "gross_t": gross, "net_t": net},
            "published": {"mwh": r.published_mwh, "gross_t": r.published_gross_t, "net_t": r.published_net_t},
            "diff_pct": {"mwh": _diff_pct(mwh, r.published_mwh), "gross_t": _diff_pct(gross, r.published_gross_t),
                         "net_t": _diff_pct(net, r.published_net_t)},
            "agrees": {"mwh": agrees(mwh, r.published_mwh, r.published_places["mwh"]),
                       "gross_t": agrees(gross, r.published_gross_t, r.published_places["gross_t"]),
                       "net_t": agrees(net, r.published_net_t, r.published_places["net_t"])},
            "source": r.source,
        })
    return rows


@dataclass(frozen=True)
class FourM:
    """A CO2e reduction as the product of the paper's four factors (each 'before / after')."""

    model: float
    machine: float
    mechanization: float
    map: float
    before_kg: float
    after_kg: float
    labels: dict[str, str]

    @property
    def product(self) -> float:
        return self.model * self.machine * self.mechanization * self.map

    @property
    def total(self) -> float:
        """The reduction computed directly, before / after: equals the product when the factors are consistent."""
        return self.before_kg / self.after_kg

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "machine": self.machine, "mechanization": self.mechanization, "map": self.map,
                "product": self.product, "before_kg": self.before_kg, "after_kg": self.after_kg,
                "total": self.total, "labels": self.labels}


def four_m(model_before_kwh: float, model_after_kwh: float, machine_factor: float, pue_before: float,
           pue_after: float, kg_per_kwh_before: float, kg_per_kwh_after: float, labels: dict[str, str]) -> FourM:
    """Model: energy of the old over the new model on the same machine; machine: the new model's energy on the
    old over the new machine; mechanization: PUE ratio; map: grid-intensity ratio."""
    before = model_before_kwh * pue_before * kg_per_kwh_before
    after = model_after_kwh / machine_factor * pue_after * kg_per_kwh_after
    return FourM(model_before_kwh / model_after_kwh, machine_factor, pue_before / pue_after,
                 kg_per_kwh_before / kg_per_kwh_after, before, after, labels)


def running_example() -> FourM:
    """Transformer (big) on P100 in an average US datacenter -> Evolved Transformer (medium) on TPU v2 in Google
    Iowa, net CO2e: the paper reports about 57x for this example."""
    runs = load_runs()
    big_p100 = runs["transformer-big-p100-us-average"]
    et_p100 = runs["evolved-transformer-medium-p100-us-average"]
    et_tpu = runs["evolved-transformer-medium-tpuv2-iowa"]
    return four_m(big_p100.it_kwh(), et_p100.it_kwh(), et_p100.it_kwh() / et_tpu.it_kwh(), big_p100.pue, et_tpu.pue,
                  big_p100.net_kg_per_kwh, et_tpu.net_kg_per_kwh,
                  {"model": "Transformer (big) / Evolved Transformer (medium), both on 8 P100 (paper Table 1)",
                   "machine": "Evolved Transformer (medium) on 8 P100 / on 8 TPU v2 (paper Table 1)",
                   "mechanization": "PUE 1.59 (average US datacenter) / 1.11 (Google Iowa)",
                   "map": "net 0.429 (US average) / 0.080 (Google Iowa) kg CO2e/kWh"})
