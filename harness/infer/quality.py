"""The served model's quality: LoadGen's AccuracyOnly pass answers each sample once, and the prompts' true
continuations are scored through the computation that served them (prefill, then one token a step through the
cache, at the batch served: under capacity routing a full forward would route, and drop, otherwise), against the
corpus's true next-token law where it has one (harness/results/inference.py `Accuracy` says how it holds).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.infer import loadgen as lgx
from harness.infer.sut import DecoderSUT
from harness.infer.trained import TrainedRun
from harness.results.inference import Accuracy


def accuracy_pass(trained: TrainedRun, decoder, prompts: np.ndarray, truth: np.ndarray, settings: lgx.Settings,
                  out: Path) -> Accuracy:
    """LoadGen's AccuracyOnly pass (each sample once) into out/accuracy/, then the served model's quality (score)."""
    acc_dir = out / "accuracy"
    sut = DecoderSUT({decoder.batch: decoder}, prompts, decoder.gen_len, 0.0, lambda label: None,
                     ("accuracy_start", "accuracy_stop"), 0)
    lgx.run_in_thread(sut, prompts.shape[0], lgx.test_settings(replace(settings, min_queries=1), "accuracy",
                                                               prompts.shape[0]), acc_dir)
    if sut.tally.error:  # its samples were answered empty: nothing to score, and the record must not pass
        raise RuntimeError(f"the decoder failed during the accuracy pass: {sut.tally.error}")
    return score(trained, decoder, prompts, truth, lgx.accuracy_outputs(acc_dir / "mlperf_log_accuracy.json"))


def score(trained: TrainedRun, decoder, prompts: np.ndarray, truth: np.ndarray, generated: dict[int, bytes]
          ) -> Accuracy:
    """The true continuations scored as served (the decoder's teacher_forced: prefill, then a token a step through
    the cache, at the batch served), against the corpus's true law where it has one; and the generated tokens
    (LoadGen's accuracy log, by sample index) held to that law."""
    log_probs, correct = [], []
    b = decoder.batch
    for start in range(0, len(prompts), b):
        rows = np.concatenate([prompts[start:start + b], truth[start:start + b]], axis=1)
        n = len(rows)
        padded = np.resize(rows, (b, rows.shape[1])).astype(np.int32)
        tf = decoder.teacher_forced(padded)
        log_probs.append(tf.log_probs[:n])
        correct.append(np.asarray(tf.correct)[:n])
    lp = np.concatenate(log_probs)
    loss, accuracy = float(-lp.mean()), float(np.concatenate(correct).mean())
    law, margin = trained.law, trained.entropy_margin
    floor = floor_acc = valid = None
    note = (f"the prompts' true continuations scored as served: each prompt prefilled, then its continuation fed one "
            f"token a step through the cache, at batch {b}; generations from LoadGen's accuracy log")
    prompt_len = prompts.shape[1]
    if law is not None:
        rows = np.concatenate([prompts, truth], axis=1)
        nll = law.true_nll(rows)  # [N, P+G-1]: x_1.. ; the continuation is x_P..
        floor = float(nll[:, prompt_len - 1:prompt_len - 1 + truth.shape[1]].mean())
        p_max = max(law.cfg.successor_probs)
        floor_acc = float(p_max if prompt_len >= 2 else (p_max * (truth.shape[1] - 1) + 1 / law.cfg.vocab_per_domain)
                          / truth.shape[1])
        made = [np.frombuffer(generated[i], np.int32) for i in range(len(prompts)) if i in generated]
        if made and all(len(m) == truth.shape[1] for m in made):
            idx = [i for i in range(len(prompts)) if i in generated]
            gen_rows = np.concatenate([prompts[idx], np.stack(made)], axis=1)
            allowed = law.allowed(gen_rows)[:, prompt_len - 1:]
            valid = float(allowed.mean())
        allowed_excess = float(margin)
        meets = loss - floor <= allowed_excess
    else:
        allowed_excess = trained.record.target.target_loss
        meets = loss <= allowed_excess
        kind = "real text" if trained.record.data.get("kind") == "text" else "user data"
        note += f"; {kind}: no true law, the loss is held to the training target itself"
    return Accuracy(samples=len(prompts), tokens=int(lp.size), teacher_forced_loss=loss, greedy_accuracy=accuracy,
                    floor_loss=floor, floor_greedy_accuracy=floor_acc, allowed=allowed_excess, meets_target=bool(meets),
                    generated_valid_fraction=valid, note=note)
