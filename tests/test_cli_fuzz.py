"""A few hundred generated command lines for every subcommand: never a traceback, and bad input is one line
with exit code 2. Training never starts: the step that would start it is replaced by a marker."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

PATHS = ["/nonexistent/x", "/proc/x", "", ".", "README.md"]
NUMBERS = ["-1", "0", "1e999", "nan", "abc", "", "3"]
VOCAB: dict[str, list[tuple[str, list[str]]]] = {
    "run": [("--workload", ["dense-tiny", "nope", "", "dense-base", "switch-tiny"]), ("--seed", NUMBERS),
            ("--max-steps", NUMBERS), ("--steps-per-dispatch", NUMBERS), ("--corpus", ["default", "control", "other"]),
            ("--target-loss", NUMBERS),
            ("--region", ["mars", "us-average", ""]), ("--pue", NUMBERS), ("--carbon-intensity", NUMBERS),
            ("--meter", ["auto", "fake", "gpu", "", "fake,rapl", "external"]), ("--meter-hz", NUMBERS),
            ("--sample-hz", NUMBERS), ("--mesh", ["data=0", "foo", "data=3", "data=1,expert=1", "expert=x"]),
            ("--framework", ["mxnet", "jax", ""]), ("--runs", NUMBERS), ("--output-dir", PATHS),
            ("--data", PATHS), ("--cpu-tdp", NUMBERS), ("--tpu-watts", NUMBERS),
            # Never all three valid at once: a real coordinator would wait for peers that never come.
            ("--num-processes", NUMBERS), ("--process-id", NUMBERS), ("--coordinator", ["nohost", ":", "a:b"]),
            ("--peer-timeout", NUMBERS), ("--meter-command", ["", "false"]), ("--loadgen-log-dir", PATHS)],
    "study": [("--workloads", ["dense-tiny,switch-tiny", "nope", "", "dense-tiny"]), ("--seeds", NUMBERS),
              ("--corpus", ["default", "x"]), ("--sweep", ["experts=", "experts=2,x", "layers=2"]),
              ("--frameworks", ["jax,mxnet", "", "jax"]), ("--resume", PATHS), ("--output-dir", PATHS),
              ("--region", ["mars"]), ("--mesh", ["data=0"])],
    "report": [("", PATHS), ("--output-dir", PATHS)],
    "compare": [("", PATHS), ("--reference", PATHS)],
    "whatif": [("", PATHS), ("--region", ["mars", "us-average"]), ("--pue", NUMBERS), ("--4m", [""]),
               ("--processor", ["nope"]), ("--machine-factor", NUMBERS)],
    "footprint": [("--chips", NUMBERS), ("--hours", NUMBERS), ("--days", NUMBERS), ("--watts", NUMBERS),
                  ("--pue", NUMBERS), ("--region", ["mars", "us-average"]), ("--carbon-intensity", NUMBERS),
                  ("--embodied", NUMBERS), ("--paper", [""])],
    "schedule": [("--hours", NUMBERS), ("--profile", PATHS), ("--watts", NUMBERS), ("--regions", ["", "x"])],
    "package": [("", PATHS), ("--org", ["", "a b", "ok"]), ("--system", ["", "x/y"]), ("--status", ["x"]),
                ("--output-dir", PATHS)],
    "check": [("", PATHS)],
    "import-power": [("", PATHS), ("", PATHS), ("--utc-offset", NUMBERS)],
    "meters": [("--cpu-tdp", NUMBERS), ("--tpu-watts", NUMBERS), ("--json", [""])],
    "claim": [("", PATHS), ("--output-dir", PATHS), ("--json", [""])],
    "project": [("", PATHS), ("--to", ["all", "gpt3", "bert", ""]), ("--region", ["mars"]), ("--pue", NUMBERS),
                ("--allow-modelled", [""]), ("--json", [""])],
    "list": [],
    "regions": [],
}


# Arguments each command cannot do without: always present (with a drawn value), so that the optional ones
# are exercised past argparse.
REQUIRED = {"run": ["--workload"], "schedule": ["--hours", "--profile", "--watts"],
            "package": ["", "--org", "--system"], "import-power": ["", ""], "whatif": [""], "report": [""],
            "compare": [""], "check": [""], "claim": [""], "project": [""]}


class ReachedTraining(Exception):
    """Raised instead of training: the command line was valid all the way to the start of the work."""


@pytest.fixture(autouse=True)
def no_training(monkeypatch, tmp_path):
    # Relative paths ("." and "README.md") name a scratch folder: a command that succeeds writes nothing into
    # the checkout, and "." holds no records.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("not a record\n")
    import harness.runner.execute as execute
    import harness.runner.plan as plan
    import harness.study.campaign as campaign

    def refuse(*args, **kwargs):
        raise ReachedTraining()

    monkeypatch.setattr(execute, "execute", refuse)
    monkeypatch.setattr(campaign, "run_study", refuse)
    monkeypatch.setattr(plan, "cpu_refusal", lambda spec, steps: f"{spec.name} is sized for an accelerator (test)")


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(VOCAB)))
    options = VOCAB[command]
    chosen = [next(o for o in options if o[0] == flag) for flag in REQUIRED.get(command, [])]
    if options:
        chosen += draw(st.lists(st.sampled_from(options), max_size=4))
    argv = [command]
    for flag, values in chosen:
        value = draw(st.sampled_from(values))
        argv += ([flag] if flag else []) + ([value] if value or not flag else [])
    if draw(st.integers(0, 9)) == 0:  # now and then a flag no command knows
        argv.append(draw(st.sampled_from(["--bogus", "-x", "extra"])))
    return argv


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_no_command_line_gives_a_traceback(argv, capsys):
    try:
        code = main(argv)
    except ReachedTraining:
        return  # valid input: the work would have started here
    except SystemExit as e:  # argparse: bad flags or values
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (0, 1, 2), (argv, code)
    if code == 2:
        assert len(err) == 1 and err[0].startswith("harness: error:"), (argv, err)
