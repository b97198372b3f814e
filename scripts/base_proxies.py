"""CPU proxies of the base pair: narrow dense / Switch models on proportionally small corpora, at the base pair's
ratios, trained to target, so that steps to target on a GPU can be predicted before a GPU is lent.

What is held at the base pair's value (workloads/registry.py, dense-base / switch-base):
- bits of facts per dense non-embedding parameter (contexts x log2 of the ordered successor choices), which sets
  how hard capacity binds the dense model;
- training tokens a step per context, which sets how often each fact is seen;
- experts = domains, and the Switch model's FFN parameters ÷ the dense model's (16.5 at 32 experts in half the
  layers), so that a router can give each domain an expert as in the base pair.
- the share of the contexts a model must know to reach its target (a model that knows a share f of them and
  guesses the rest within their domain scores f H + (1 - f) ln V at every position after the first): the
  proxy's target margin is set so that f is the base pair's (0.77), whatever its vocabulary.
What changes with the proxy's width d: the corpus (domains x vocabulary per domain) and the batch (32 sequences,
one a domain, of the length that gives the tokens a step), so that the ratios hold; 2 layers, d_ff = 4d. Each
model trains at its small-pair learning rate (dense 1e-2, switch 3e-3, calibrated on this CPU) with the base
pair's warm-up in steps.

Per run it prints steps to target, the end of the unigram plateau (the first evaluation at which the loss has
come down a tenth of the way from the in-domain unigram entropy, ln V, to the target), eval trace and wall time.
The runner's loop trains them unmetered, one compiled call an evaluation period (K = 50 steps a call); the
numbers are steps and losses, not time or energy.

    python scripts/base_proxies.py [--widths 48,64,96] [--bits-per-param 0.88] [--tokens-per-context 0.066]
                                   [--max-steps 40000] [--budget-s 600] [--models dense,switch] [--corpus default]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import NoMarks  # noqa: E402

from workloads.corpus import CorpusConfig, MarkovMixture, entropy_floor  # noqa: E402
from workloads.flops import param_counts  # noqa: E402
from workloads.registry import WORKLOADS  # noqa: E402
from workloads.specs import WorkloadSpec  # noqa: E402

BASE_DENSE, BASE_SWITCH = WORKLOADS["dense-base"], WORKLOADS["switch-base"]
TEMPLATE = {"dense": WORKLOADS["dense-small"], "switch": WORKLOADS["switch-small"]}


def context_bits(vocab_per_domain: int, successors: int = 3) -> float:
    """Bits one context's ordered successor choice carries: log2 V (V-1) ... (V-k+1)."""
    return math.log2(math.perm(vocab_per_domain, successors))


def known_share(spec: WorkloadSpec) -> float:
    """The share f of contexts a model must know to reach the target, if it knows those exactly and guesses the
    rest uniformly within their domain (position 1 is always a guess)."""
    # Such a model scores ln V - f (ln V - floor): the floor at f = 1, the in-domain unigram entropy at f = 0.
    unigram, floor = math.log(spec.corpus.vocab_per_domain), entropy_floor(spec.corpus)
    return (unigram - spec.target_loss()) / (unigram - floor)


def margin_for_share(corpus: CorpusConfig, share: float) -> float:
    """The target margin (nats over the floor) at which a model must know `share` of the contexts."""
    unigram, floor = math.log(corpus.vocab_per_domain), entropy_floor(corpus)
    return (1 - share) * (unigram - floor)


def ratios(spec: WorkloadSpec) -> dict[str, float]:
    """The ratios a proxy keeps: bits of facts per dense non-embedding parameter, tokens a step per context, and
    the share of contexts the target asks for."""
    c, m = spec.corpus, spec.model
    dense = replace(m, num_experts=0)
    non_embedding = param_counts(dense)["total"] - m.vocab_size * m.d_model
    facts = c.num_contexts * context_bits(c.vocab_per_domain, len(c.successor_probs))
    return {"bits_per_param": facts / non_embedding,
            "tokens_per_context": spec.batch_size * c.seq_len / c.num_contexts, "known_share": known_share(spec),
            "facts_bits": facts, "non_embedding_params": non_embedding}


