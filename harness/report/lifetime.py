"""Training plus serving: the energy and CO2e to train a model once and serve N generated tokens, from a training
record and an inference record, every part with its method; and where two models' lifetimes cross.
"""

from __future__ import annotations

from typing import Any

from harness.errors import UsageError
from harness.results.inference import InferenceRecord
from harness.results.schema import RunRecord


def lifetime(training: dict[str, float | None], row: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """Train once, then serve: E(N) = E_train + N x J/token for each model; the N where they cross, if any."""
    ta, tb = training.get(a), training.get(b)
    ja = (row["models"].get(a) or {}).get("median_j_per_token")
    jb = (row["models"].get(b) or {}).get("median_j_per_token")
    out = {"batch": row["batch"], "a": a, "b": b, "train_j": {a: ta, b: tb}, "j_per_token": {a: ja, b: jb}}
    missing = [what for what, x in ((f"{a}'s energy to train", ta), (f"{b}'s energy to train", tb),
                                    (f"{a}'s J/token", ja), (f"{b}'s J/token", jb)) if x is None]
    if missing:
        return out | {"crossover_tokens": None, "note": f"no figure for {' and '.join(missing)}"}
    if ja == jb or (ta - tb) * (ja - jb) >= 0:
        cheaper = a if ta + ja <= tb + jb else b
        return out | {"crossover_tokens": None, "note": f"{cheaper} is cheaper at every N"}
    n = (tb - ta) / (ja - jb)
    first = a if ta < tb else b
    later = b if first == a else a
    return out | {"crossover_tokens": n, "note": f"{first} is cheaper up to {n:,.0f} generated tokens, {later} after"}


def footprint_of(train: RunRecord, served: InferenceRecord, tokens: float) -> dict[str, Any]:
    """`harness footprint --lifetime`: energy and CO2e to train once and serve `tokens` generated tokens."""
    if not train.converged or train.energy_to_target_j is None:
        raise UsageError(f"{train.source}: the run did not reach its target with a rankable energy "
                         f"({train.status_text}); a lifetime needs a model trained to quality")
    if served.j_per_token is None:
        raise UsageError(f"{served.source}: no rankable J/token ({served.energy.why_not_ranked()})")
    if served.serving.run_id != train.run_id:
        raise UsageError(f"{served.source} served run {served.serving.run_id}, not {train.run_id}")
    serve_j = served.j_per_token * tokens
    train_fp, serve_fp = train.carbon.price(train.energy_to_target_j), served.carbon.price(serve_j)
    return {"workload": train.workload, "tokens": tokens,
            "train": {"joules": train.energy_to_target_j, "method": train.energy.label,
                      "co2e_gross_kg": train_fp.co2e_gross_kg, "co2e_net_kg": train_fp.co2e_net_kg,
                      "region": train.carbon.region},
            "serve": {"joules": serve_j, "j_per_token": served.j_per_token, "method": served.energy.label,
                      "scenario": served.serving.scenario, "batch": served.serving.batch,
                      "co2e_gross_kg": serve_fp.co2e_gross_kg, "co2e_net_kg": serve_fp.co2e_net_kg,
                      "region": served.carbon.region},
            "total_j": train.energy_to_target_j + serve_j,
            "total_co2e_gross_kg": train_fp.co2e_gross_kg + serve_fp.co2e_gross_kg,
            "total_co2e_net_kg": train_fp.co2e_net_kg + serve_fp.co2e_net_kg}


def lifetime_lines(f: dict[str, Any]) -> list[str]:
    t, s = f["train"], f["serve"]
    return [f"{f['workload']}: train once and serve {f['tokens']:,.0f} generated tokens",
            f"  train: {t['joules']:,.1f} J ({t['method']}), {1e3 * t['co2e_gross_kg']:.4f} g CO2e gross "
            f"({t['region']})",
            f"  serve: {s['joules']:,.1f} J at {s['j_per_token']:.3e} J/token ({s['scenario']}, batch {s['batch']}; "
            f"{s['method']}), {1e3 * s['co2e_gross_kg']:.4f} g CO2e gross ({s['region']})",
            f"  total: {f['total_j']:,.1f} J, {1e3 * f['total_co2e_gross_kg']:.4f} g CO2e gross / "
            f"{1e3 * f['total_co2e_net_kg']:.4f} g net"]
