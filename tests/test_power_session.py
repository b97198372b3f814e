"""An MLPerf Power session (power-dev's client and director) attached to an inference record and to a training run
with `harness import-power`, checked as MLPerf checks it, packaged in MLPerf Inference's layout and checked there;
every bad session one line, exit 2. The sessions are written by tests/power_session_fake.py from a known trace, onto
copies of shipped reference records (nothing is served or trained here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.meters.power_session import METHOD
from harness.mlperf.compliance import read_log
from harness.mlperf.loadgen_logs import write_window_logs
from harness.results.files import read_stored, sha256_file
from harness.results.reader import read_record
from tests.power_session_fake import write_session

REF = Path(__file__).resolve().parents[1] / "reference_results" / "cpu-2core" / "inference" / "training" / "default"
SERVED = REF / "inference-dropless" / "records"
RECORD = SERVED / "20261207T181925Z-dense-small-offline-f6688e"
OTHER = SERVED / "20261207T182005Z-dense-small-offline-e0b2f9"  # the same model and scenario, served after it
RUN = REF / "runs" / "20261202T174750Z-switch-small-c56177"
RANGING_BEFORE_S = 80.0  # the ranging run ends this long before the testing run begins


def ramp(t0: float):
    """The known trace: 140 W rising 0.5 W/s from t0 (linear, so that the trapezoid over 1 Hz samples is exact)."""
    return lambda t: 140.0 + 0.5 * (t - t0)


def integral(w, a: float, b: float) -> float:
    return 0.5 * (w(a) + w(b)) * (b - a)


@pytest.fixture
def record(tmp_path) -> Path:
    return Path(shutil.copytree(RECORD, tmp_path / "record"))


@pytest.fixture
def run(tmp_path) -> Path:
    return Path(shutil.copytree(RUN, tmp_path / "run"))


def session_for(folder: Path, out: Path, **faults) -> Path:
    """A session whose testing run is the record's (its own LoadGen detail log), or the run's (the log harness run
    --loadgen-log-dir writes), the ranging run before it at 145 W."""
    r = read_record(folder)
    logs = folder
    if r.is_run:
        write_window_logs(r, out / "L")
        logs, (begin, end) = out / "L", (r.timing.marks_unix_s["run_start"], r.timing.marks_unix_s["run_stop"])
    else:
        begin, end = r.loadgen.power_begin_unix_s, r.loadgen.power_end_unix_s
    detail, summary = (read_stored(logs / f"mlperf_log_{n}.txt") for n in ("detail", "summary"))
    faults.setdefault("ranging_watts", lambda t: 145.0)
    return write_session(out / "client-out", (begin, end), (begin - RANGING_BEFORE_S, end - RANGING_BEFORE_S),
                         ramp(begin), testing_detail=detail, testing_summary=summary, **faults)


def test_a_session_becomes_an_inference_records_wall_energy_and_packages_as_mlperf_inference(record, tmp_path, capsys):
    from harness.mlperf.check import check_package
    from harness.mlperf.package import build_package

    before = read_record(record)
    session = session_for(record, tmp_path)
    capsys.readouterr()
    assert main(["import-power", str(record), str(session.parent)]) == 0  # the client's -o folder: its one session
    out = capsys.readouterr().out
    assert "ranging run, apart (never scored): 145.00 W" in out and "YokogawaWT310E" in out
    r = read_record(record, verify_files=True)
    e, (start, stop) = r.energy, (r.timing.marks_unix_s["first_query"], r.timing.marks_unix_s["last_response"])
    begin = before.loadgen.power_begin_unix_s
    assert e.method == METHOD and e.window == "first_query..last_response"
    assert e.total_j == e.node_j == pytest.approx(integral(ramp(begin), start, stop), rel=1e-9)
    assert e.device_j == pytest.approx(before.energy.total_j)  # the component meters' figure stays beside it
    (check,) = [c for c in e.cross_checks if c["what"] == "node vs components"]
    assert check["disagreement_pct"] == pytest.approx(100 * (before.energy.total_j - e.node_j) / e.node_j)
    assert r.j_per_token == pytest.approx(e.total_j / r.traffic.generated_tokens)
    imported = e.external_import
    assert imported["ranging"]["mean_w"] == pytest.approx(145.0)  # kept apart, never the record's energy
    assert imported["ranging"]["joules"] == pytest.approx(145.0 * imported["ranging"]["seconds"])
    assert imported["testing"]["seconds"] == pytest.approx(before.loadgen.power_end_unix_s - begin)
    assert imported["session"]["name"] == "sut_2026"
    assert r.files["power_session/run_1/spl.txt"] == sha256_file(record / "power_session" / "run_1" / "spl.txt")
    assert {"power_session/power/client.json", "power_session/ranging/spl.txt"} <= set(r.files)
    assert main(["check", str(record)]) == 0
    assert "MLPerf Power session sut_2026" in capsys.readouterr().err
    assert main(["import-power", str(record), str(session)]) == 2  # a second node figure: refused
    assert "already has node-level energy" in capsys.readouterr().err

    # Packaged beside another record of the same scenario: the session's is run_1, with power/ and ranging/.
    other = shutil.copytree(OTHER, tmp_path / "other")
    folder = tmp_path / "both"
    folder.mkdir()
    shutil.move(str(record), folder / "a")
    shutil.move(str(other), folder / "b")
    root = build_package([folder], tmp_path / "pkg", "acme", "cpu2")
    perf = root / "inference" / "results" / "cpu2" / "dense-small" / "Offline" / "performance"
    for rel in ("power/client.json", "power/server.json", "power/ptd_logs.txt", "ranging/spl.txt",
                "ranging/mlperf_log_detail.txt", "run_1/spl.txt", "run_1/ptd_out.txt", "run_1/mlperf_log_detail.txt",
                "run_2/mlperf_log_detail.txt"):
        assert (perf / rel).is_file(), rel
    assert not (perf / "run_2" / "spl.txt").exists()
    harness_dir = perf.parent / "harness"
    assert read_record(harness_dir / "result_1.json").energy.method == METHOD
    notes: list[str] = []
    assert check_package(root, notes) == []
    assert any("MLPerf Power session sut_2026: testing" in n for n in notes)
    spl = perf / "ranging" / "spl.txt"
    spl.write_text(spl.read_text().replace("145.000000", "150.000000", 1))
    problems = check_package(root)
    assert any(str(spl) in p and "sha256 differs from the record's" in p for p in problems)
    assert any(str(spl) in p and "SHA-1 differs" in p for p in problems)


def test_two_records_with_sessions_in_one_scenario_are_refused(record, tmp_path):
    from harness.errors import UsageError
    from harness.mlperf.package import build_package

    assert main(["import-power", str(record), str(session_for(record, tmp_path / "s1"))]) == 0
    twin = shutil.copytree(record, tmp_path / "runs" / "twin")
    shutil.move(str(record), tmp_path / "runs" / "first")
    with pytest.raises(UsageError, match="2 records with an MLPerf Power session"):
        build_package([tmp_path / "runs"], tmp_path / "pkg", "acme", "cpu2")
    assert twin.is_dir()


def test_a_session_becomes_a_training_runs_wall_energy(run, tmp_path, capsys):
    before = read_record(run)
    session = session_for(run, tmp_path)
    assert main(["import-power", str(run), str(session)]) == 0
    r = read_record(run, verify_files=True)
    marks = r.timing.marks_unix_s
    expected = integral(ramp(marks["run_start"]), marks["run_start"], marks["run_stop"])
    assert r.energy.method == METHOD and r.energy.total_j == pytest.approx(expected, rel=1e-9)
    assert r.energy.device_j == pytest.approx(before.energy.total_j)
    assert r.energy.external_import["ranging"]["mean_w"] == pytest.approx(145.0)
    # The run's MLPerf power log now holds the analyzer's readings and sums to the imported figure.
    lines = read_log(run / "power_mllog.txt")
    start = next(ll.timestamp for ll in lines if ll.key == "power_measurement_start")
    readings = [(ll.timestamp, ll.value["value"]) for ll in lines if ll.key == "power_reading"]
    joules = sum(w * (t - t0) / 1000 for (t0, _), (t, w) in zip([(start, 0.0), *readings], readings, strict=False))
    assert joules == pytest.approx(expected, rel=1e-6)
    capsys.readouterr()
    assert main(["check", str(run)]) == 0, capsys.readouterr().out
    (run / "power_session" / "run_1" / "ptd_out.txt").write_text("changed\n")
    assert main(["check", str(run)]) == 2  # as any file of the run's that changed after it
    assert "power_session/run_1/ptd_out.txt: sha256 differs" in capsys.readouterr().err


def test_window_logs_for_the_client_hold_the_runs_timed_window(tmp_path):
    from harness.infer.loadgen import loadgen_time, read_detail

    r = read_record(RUN)
    assert write_window_logs(r, tmp_path)
    values = read_detail(tmp_path / "mlperf_log_detail.txt")
    begin, end = loadgen_time(values["power_begin"]), loadgen_time(values["power_end"])
    marks = r.timing.marks_unix_s
    assert 0 <= marks["run_start"] - begin < 1e-3 and 0 <= end - marks["run_stop"] < 1e-3
    assert "not LoadGen" in (tmp_path / "mlperf_log_summary.txt").read_text()


BAD = {  # fault -> what the one line names
    "missing spl.txt": ({"missing": ("run_1/spl.txt",)}, "run_1/spl.txt: missing"),
    "phases 900 ms apart": ({"phase_skew_s": 0.9}, "900 ms apart by the client and the director"),
    "window outside the testing phase": ("outside", "is not inside the testing phase"),
    "a 10 s gap": ("gap", "s gap without samples"),
    "testing 15 % below ranging": ({"ranging_watts": lambda t: 170.0}, "below the ranging run's 170.00 W"),
    "an unsupported analyzer": ({"analyzer": "YokogawaWT1800"}, "'YokogawaWT1800' on PTDaemon 1.11.1 is not one"),
    "an old PTDaemon": ({"version": "1.9.1"}, "on PTDaemon 1.9.1 is not one MLPerf accepts"),
    "an uncertainty warning": ("uncertain", "an uncertainty above 1 %"),
    "the record is the ranging run": ("ranging", "this record is session sut_2026's ranging run"),
    "another run's session": ("other", "is not session sut_2026's testing run's"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_session_is_one_line_exit_2_and_leaves_the_run_as_it_was(case, run, tmp_path, capsys):
    fault, says = BAD[case]
    marks = read_record(run).timing.marks_unix_s
    s, e = marks["run_start"], marks["run_stop"]
    if fault == "outside":  # the client's phases close before LoadGen's window does
        fault = {"phases": {"testing": [s - 12, s - 1.5, e - 3, e + 12]}}
    elif fault == "gap":
        fault = {"gap": (s + 4, s + 15)}
    elif fault == "uncertain":
        fault = {"ptd_lines": ((s + 5, "WARNING: Uncertainty 1.52%, which is above 1.00% limit for the last sample!"),)}
    elif fault == "ranging":  # a session whose ranging run is this one: the record is not the one to score
        write_window_logs(read_record(run), tmp_path / "L")
        detail = (tmp_path / "L" / "mlperf_log_detail.txt").read_bytes()
        session = write_session(tmp_path / "o", (s + 100, e + 100), (s, e), ramp(s), ranging_detail=detail)
    elif fault == "other":
        session = write_session(tmp_path / "o", (s + 100, e + 100), (s - 100, e - 100), ramp(s))
    if case not in ("the record is the ranging run", "another run's session"):
        session = session_for(run, tmp_path, **fault)
    before = (run / "result.json").read_bytes()
    capsys.readouterr()
    assert main(["import-power", str(run), str(session)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert (run / "result.json").read_bytes() == before and not (run / "power_session").exists()


def test_not_a_session_folder_and_an_offset_with_a_session_are_refused(run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["import-power", str(run), str(tmp_path)]) == 2
    assert "not a power-dev session folder" in capsys.readouterr().err
    assert main(["import-power", str(run), str(session_for(run, tmp_path)), "--utc-offset", "2"]) == 2
    assert "--utc-offset does not apply" in capsys.readouterr().err


def test_a_warning_that_mlperf_accepts_is_kept_with_the_record(run, tmp_path):
    s = read_record(run).timing.marks_unix_s["run_start"]
    session = session_for(run, tmp_path, ptd_lines=((s + 5, "WARNING: Range changed during measurement"),))
    assert main(["import-power", str(run), str(session)]) == 0
    warnings = read_record(run).energy.warnings
    assert any("PTDaemon during the testing run's load" in w and "Range changed" in w for w in warnings)


def test_loadgen_log_dir_takes_one_run(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--workload", "switch-tiny", "--runs", "3", "--loadgen-log-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--loadgen-log-dir takes one run" in err and len(err.splitlines()) == 1


def test_the_client_json_format_is_read_as_power_dev_writes_it(tmp_path):
    """client.json's phases are [wall, monotonic] pairs, four a mode, as power-dev's Summary writes them."""
    from harness.meters.power_session import read_session

    session = write_session(tmp_path, (1000.0, 1010.0), (900.0, 910.0))
    data = json.loads((session / "power" / "client.json").read_text())
    assert set(data["phases"]) == {"ranging", "testing"} and all(len(v) == 4 for v in data["phases"].values())
    s = read_session(session)
    assert s.testing.power_begin == 1000.0 and s.ranging.marks == {"sut_2026_ranging"}
    assert s.analyzer() == ("YokogawaWT310E", "1.11.1")
