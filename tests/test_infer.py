"""`harness infer`: a trained run's kept weights served under the real MLPerf LoadGen, each scenario for about
half a second on switch-tiny, and every bad input one line with exit 2."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.results.files import sha256_file
from harness.results.inference import SCENARIOS, InferenceRecord
from harness.results.reader import read_record
from tests.conftest import only_run_dir
from workloads.registry import WORKLOADS

pytestmark = pytest.mark.e2e

SHORT = ["--meter", "fake", "--duration-ms", "500", "--samples", "16", "--batch", "4"]


def infer(run_dir: Path, out: Path, *extra: str) -> tuple[int, Path | None]:
    code = main(["infer", str(run_dir), "--output-dir", str(out), *SHORT, *extra])
    made = sorted(out.glob("*/result.json")) if out.exists() else []
    return code, made[-1].parent if made else None


def test_a_run_keeps_its_weights_with_their_hash(switch_tiny_run):
    r = read_record(switch_tiny_run)
    assert r.weights is not None and r.weights.file == "weights.npz"
    assert sha256_file(switch_tiny_run / "weights.npz") == r.weights.sha256 == r.files["weights.npz"]
    with np.load(switch_tiny_run / "weights.npz") as npz:
        assert sum(npz[k].size for k in npz.files) == r.weights.parameters == r.training.params_total
        assert "block_1/switch_ffn/w_in" in npz.files


@pytest.fixture(scope="module")
def scenarios(switch_tiny_run, tmp_path_factory) -> dict[str, tuple[int, Path]]:
    """Each scenario served once from the session's switch-tiny run (half a second each): exit code and folder.
    Offline and then Server are served as MLPerf Power's client runs its workload twice: a shell command with nothing
    on stdin and no terminal, both into one --output-dir, LoadGen's logs where its -L says."""
    import shlex
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("scenarios")
    shared, logs = out / "power-client", ["--loadgen-log-dir", str(out / "L")]
    command = [sys.executable, "-m", "harness.cli", "infer", str(switch_tiny_run), "--output-dir", str(shared), *SHORT,
               *logs]
    proc = subprocess.run(shlex.join(command), shell=True, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    made = {"offline": (proc.returncode, only_run_dir(shared))}
    made["server"] = infer(switch_tiny_run, shared, "--scenario", "server", *logs)
    return made | {s: infer(switch_tiny_run, out / s, "--scenario", s) for s in SCENARIOS if s not in made}


def test_served_as_mlperf_powers_client_runs_it(scenarios):
    """Two runs into one --output-dir leave two records; the -L folder holds the last one's LoadGen logs, byte for
    byte (the client copies them after each run), and nothing of its accuracy pass."""
    (_, offline), (_, server) = scenarios["offline"], scenarios["server"]
    assert offline.parent == server.parent and len(list(server.parent.glob("*/result.json"))) == 2
    logs = server.parent.parent / "L"
    assert sorted(p.name for p in logs.iterdir()) == ["mlperf_log_detail.txt", "mlperf_log_summary.txt"]
    r = read_record(server)
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt"):
        assert sha256_file(logs / name) == r.files[name]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_under_loadgen(scenarios, scenario):
    code, folder = scenarios[scenario]
    r = read_record(folder)
    assert isinstance(r, InferenceRecord) and r.status == "completed"
    lg = r.loadgen
    assert lg.below_mlperf_duration and lg.valid == (not lg.failed)
    # Offline and SingleStream meet every constraint in half a second; MultiStream's early-stopping estimate needs
    # more queries than half a second holds; Server may also miss its latency target on a loaded 2-core machine.
    allowed = {"offline": {()}, "singlestream": {()}, "multistream": {(), ("early_stopping",)},
               "server": {(), ("early_stopping",), ("perf_constraints",), ("early_stopping", "perf_constraints")}}
    assert tuple(sorted(lg.failed)) in allowed[scenario], lg.failed
    assert code == (0 if r.valid else 1)
    # The SUT answered what LoadGen asked, and every answer carried gen_len tokens.
    assert r.traffic.samples > 0 and r.traffic.generated_tokens == r.traffic.samples * r.serving.gen_len
    assert r.traffic.latency_ms["ttft"]["p50"] <= r.traffic.latency_ms["query"]["p50"]
    # Padding rows (a batch filled up to its compiled bucket) counted apart: their token-slots are theirs alone.
    per_row = (r.serving.prompt_len + r.serving.gen_len - 1) * WORKLOADS["switch-tiny"].model.num_switch_layers
    assert r.traffic.padding_routed_tokens == r.traffic.padded_rows * per_row
    assert r.traffic.routed_tokens == (r.traffic.samples + r.traffic.padded_rows) * per_row
    # A stream query fills its bucket; Offline's last batch alone may fall short; Server's dynamic batches may.
    if scenario in ("singlestream", "multistream"):
        assert r.traffic.padded_rows == 0
    elif scenario == "offline":
        assert r.traffic.padded_rows < r.serving.batch
    # The energy window lies inside LoadGen's power window (its stamps are cut to the millisecond).
    marks = r.timing.marks_unix_s
    assert lg.power_begin_unix_s - 0.002 <= marks["first_query"] < marks["last_response"] <= lg.power_end_unix_s + 0.002
    assert r.energy.window == "first_query..last_response" and r.energy.total_j > 0
    assert r.j_per_token == pytest.approx(r.energy.total_j / r.traffic.generated_tokens)
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "power.csv",
                 "accuracy/mlperf_log_accuracy.json"):
        assert sha256_file(folder / name) == r.files[name]
    a = r.accuracy
    assert a.samples == 16 and a.tokens == 16 * r.serving.gen_len and 0 < a.greedy_accuracy <= 1
    assert a.floor_loss is not None and a.floor_loss < a.teacher_forced_loss
    assert 0 <= a.generated_valid_fraction <= 1
    # harness check: LoadGen's verdict, the quality, the window inside LoadGen's, the files as recorded.
    from harness.mlperf.check import check_inference

    notes: list[str] = []
    problems = check_inference(r, folder, notes)
    assert (not problems) == r.valid and any("below MLPerf Inference's 600 s" in n for n in notes)