def proxy(kind: str, d: int, bits_per_param: float, tokens_per_context: float, share: float,
          corpus: str = "default", experts: int | None = None) -> WorkloadSpec:
    """The proxy of `kind` ("dense" | "switch") at width d, with the base pair's ratios."""
    experts = experts or BASE_SWITCH.model.num_experts
    domains = experts
    shape = dict(d_model=d, num_heads=2, num_layers=2, d_ff=4 * d)
    probe = replace(TEMPLATE["dense"].model, vocab_size=0, num_experts=0, group_sequences=0, **shape)
    non_embedding = param_counts(probe)["total"]
    # The vocabulary per domain whose facts come nearest the asked bits per parameter.
    vocab = min(range(4, 400), key=lambda v: abs(math.log(domains * (v + 1) * v * context_bits(v)
                                                         / non_embedding / bits_per_param)))
    contexts = domains * (vocab + 1) * vocab
    seq_len = max(4, round(tokens_per_context * contexts / domains))
    default = CorpusConfig(f"proxy-{domains}x{vocab}", num_domains=domains, vocab_per_domain=vocab,
                           successor_probs=(0.7, 0.2, 0.1), seq_len=seq_len, eval_sequences=512)
    # The base control keeps 1/8 of the domains.
    control = replace(default, name=f"proxy-control-{domains // 8}x{vocab}", num_domains=max(1, domains // 8))
    template = TEMPLATE[kind]
    model = replace(template.model, vocab_size=default.vocab_size, max_len=seq_len,
                    num_experts=experts if kind == "switch" else 0,
                    group_sequences=domains if kind == "switch" else 0, **shape)
    optimizer = replace(template.optimizer, warmup_steps=BASE_DENSE.optimizer.warmup_steps)
    spec = replace(template, name=f"{kind}-proxy-d{d}", model=model, corpus=default, control_corpus=control,
                   optimizer=optimizer, batch_size=domains, eval_every_steps=50, eval_batch_size=512,
                   sized_for="cpu", target_margin=margin_for_share(default, share))
    return spec if corpus == "default" else replace(spec, corpus=control, control_corpus=control)


class _BudgetSpent(Exception):
    pass


def steps_to_target(spec: WorkloadSpec, max_steps: int, budget_s: float, seed: int = 0) -> dict:
    """The runner's own loop (harness/runner/loop.py) at one call an evaluation period, unmetered, stopped after
    `budget_s` of wall time at the first evaluation past it."""
    from harness.runner.loop import LoopResult, train_to_target

    k, target, t0 = spec.eval_every_steps, spec.target_loss(), time.perf_counter()
    result = LoopResult()

    def stop_when_spent() -> None:
        if time.perf_counter() - t0 >= budget_s:
            raise _BudgetSpent

    try:
        train_to_target(spec, MarkovMixture(spec.corpus), target, seed, max_steps // k * k, NoMarks(), result,
                        checkpoint=stop_when_spent, steps_per_dispatch=k)
    except _BudgetSpent:
        pass
    unigram = math.log(spec.corpus.vocab_per_domain)
    trace = [(p["step"], round(p["eval_loss"], 4)) for p in result.eval_trace]
    plateau_end = next((step for step, loss in trace if loss < unigram - 0.1 * (unigram - target)), None)
    reached = trace[-1][0] if trace and trace[-1][1] <= target else None
    return {"steps_to_target": reached, "steps_run": result.steps, "plateau_end": plateau_end,
            "final_loss": trace[-1][1] if trace else None, "target": round(target, 4),
            "unigram": round(unigram, 4), "wall_s": round(time.perf_counter() - t0, 1), "trace": trace[::4]}


def fit(rows: list[dict], model: str, params: float, bits_per_param: float, level: float = 0.9) -> dict[str, float]:
    """log(steps to target) against log(non-embedding parameters) over the proxies of one model on the default
    corpus at `bits_per_param` (within 10 %: a proxy's vocabulary is whole), a straight line by least squares, and
    its prediction at `params` with a `level` prediction interval (Student t, n - 2 degrees of freedom: three
    proxies give one, and an interval to match)."""
    from scipy import stats

    pts = [(math.log(r["non_embedding_params"]), math.log(r["steps_to_target"])) for r in rows
           if r["model"] == model and r["steps_to_target"] and "control" not in r["corpus"]
           and abs(math.log(r["bits_per_param"] / bits_per_param)) < 0.1]
    if len(pts) < 2:
        raise SystemExit(f"error: {len(pts)} {model} proxies reached the target at ~{bits_per_param:.2f} bits per "
                         "parameter; a fit needs 2 (choose --bits-per-param from the file's runs)")
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    n = len(x)
    slope, intercept = np.polyfit(x, y, 1)
    x0 = math.log(params)
    y0 = intercept + slope * x0
    out = {"n": n, "slope": float(slope), "steps": math.exp(y0)}
    if n > 2:
        resid = y - (intercept + slope * x)
        s = math.sqrt(float(resid @ resid) / (n - 2))
        half = stats.t.ppf(0.5 + level / 2, n - 2) * s * math.sqrt(1 + 1 / n + (x0 - x.mean()) ** 2
                                                                 / float(((x - x.mean()) ** 2).sum()))
        out |= {"lo": math.exp(y0 - half), "hi": math.exp(y0 + half), "level": level}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    base = ratios(BASE_DENSE)
    ap.add_argument("--widths", default="48,64,96")
    ap.add_argument("--bits-per-param", type=float, default=base["bits_per_param"])
    ap.add_argument("--tokens-per-context", type=float, default=base["tokens_per_context"])
    ap.add_argument("--known-share", type=float, default=base["known_share"])
    ap.add_argument("--experts", type=int, default=BASE_SWITCH.model.num_experts)
    ap.add_argument("--models", default="dense,switch")
    ap.add_argument("--corpus", default="default", choices=("default", "control"))
    ap.add_argument("--max-steps", type=int, default=40_000)
    ap.add_argument("--budget-s", type=float, default=600.0, help="wall-clock cap of one run")
    ap.add_argument("--json", default=None, help="append one JSON line a run to this file")
    ap.add_argument("--predict", default=None, metavar="FILE",
                    help="no training: fit the runs in FILE (--json lines) at --bits-per-param and predict at --params")
    ap.add_argument("--params", type=float, default=base["non_embedding_params"],
                    help="non-embedding parameters to predict at (default: dense-base's)")
    args = ap.parse_args()
    if args.predict:
        rows = [json.loads(line) for line in Path(args.predict).read_text().splitlines() if line.strip()]
        for model in ("dense", "switch"):
            f = fit(rows, model, args.params, args.bits_per_param)
            interval = (f" ({100 * f['level']:.0f} % prediction interval {f['lo']:,.0f} to {f['hi']:,.0f})"
                        if "lo" in f else "")
            print(f"{model}: steps ~ params^{f['slope']:.2f} over {f['n']} proxies; at {args.params:,.0f} "
                  f"non-embedding parameters: {f['steps']:,.0f} steps{interval}")
        return
    print(f"base pair: {base['bits_per_param']:.3f} bits of facts per dense non-embedding parameter, "
          f"{base['tokens_per_context']:.4f} tokens a step per context; proxies at {args.bits_per_param:.3f} "
          f"and {args.tokens_per_context:.4f}, {args.corpus} corpus", flush=True)
    for d in (int(x) for x in args.widths.split(",")):
        for kind in args.models.split(","):
            spec = proxy(kind, d, args.bits_per_param, args.tokens_per_context, args.known_share, args.corpus,
                         args.experts)
            r = ratios(spec)
            row = {"model": kind, "d": d, "corpus": spec.corpus.name, "batch": spec.batch_size,
                   "contexts": spec.corpus.num_contexts, **{k: round(v, 4) for k, v in r.items()},
                   **steps_to_target(spec, args.max_steps, args.budget_s)}
            print(f"{kind:>6} d={d:<3} {spec.corpus.name:<18} batch {spec.batch_size:<4} "
                  f"{r['bits_per_param']:.2f} bit/param {r['tokens_per_context']:.3f} tok/ctx  "
                  f"target {row['target']:.3f}: {row['steps_to_target'] or 'not reached'} steps "
                  f"(ran {row['steps_run']}, plateau to {row['plateau_end']}, last {row['final_loss']}, "
                  f"{row['wall_s']} s)", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
