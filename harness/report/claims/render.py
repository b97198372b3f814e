"""A claim's verdict for people: the lines `harness claim` prints, and claim.md (the same, as Markdown)."""

from __future__ import annotations

from typing import Any


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:,.4g}"


def lines(result: dict[str, Any]) -> list[str]:
    c, m, est, ci = result["claim"], result["metric"], result["estimate"], result["interval"]
    bound = f"{est['of']} {c['relation']} {c['value']:g}" if "/" in est["of"] else \
        f"{m['what']} {c['relation']} {c['value']:g}"
    out = [f"{result['verdict']}: {result['text']}", f"  claim: {m['name']} ({m['what']}"
           + (f", {m['scope']} energy" if m["scope"] else "") + f"): {bound}"]
    if est["value"] is not None:
        sides = "; ".join(f"{name} {_num(s['value'])} ({s['reason']})" for name, s in est["olympic"].items())
        out.append(f"  estimate: {_num(est['value'])} = MLPerf olympic scores, {sides}")
    if ci is not None:
        out.append(f"  {100 * ci['level']:.0f} % interval: [{_num(ci['lo'])}, {_num(ci['hi'])}] around "
                   f"{_num(ci['estimate'])} ({ci['pairing']}; {ci['method']})")
    if result["more_runs_per_side"] is not None:
        out.append(f"  about {result['more_runs_per_side']} more run(s) a side would likely settle it, if the "
                   "spread stays what it is")
    if m["derived"]:
        out.append(f"  {m['derived']}")
    out.append("  rules:")
    out += [f"    {'PASS' if r['passed'] else 'FAIL'}  {r['rule']}: {r['detail']}" for r in result["rules"]]
    if result["reasons"]:
        out.append("  why it cannot be assessed:" if result["verdict"] == "CANNOT BE ASSESSED" else "  reasons:")
        out += [f"    - {why}" for why in result["reasons"]]
    if result["differences"]:
        out.append("  differences to state beside the claim:")
        out += [f"    - {d}" for d in result["differences"]]
    out += [f"  note: {n}" for n in result["notes"]]
    out.append("  runs:")
    for side, runs in result["runs"].items():
        out += [f"    {side}: {r['run_id']} seed {r['seed']} {r['status']}, {_num(r['value'])} "
                f"({r['energy_method']}), record sha256 {r['sha256']}" for r in runs]
    return out


def markdown(result: dict[str, Any]) -> str:
    body = lines(result)
    return f"# {body[0]}\n\n" + "\n".join(line[2:] if line.startswith("  ") else line for line in body[1:]) + "\n"