def test_the_record_round_trips(switch_tiny_run, tmp_path):
    from harness.results.encoding import from_json, to_json

    _, folder = infer(switch_tiny_run, tmp_path, "--no-accuracy")
    data = json.loads((folder / "result.json").read_text())
    assert data["schema"] == "harness.result/3" and data["kind"] == "inference"
    r = read_record(folder)
    again = from_json(to_json(r))
    assert again.serving == r.serving and again.traffic == r.traffic and again.loadgen == r.loadgen
    assert data["figures"]["j_per_token"] == pytest.approx(r.j_per_token)
    assert r.accuracy is None and not r.valid  # no accuracy pass: the quality is not known to hold


def test_dense_and_switch_at_batch_1_route_honestly(tiny_run, switch_tiny_run, tmp_path):
    """Served dropless by default: nothing dropped, and the executed FLOPs of a batch of 1 are what its tokens
    activate (the gather path). Capacity routing on request: a decode step of a batch of 1 gets one slot per
    expert, and every expert computes its slot (executed above activated); a capacity factor of E drops nothing.
    A dense model routes nothing and executes what it activates."""
    _, folder = infer(switch_tiny_run, tmp_path / "x", "--scenario", "singlestream", "--no-accuracy")
    r = read_record(folder)
    assert r.serving.routing == r.serving.switch_routing == "dropless" and r.serving.capacity == {}
    assert r.traffic.routed_tokens > 0 and r.traffic.dropped_tokens == 0
    assert r.serving.decoder["switch_routing"] == "dropless"
    assert r.serving.executed_over_activated == pytest.approx(1.0, abs=0.005)  # the router's d x E aside
    _, folder = infer(switch_tiny_run, tmp_path / "e", "--scenario", "singlestream", "--capacity-factor", "8",
                      "--no-accuracy")
    r = read_record(folder)
    assert r.serving.routing == "capacity" and r.traffic.routed_tokens > 0 and r.traffic.dropped_tokens == 0
    assert r.serving.capacity["slots_per_expert_at_decode"]["1"] == 1
    assert r.serving.executed_over_activated > 2  # 8 experts x 1 slot at each decode step, for one token
    _, folder = infer(tiny_run("dense-tiny"), tmp_path / "d", "--scenario", "singlestream", "--no-accuracy")
    r = read_record(folder)
    assert r.traffic.routed_tokens == 0 and r.serving.switch_routing is None
    assert r.serving.executed_over_activated == pytest.approx(1.0)


def _copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


@pytest.mark.parametrize("case, args, says", [
    ("not a run", [], "not a run folder"),
    ("no weights", [], "kept no weights"),
    ("tampered", [], "not the ones the run trained"),
    ("aborted", [], "only a run that ended"),
    ("dense weights", [], "weights.npz does not fit switch-tiny's model: missing block_1/switch_ffn/b_in and 4 more; "
                          "not in the model block_1/ffn/w_in/bias and 3 more"),
    ("recounted", [], "weights.npz holds 47,648 parameters, the record's weights 47,649"),
    ("ok", ["--gen-len", "0"], "--gen-len must be at least 1"),
    ("ok", ["--prompt-len", "30", "--gen-len", "8"], "longer than the model's context of 32"),
    ("ok", ["--scenario", "batch"], "--scenario must be one of offline, server, singlestream, multistream"),
    ("ok", ["--ttft-ms", "0.00001"], "no run can meet it"),
    ("ok", ["--samples", "100000"], "--samples must be 1..64"),
    ("ok", ["--routing", "sideways"], "--routing must be one of capacity, dropless"),
    ("ok", ["--routing", "dropless", "--capacity-factor", "2"], "dropless routing has none"),
])
def test_bad_input_is_one_line_and_exit_2(switch_tiny_run, tmp_path, capsys, case, args, says):
    run = _copy(switch_tiny_run, tmp_path)
    data = json.loads((run / "result.json").read_text())
    if case == "not a run":
        run = tmp_path / "empty"
        run.mkdir()
    elif case == "no weights":
        data["weights"] = None
    elif case == "tampered":
        with open(run / "weights.npz", "ab") as f:
            f.write(b"x")
    elif case == "aborted":
        data["status"] = "aborted"
    elif case == "dense weights":  # another model's weights, the record's hash made to match: they pass the hash
        from workloads.jax_impl.weights import initial_weights
        from workloads.registry import WORKLOADS

        np.savez(run / "weights.npz", **initial_weights(WORKLOADS["dense-tiny"], 0, np.zeros((2, 33), np.int32)))
        data["weights"]["sha256"] = data["files"]["weights.npz"] = sha256_file(run / "weights.npz")
    elif case == "recounted":
        data["weights"]["parameters"] += 1
    (run / "result.json").write_text(json.dumps(data)) if case in ("no weights", "aborted", "dense weights",
                                                                   "recounted") else None
    capsys.readouterr()
    assert main(["infer", str(run), "--output-dir", str(tmp_path / "out"), *SHORT, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list((tmp_path / "out").glob("*/result.json"))  # refused before anything: no record


def test_an_unmet_bound_is_a_measured_invalid(switch_tiny_run, tmp_path):
    """A time-per-output-token bound the decoder cannot keep is measured, and LoadGen says INVALID: exit 1."""
    code, folder = infer(switch_tiny_run, tmp_path, "--scenario", "server", "--tpot-ms", "0.000001",
                         "--no-accuracy")
    r = read_record(folder)
    assert code == 1 and r.loadgen.validity == "INVALID" and "perf_constraints" in r.loadgen.failed


def test_a_decoder_failure_in_the_accuracy_pass_fails_the_record(switch_tiny_run, tmp_path, monkeypatch):
    from harness.infer.sut import DecoderSUT

    served = DecoderSUT._run

    def fail_when_scored(self, batch):
        if self.labels[0] == "accuracy_start":
            raise RuntimeError("device lost")
        return served(self, batch)

    monkeypatch.setattr(DecoderSUT, "_run", fail_when_scored)
    code, folder = infer(switch_tiny_run, tmp_path)
    r = read_record(folder)
    assert code == 1 and r.status == "failed" and not r.valid and r.accuracy is None
    assert r.error == "RuntimeError: the decoder failed during the accuracy pass: RuntimeError: device lost"


def test_no_weights_flag(tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--workload", "dense-tiny", "--meter", "fake", "--no-progress", "--max-steps", "20",
                 "--no-weights", "--output-dir", str(out)]) in (0, 1)
    run = only_run_dir(out)
    assert read_record(run).weights is None and not (run / "weights.npz").exists()


def test_ctrl_c_during_the_test_leaves_an_aborted_record(switch_tiny_run, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    # A suite started in the background (`pytest &`) ignores SIGINT, and a child inherits an ignored signal: give
    # the child Ctrl-C back, as a terminal's foreground job has it (a handler, unlike SIG_IGN, is reset by exec).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "infer", str(switch_tiny_run), "--output-dir",
                                 str(out), "--meter", "fake", "--duration-ms", "60000", "--samples", "16", "--batch",
                                 "4", "--scenario", "server"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 120
    while not list(out.glob("*/result.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The running record is written just before LoadGen starts; nothing outside the process shows its first query
    # (LoadGen writes its logs at the end), so the test lets it serve a second.
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    r = read_record(only_run_dir(out))
    assert r.status == "aborted" and r.energy.window == "first_query..aborted" and r.traffic.samples > 0


def _study_of(runs: dict[str, Path], folder: Path) -> Path:
    """A study folder (study.json and runs/) holding copies of already trained runs."""
    (folder / "runs").mkdir(parents=True)
    listed = {}
    for label, run in runs.items():
        shutil.copytree(run, folder / "runs" / run.name)
        listed[label] = [f"runs/{run.name}"]
    (folder / "study.json").write_text(json.dumps({"schema": "harness.study/1", "corpus": "default", "seeds": 1,
                                                   "workloads": list(runs), "runs": listed, "status": "complete"}))
    return folder


@pytest.mark.parametrize("scenario, batches, says", [
    ("singlestream", "1,4", "--scenario singlestream serves batch 1 only"),
    ("multistream", "1,4,16", "--scenario multistream serves batch 8 only"),
])
def test_a_stream_scenario_refuses_a_batch_sweep(tmp_path, capsys, scenario, batches, says):
    capsys.readouterr()
    assert main(["study", "--inference", "--from", str(tmp_path), "--scenario", scenario, "--batches", batches]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


def test_the_inference_study_pairs_by_seed_and_prices_a_lifetime(tiny_run, switch_tiny_run, tmp_path, capsys):
    study = _study_of({"dense-tiny": tiny_run("dense-tiny"), "switch-tiny": switch_tiny_run}, tmp_path / "study")
    assert main(["study", "--inference", "--from", str(study), "--batches", "1,2", "--duration-ms", "300",
                 "--samples", "8", "--meter", "fake"]) == 0
    summary = json.loads((study / "inference-dropless" / "inference.json").read_text())["summary"]
    assert [r["batch"] for r in summary["rows"]] == [1, 2]
    for row in summary["rows"]:
        d, s = row["models"]["dense-tiny"], row["models"]["switch-tiny"]
        ratio = row["ratios"]["dense-tiny/switch-tiny"]
        assert ratio["ratio"] == pytest.approx(d["j_per_token"]["0"] / s["j_per_token"]["0"]) and ratio["n"] == 1
    assert len(summary["lifetime"]) == 2
    for x in summary["lifetime"]:
        assert re.fullmatch(r"[\w-]+ is cheaper (at every N|up to [\d,]+ generated tokens, [\w-]+ after)", x["note"])
    served_at = study / "inference-dropless"  # the default routing's folder
    report = (served_at / "report.md").read_text()
    assert "dense-tiny ÷ switch-tiny" in report and (served_at / "j_per_token_vs_batch.png").is_file()
    # harness footprint --lifetime on one trained run and a record that served it.
    served = next(p for p in (served_at / "records").glob("*/result.json")
                  if json.loads(p.read_text())["workload"] == "switch-tiny")
    train = next((study / "runs").glob("*switch-tiny*"))
    capsys.readouterr()
    assert main(["footprint", "--lifetime", str(train), str(served.parent), "--tokens", "1e6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_j"] == pytest.approx(out["train"]["joules"] + 1e6 * out["serve"]["j_per_token"])
    assert main(["footprint", "--lifetime", str(train), str(served.parent)]) == 2  # no --tokens


@pytest.fixture(scope="module")
def served(scenarios, tmp_path_factory) -> Path:
    """A folder of two inference records of the session's switch-tiny run: Offline and SingleStream."""
    out = tmp_path_factory.mktemp("served")
    for scenario in ("offline", "singlestream"):
        folder = scenarios[scenario][1]
        shutil.copytree(folder, out / folder.name)
    return out


def test_inference_records_with_their_loadgen_logs_packed_check_and_package_as_before(served, tmp_path):
    """Reference folders keep LoadGen's logs gzipped (scripts/pack_traces.py): check finds them, package lays them
    out plain, hashing as recorded."""
    from conftest import script

    from harness.mlperf.check import check_inference
    from harness.mlperf.package import build_package

    folder = tmp_path / "served"
    shutil.copytree(served, folder)
    pack = script("pack_traces")
    for result in folder.glob("*/result.json"):
        r = read_record(result.parent)
        logs = {n: d for n, d in r.files.items() if Path(n).name in pack.LOADGEN_PACKABLE}
        assert {"mlperf_log_detail.txt", "accuracy/mlperf_log_detail.txt"} <= set(logs)
        for name, digest in logs.items():  # (a performance pass's accuracy log is empty: it stays plain)
            pack.pack(result.parent, name, digest, min_bytes=1024)
        for name in ("mlperf_log_detail.txt", "accuracy/mlperf_log_detail.txt", "accuracy/mlperf_log_accuracy.json"):
            assert not (result.parent / name).exists() and (result.parent / f"{name}.gz").is_file()
        assert check_inference(r, result.parent) == check_inference(read_record(served / result.parent.name),
                                                                     served / result.parent.name)
    root = build_package([folder], tmp_path / "pkg", "acme", "cpu2")
    for laid in root.rglob("mlperf_log_detail.txt"):
        assert not laid.with_name(laid.name + ".gz").exists() and laid.read_text().startswith(":::MLLOG")


def test_package_lays_inference_out_as_mlperf_inference_and_check_reads_it(served, tmp_path):
    from harness.mlperf.check import check_package
    from harness.mlperf.package import build_package

    root = build_package([served], tmp_path, "acme", "cpu2")
    base = root / "inference" / "results" / "cpu2" / "switch-tiny"
    for scenario in ("Offline", "SingleStream"):
        for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json"):
            assert (base / scenario / "performance" / "run_1" / name).is_file()
        assert (base / scenario / "accuracy" / "run_1" / "mlperf_log_accuracy.json").is_file()
        assert (base / scenario / "harness" / "result_1.json").is_file()
    records = {p.parent.parent.name: read_record(p) for p in base.glob("*/harness/result_1.json")}
    expected = [f"{s}/harness/result_1.json" for s, r in records.items() if not r.valid]
    problems = check_package(root)
    assert all(any(e in p for e in expected) for p in problems) and len(problems) >= len(expected)
    # A LoadGen log changed after packaging is caught.
    detail = base / "Offline" / "performance" / "run_1" / "mlperf_log_detail.txt"
    detail.write_text(detail.read_text() + "\n")
    assert any("mlperf_log_detail.txt: sha256 differs" in p for p in check_package(root))


def test_the_site_has_an_inference_table(served, tmp_path):
    from harness.report.site.build import build_site

    index = build_site([served], tmp_path / "site").read_text()
    table = index.split('id="inference-table"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 3  # the header and two records
    assert index.count('id="serving-') == 2  # and a table each way of serving (Offline, SingleStream)
    assert "offline" in table and "singlestream" in table
    assert 'title="fake:synthetic"' in table  # the method of every J/token, in full beside its badge
    assert ">synthetic</span>" in table and ">measured</span>" not in table  # the fake meter never reads as measured


def test_compare_matches_inference_records_served_the_same_way(served):
    from dataclasses import replace

    from harness.report.compare import compare_inference

    records = [read_record(p.parent) for p in sorted(served.glob("*/result.json"))]
    offline = next(r for r in records if r.serving.scenario == "offline")
    twin = replace(offline, run_id="another")
    entries = compare_inference([offline], [twin, *records])
    (entry,) = entries
    assert entry["reference_records"] == 1  # the same record is not its own reference; singlestream is not alike
    jpt = next(row for row in entry["rows"] if row["metric"].startswith("energy per generated token"))
    assert jpt["ratio"] == pytest.approx(1.0)


def _node_measured(r: InferenceRecord, energy_j: float, seed: int, **serving) -> InferenceRecord:
    """`r` as if an external node meter had measured `energy_j` over its window, serving trained seed `seed`."""
    from dataclasses import replace

    from harness.results.schema import Component

    node = {"external/node": Component(joules=energy_j, init_joules=1.0, method="measured:external-command",
                                       scope="node", part="node")}
    energy = replace(r.energy, components=node, node_j=energy_j, total_j=energy_j, complete=True,
                     method="measured:external-command")
    workload = serving.pop("workload", r.workload)
    return replace(r, run_id=f"{workload}-{seed}-{energy_j}", workload=workload, energy=energy,
                   serving=replace(r.serving, run_seed=seed, **serving))


def _claim(tmp_path: Path, **keys) -> dict:
    from harness.report.claims.assess import assess
    from harness.report.claims.claim_file import read_claim

    keys = {"text": "A serves for less energy a token than B", "metric": "joules_per_token", "stage": "inference",
            "workload": "switch-tiny", "subject": "a", "baseline": "b", "relation": "<=", "value": 0.8} | keys
    keys = {k: v for k, v in keys.items() if v is not None}
    lines = [f"{k} = {json.dumps(v)}" if not isinstance(v, dict) else
             f"{k} = {{ {', '.join(f'{a} = {json.dumps(b)}' for a, b in v.items())} }}" for k, v in keys.items()]
    (tmp_path / "claim.toml").write_text("\n".join(lines) + "\n")
    return assess(read_claim(tmp_path / "claim.toml"), checker=lambda path: [])


def test_an_inference_claim_pairs_by_trained_seed_and_holds_the_rules(served, tmp_path):
    from conftest import write_run

    offline = next(read_record(p.parent) for p in served.glob("*/result.json")
                   if json.loads(p.read_text())["serving"]["scenario"] == "offline")
    assert offline.valid
    for seed, (a, b) in enumerate(zip([1.00, 1.04, 0.98], [1.50, 1.53, 1.49], strict=True)):
        write_run(tmp_path / "a" / f"r{seed}", _node_measured(offline, a, seed))
        write_run(tmp_path / "b" / f"r{seed}", _node_measured(offline, b, seed))
    result = _claim(tmp_path)
    assert result["verdict"] == "SUPPORTED", result["reasons"]
    assert result["interval"]["pairing"] == "paired by seed: 3 pairs"
    assert result["interval"]["estimate"] == pytest.approx((1.00 * 1.04 * 0.98 / (1.50 * 1.53 * 1.49)) ** (1 / 3))
    # Served at another batch on one side: not the same serving, cannot be assessed.
    write_run(tmp_path / "b" / "r1", _node_measured(offline, 1.53, 1, batch=8))
    result = _claim(tmp_path)
    assert result["verdict"] == "CANNOT BE ASSESSED" and any(r.startswith("same serving") for r in result["reasons"])
    # The energy the fake meter synthesised has no node meter behind it: never enough for a claim.
    write_run(tmp_path / "m" / "r0", offline)
    result = _claim(tmp_path, subject="m", baseline=None, relation="<=", value=1.0)
    assert result["verdict"] == "CANNOT BE ASSESSED" and any("no node meter" in r for r in result["reasons"])


def test_dense_over_sparse_joules_per_token_at_inference(served, tmp_path):
    from conftest import write_run

    offline = next(read_record(p.parent) for p in served.glob("*/result.json")
                   if json.loads(p.read_text())["serving"]["scenario"] == "offline")
    for seed in range(3):
        write_run(tmp_path / "s" / f"d{seed}", _node_measured(offline, 2.0 + 0.01 * seed, seed, workload="dense-tiny",
                                                               capacity={}, routing=None, spec_sha256="d" * 64))
        write_run(tmp_path / "s" / f"s{seed}", _node_measured(offline, 1.0, seed))
    result = _claim(tmp_path, metric="dense_over_sparse_joules_per_token", subject="s", baseline=None,
                    workload={"dense": "dense-tiny", "sparse": "switch-tiny"}, relation=">=", value=1.5)
    assert result["verdict"] == "SUPPORTED", result["reasons"]
    assert result["interval"]["estimate"] == pytest.approx((2.0 * 2.01 * 2.02) ** (1 / 3), rel=1e-6)
    # One sparse seed served with capacity routing at factor 16: another computation on that side, not one serving.
    write_run(tmp_path / "s" / "s1", _node_measured(offline, 1.0, 1, routing="capacity",
                                                    capacity={"capacity_factor_eval": 16.0}))
    result = _claim(tmp_path, metric="dense_over_sparse_joules_per_token", subject="s", baseline=None,
                    workload={"dense": "dense-tiny", "sparse": "switch-tiny"}, relation=">=", value=1.5)
    assert result["verdict"] == "CANNOT BE ASSESSED"
    assert any("the sparse side was routed capacity 16 and dropless" in r for r in result["reasons"])


def test_servings_that_differ_only_in_corpus_routing_capacity_or_scenario_stay_apart_in_every_reader(served,
                                                                                                       tmp_path):
    from dataclasses import replace

    from harness.infer.options import InferOptions
    from harness.report.claims.inference import serving_setup
    from harness.report.compare import compare_inference
    from harness.report.serving_report import serving_groups
    from harness.results.inference import ServingKey
    from harness.study.inference import inference_folder

    base = next(read_record(p.parent) for p in served.glob("*/result.json")
                if json.loads(p.read_text())["serving"]["scenario"] == "offline")
    assert base.serving.trained_corpus == "default" and base.serving.routing == "dropless"

    def variant(name: str, **serving) -> InferenceRecord:
        return replace(base, run_id=name, created_unix_s=base.created_unix_s + 1,
                       serving=replace(base.serving, **serving))

    others = [variant("control", trained_corpus="control"),
              variant("capacity 2", routing="capacity", capacity={"capacity_factor_eval": 2.0}),
              variant("capacity 16", routing="capacity", capacity={"capacity_factor_eval": 16.0}),
              variant("server", scenario="server")]
    keys = [ServingKey.of(r) for r in (base, *others)]
    assert len(set(keys)) == 5
    assert [k.model for k in keys[:4]] == ["switch-tiny (dropless)", "switch-tiny (dropless)",
                                           "switch-tiny (capacity 2)", "switch-tiny (capacity 16)"]
    # compare: none of the others is a reference for the base record
    (entry,) = compare_inference([base], others)
    assert entry["reference_records"] == 0
    # report: every record in a table, the corpus and the scenario in tables of their own, nothing left out
    groups, skipped = serving_groups([base, *others])
    assert skipped == [] and sum(len(g) for g in groups.values()) == 5 and len(groups) == 3
    (shared,) = [g for g in groups.values() if len(g) == 3]
    assert sorted(shared) == ["switch-tiny (capacity 16)/seed0/batch4", "switch-tiny (capacity 2)/seed0/batch4",
                              "switch-tiny (dropless)/seed0/batch4"]
    # claims: each its own setup
    assert len({serving_setup(r) for r in (base, *others)}) == 5
    # the study's folders: by routing and scenario
    folders = {inference_folder(InferOptions(run_dir="", routing=routing, capacity_factor=f, scenario=scenario))
               for routing, f, scenario in ((None, None, "offline"), ("capacity", 2.0, "offline"),
                                            ("capacity", 16.0, "offline"), (None, None, "server"))}
    assert folders == {"inference-dropless", "inference-capacity2", "inference-capacity16", "inference-dropless-server"}
    # the same serving twice: the later shown, the earlier named
    again = replace(base, run_id="again", created_unix_s=base.created_unix_s + 5)
    groups, skipped = serving_groups([base, again])
    assert [r.run_id for g in groups.values() for r in g.values()] == ["again"]
    assert skipped == [f"{base.run_id}: switch-tiny (dropless) seed 0 batch 4 served the same way again later "
                       "(again, shown)"]


def test_a_record_from_before_the_corpus_was_recorded_takes_it_from_its_study():
    from harness.results.inference import trained_corpus

    root = Path(__file__).resolve().parents[1] / "reference_results/cpu-2core/inference"
    for corpus in ("default", "control"):
        old = read_record(next((root / corpus / "records").iterdir()))
        assert old.serving.trained_corpus is None and trained_corpus(old) == corpus


def test_report_on_training_runs_and_inference_records_prices_both(served, switch_tiny_run, tmp_path):
    assert main(["report", str(served), str(switch_tiny_run), "--output-dir", str(tmp_path / "r")]) == 0
    assert "## Serving (harness infer)" in (tmp_path / "r" / "report.md").read_text()
    serving = (tmp_path / "r" / "serving" / "report.md").read_text()
    assert "Energy to train (median over the converged seeds" in serving and "switch-tiny (dropless) " in serving


def test_report_on_inference_records(served, tmp_path, capsys):
    assert main(["report", str(served), "--output-dir", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.count("\n## ") == 2 and ", offline, " in md and ", singlestream, " in md  # one section a serving
    assert "No training run of these models is among the given folders" in md and "(median over seeds, )" not in md
    assert (tmp_path / "r" / "serving_1" / "j_per_token_vs_batch.png").is_file()


def test_a_run_trained_in_tensorflow_is_served_from_its_weights(tiny_run, tmp_path):
    """Both frameworks keep their weights under the Flax names: the JAX decoder serves a TensorFlow run."""
    pytest.importorskip("tensorflow")
    code, folder = infer(tiny_run("switch-tiny", "tensorflow"), tmp_path)
    r = read_record(folder)
    assert r.status == "completed" and r.serving.decoder["trained_with"] == "tensorflow"
    assert r.accuracy.meets_target  # the same model: what TensorFlow trained, JAX serves at its quality
    assert r.serving.decoder["framework"] == "jax" and r.traffic.generated_tokens > 0


def test_a_query_latency_bound_is_judged_on_whole_queries(switch_tiny_run, tmp_path):
    """With --latency-ms LoadGen judges Server on query latency (token latencies off: it would ignore the bound)."""
    _, first = infer(switch_tiny_run, tmp_path / "a", "--scenario", "server", "--no-accuracy")
    alone_ms = read_record(first).serving.decoder["warm_up_ms"]["batch_1_total"]
    # Meetable by one prompt alone, not by queries that wait up to 5 ms for a batch to fill.
    code, folder = infer(switch_tiny_run, tmp_path / "b", "--scenario", "server", "--latency-ms",
                         str(1.2 * alone_ms), "--max-wait-ms", "5", "--no-accuracy")
    r = read_record(folder)
    assert code == 1 and "perf_constraints" in r.loadgen.failed
    assert r.loadgen.results["result_overlatency_query_count"] > 0


def test_loadgen_user_conf(switch_tiny_run, tmp_path, capsys):
    conf = tmp_path / "user.conf"
    conf.write_text("# LoadGen's own format\n*.Offline.min_duration = 700\n")
    _, folder = infer(switch_tiny_run, tmp_path / "out", "--user-conf", str(conf), "--no-accuracy")
    assert read_record(folder).loadgen.effective_min_duration_ms == 700  # read after the flags: it has the last word
    conf.write_text("min_duration 700\n")
    capsys.readouterr()
    assert main(["infer", str(switch_tiny_run), "--user-conf", str(conf), *SHORT]) == 2
    assert "line 1 is not 'model.scenario.key = value'" in capsys.readouterr().err


def test_every_column_of_the_served_table_lists_the_models_in_one_order():
    from harness.report.serving_report import study_markdown

    def model(valid: str, holds: bool, jpt: float) -> dict:
        return {"median_j_per_token": jpt, "tokens_per_s": 1000.0, "tpot_p99_ms": 0.5, "dropped_fraction": 0.0,
                "loadgen_valid": [valid], "quality_holds": [holds], "method": ["fake:synthetic"]}

    # The other model first in the row's dict: every column must still read baseline first.
    summary = {"baseline": "dense-small", "skipped": [], "training_j": {}, "training_method": [], "lifetime": [],
               "rows": [{"batch": 1, "models": {"switch-small (dropless)": model("INVALID", False, 2e-5),
                                                "dense-small": model("VALID", True, 1e-5)}}]}
    row = next(line for line in study_markdown(summary, None, []).splitlines() if line.startswith("| 1 |"))
    assert row.startswith("| 1 | 1.000e-05 | 2.000e-05 | ") and row.endswith(" | VALID / INVALID | yes / NO |")
