"""Meters as plugins: other packages' backends through the entry point group `harness.meters` (issue 40).

Most checks run in this process, on the registry (restored after each test); two run `harness` in a subprocess
with examples/meter-plugin placed on PYTHONPATH beside a generated dist-info, as an installed plugin would be.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import tomllib
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest
from conftest import harness, only_result, with_env

from harness.cli import main
from harness.meters import MeterRequest, MeterSelectionError, check_request, parse_meter_names, select_meters
from harness.meters import registry as reg
from harness.meters.fake import FakeMeter
from harness.meters.plugins import GROUP, RESERVED_OPTIONS, Origin, _declared_anywhere, load
from harness.meters.select import probe
from harness.monitor import EnergyMonitor

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "meter-plugin"
MODULES = ("harness_energy_file", "plugin_cases", "raising_meter")

CASES = '''
from harness.meters.base import Meter, Option


class Impl:
    description = ("a test figure", "measured", "any")
    method = "measured:test"

    @classmethod
    def from_request(cls, req, accels):
        return cls()

    def components(self):
        return ["x"]

    def start(self):
        pass

    def read(self):
        return {"x": 0.0}

    def params(self):
        return {"method": self.method}


class Good(Impl, Meter):
    name = "good"
    options = (Option("good_level", "--good-level", float, "a level"),)


class OptionTaken(Impl, Meter):
    name = "uses-good-option"
    options = (Option("good_level", "--uses-good-option-level", float),)


class FlagTaken(Impl, Meter):
    name = "uses-good-flag"
    options = (Option("flag_taken_level", "--good-level", float),)


class Reserved(Impl, Meter):
    name = "reserved"
    options = (Option("region", "--reserved-region", str),)


class BadFlag(Impl, Meter):
    name = "bad-flag"
    options = (Option("bad_flag_x", "-x", str),)


class NoHelp(Impl, Meter):
    name = "no-help"
    options = (Option("no_help_x", "--no-help-x", str),)


class NoName(Impl, Meter):
    pass


class NoDescription(Impl, Meter):
    name = "no-description"
    description = ("", "", "")


class Synthetic(Impl, Meter):
    name = "synthetic"
    description = ("a test figure", "synthetic", "any")


class Abstract(Meter):
    name = "abstract"
    description = ("a test figure", "measured", "any")


class Guessed(Impl, Meter):
    name = "guessed"
    method = "guessed-from-the-fan-noise"
    in_auto = True


class Crashes(Impl, Meter):
    name = "crashes"

    @classmethod
    def from_request(cls, req, accels):
        raise ValueError("vendor library returned -7")


class ClashesWithOurs(Impl, Meter):
    name = "clash"
    options = (Option("clash_region", "--region", str, "a region of its own"),)
'''


@pytest.fixture
def registry():
    """The live registry, put back as it was after the test (the CLI and select read the same dicts)."""
    saved = dict(reg.BACKENDS), dict(reg.OPTIONS), dict(reg.ORIGINS), list(reg.REJECTED)
    yield reg
    for live, old in zip((reg.BACKENDS, reg.OPTIONS, reg.ORIGINS), saved[:3], strict=True):
        live.clear()
        live.update(old)
    reg.REJECTED[:] = saved[3]


@pytest.fixture
def cases(tmp_path, monkeypatch):
    """A folder on sys.path with plugin_cases.py (the classes above) and a module that fails at import."""
    (tmp_path / "plugin_cases.py").write_text(CASES)
    (tmp_path / "raising_meter.py").write_text('raise RuntimeError("vendor SDK not found\\nsecond line")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in MODULES:
        sys.modules.pop(name, None)


def _builtins() -> dict:
    return {n: b for n, b in reg.BACKENDS.items() if not reg.is_plugin(n)}


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, GROUP)


def _dist_info(root: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")


def install_example(root: Path) -> Path:
    """examples/meter-plugin as pip would leave it in site-packages: the module, and a dist-info whose entry
    points are the pyproject's."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copy(EXAMPLE / "harness_energy_file.py", root)
    _dist_info(root, project["name"], project["version"], project["entry-points"][GROUP])
    return root


def _entry_points(root: Path) -> list[EntryPoint]:
    return [ep for d in distributions(path=[str(root)]) for ep in d.entry_points.select(group=GROUP)]


def test_the_example_plugin_loads_with_its_origin(tmp_path, monkeypatch):
    root = install_example(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "nothing-here")])
    assert not _declared_anywhere()  # the usual case: no importlib.metadata at all
    monkeypatch.setattr(sys, "path", [str(root)])
    assert _declared_anywhere()
    try:
        loaded = load(_entry_points(root), _builtins())
    finally:
        monkeypatch.undo()
    assert list(loaded.backends) == ["energy-file"] and not loaded.rejected
    origin = loaded.origins["energy-file"]
    assert origin == Origin("harness-energy-file", "0.1.0", "harness_energy_file:EnergyFileMeter")
    assert str(origin) == "plugin harness-energy-file 0.1.0 (harness_energy_file:EnergyFileMeter)"
    sys.modules.pop("harness_energy_file", None)


def test_every_unfit_plugin_is_rejected_in_one_line(cases):
    eps = [_ep("good", "plugin_cases:Good"), _ep("uses-good-option", "plugin_cases:OptionTaken"),
           _ep("uses-good-flag", "plugin_cases:FlagTaken"), _ep("reserved", "plugin_cases:Reserved"),
           _ep("bad-flag", "plugin_cases:BadFlag"), _ep("no-help", "plugin_cases:NoHelp"),
           _ep("no-name", "plugin_cases:NoName"),
           _ep("no-description", "plugin_cases:NoDescription"), _ep("synthetic", "plugin_cases:Synthetic"),
           _ep("abstract", "plugin_cases:Abstract"), _ep("missing", "no_such_vendor_sdk:Meter"),
           _ep("raising", "raising_meter:Meter"), _ep("not-a-meter", "json:dumps"), _ep("rapl", "plugin_cases:Good"),
           _ep("auto", "plugin_cases:Good"), _ep("Bad Name", "plugin_cases:Good"), _ep("twin", "plugin_cases:Good"),
           _ep("twin", "plugin_cases:Good")]
    loaded = load(eps, _builtins())
    assert list(loaded.backends) == ["good"] and loaded.origins["good"].entry_point == "plugin_cases:Good"
    why = {r.name: r.reason for r in loaded.rejected}
    assert len(loaded.rejected) == len(eps) - 1
    expected = {"uses-good-option": "'good_level'", "uses-good-flag": "'--good-level'", "reserved": "'region'",
                "bad-flag": "'-x'", "no-help": "--no-help-x has no help", "no-name": "NoName.name is None",
                "no-description": "description",
                "synthetic": "'synthetic'", "abstract": "does not implement", "missing": "ModuleNotFoundError",
                "raising": "RuntimeError: vendor SDK not found second line", "not-a-meter": "not a harness",
                "rapl": "built-in", "auto": "reserved", "Bad Name": "lower-case", "twin": "2 plugins claim"}
    for name, words in expected.items():
        assert words in why[name], (name, why[name])
    for r in loaded.rejected:
        assert "\n" not in r.line() and r.line().startswith(f"meter plugin {r.name} from ")


def test_a_plugin_meter_is_used_like_ours(registry, tmp_path, monkeypatch, capsys):
    root = install_example(tmp_path)
    monkeypatch.syspath_prepend(str(root))
    reg.admit(load(_entry_points(root), _builtins()))
    counter = tmp_path / "energy1_input"
    counter.write_text("1000000\n")
    # Its option is a request field and a flag; like --meter-command, it needs its meter named.
    with pytest.raises(MeterSelectionError, match="only used with --meter energy-file"):
        check_request(MeterRequest(("auto",), energy_file=str(counter)))
    check_request(MeterRequest(("energy-file",), energy_file=str(counter)))
    assert parse_meter_names("cpu-model,energy-file") == ("cpu-model", "energy-file")
    assert main(["meters", "--json", "--energy-file", str(counter)]) == 0
    rows = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}
    row = rows["energy-file"]
    assert row["available"] and row["loaded"] and not row["used_by_auto"] and "1.000 J" in row["reason"]
    assert row["origin"]["kind"] == "plugin" and row["origin"]["distribution"] == "harness-energy-file"
    assert rows["cpu-model"]["origin"] == {"kind": "built-in"}
    assert reg.recorded_params(FakeMeter()) == FakeMeter().params()  # ours record as before
    # The Python API: the figure says how it was measured, and the record which package measured it.
    with EnergyMonitor(meter="energy-file", energy_file=str(counter), output_dir=tmp_path / "out") as monitor:
        with monitor.window("work"):
            counter.write_text("3500000\n")
    (m,) = monitor.measurements
    assert m.method == "measured:energy-counter-file" and m.energy_j == pytest.approx(2.5)
    (params,) = json.loads((tmp_path / "out" / "windows.json").read_text())["meters"]
    assert params["method"] == "measured:energy-counter-file" and params["origin"]["kind"] == "plugin"
    sys.modules.pop("harness_energy_file", None)


def test_a_plugin_figure_must_say_how_it_was_obtained(registry, cases):
    reg.admit(load([_ep("guessed", "plugin_cases:Guessed"), _ep("crashes", "plugin_cases:Crashes")], _builtins()))
    assert list(reg.BACKENDS)[-2:] == ["crashes", "guessed"]  # after ours, in name order
    with pytest.raises(MeterSelectionError, match=r"^--meter guessed: guessed: method label "
                                                  r"'guessed-from-the-fan-noise' must say how") as e:
        select_meters(MeterRequest(("guessed",)), [])
    assert "\n" not in str(e.value)
    # In auto (Guessed asks for it), it is left out with the reason, and a probe that raises is only unavailable.
    meters, unused = select_meters(MeterRequest(), [])
    assert "guessed" not in {m.name for m in meters}
    assert "method label" in {u["name"]: u["reason"] for u in unused}["guessed"]
    crashed = probe("crashes", MeterRequest(), [])
    assert crashed.reason == "crashes: probe failed: ValueError: vendor library returned -7"


def test_a_rejected_plugin_is_named_and_breaks_nothing(registry, cases, capsys):
    reg.admit(load([_ep("broken", "raising_meter:Meter")], _builtins()))
    assert "broken" not in reg.BACKENDS
    with pytest.raises(MeterSelectionError, match="--meter broken: meter plugin broken from .* not loaded: import"):
        parse_meter_names("auto,broken")
    _, unused = select_meters(MeterRequest(), [])
    assert {u["name"]: u["reason"] for u in unused}["broken"] == reg.REJECTED[-1].line()  # in every record
    assert main(["meters"]) == 0
    out = capsys.readouterr().out
    assert reg.REJECTED[-1].line() in out.replace("\n", " ") and "cpu-model" in out


def test_a_plugin_flag_that_one_of_our_commands_takes_withdraws_the_plugin(registry, cases, capsys):
    reg.admit(load([_ep("clash", "plugin_cases:ClashesWithOurs")], _builtins()))
    assert "clash" in reg.BACKENDS  # no meter has --region: only the CLI can tell
    assert main(["meters", "--json"]) == 0
    row = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}["clash"]
    assert not row["loaded"] and "its flag --region is one of harness's own" in row["reason"]
    assert "clash" not in reg.BACKENDS and "clash_region" not in reg.OPTIONS


def test_reserved_option_names_are_the_keywords_of_the_request_and_the_monitor():
    def keywords(f):
        return {p.name for p in inspect.signature(f).parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}

    assert RESERVED_OPTIONS == keywords(MeterRequest.__init__) | keywords(EnergyMonitor.__init__)


# -- installed, in a subprocess ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder laid out like site-packages: the example plugin, and a plugin whose vendor library is missing."""
    root = install_example(tmp_path_factory.mktemp("site"))
    (root / "harness_broken_meter.py").write_text("import no_such_vendor_sdk  # noqa: F401\n")
    _dist_info(root, "harness-broken-meter", "1.0", {"broken": "harness_broken_meter:BrokenMeter"})
    (root / "energy1_input").write_text("1000000\n")
    return root


def _env(site: Path) -> dict[str, str]:
    return with_env({"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)})


@pytest.mark.e2e
def test_harness_meters_lists_an_installed_plugin_and_names_a_broken_one(site):
    proc = harness("meters", "--json", "--energy-file", str(site / "energy1_input"), env=_env(site))
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in json.loads(proc.stdout)}
    assert rows["energy-file"]["available"] and rows["energy-file"]["basis"] == "measured"
    assert rows["energy-file"]["origin"] == {"kind": "plugin", "distribution": "harness-energy-file",
                                             "version": "0.1.0", "entry_point": "harness_energy_file:EnergyFileMeter"}
    assert not rows["broken"]["loaded"] and rows["broken"]["reason"] == (
        "meter plugin broken from harness-broken-meter 1.0 (harness_broken_meter:BrokenMeter) not loaded: import "
        "failed: ModuleNotFoundError: No module named 'no_such_vendor_sdk'")
    assert rows["cpu-model"]["used_by_auto"]  # everything else as without plugins


@pytest.mark.e2e
def test_harness_meter_with_an_installed_plugin_meter(site, tmp_path):
    counter = site / "energy1_input"
    write = f"import pathlib, time; time.sleep(0.3); pathlib.Path({str(counter)!r}).write_text('6000000')"
    proc = harness("meter", "--meter", "energy-file", "--energy-file", str(counter), "--output-dir", str(tmp_path),
                   "--", sys.executable, "-c", write, env=_env(site))
    assert proc.returncode == 0, proc.stderr
    assert "5.0 J (measured:energy-counter-file)" in proc.stderr
    e = only_result(tmp_path)["energy"]
    assert e["method"] == "measured:energy-counter-file" and e["total_j"] == pytest.approx(5.0)
    (params,) = e["meters"]
    assert params["origin"]["distribution"] == "harness-energy-file" and params["file"] == str(counter)
    assert any(u["name"] == "broken" and "not loaded" in u["reason"] for u in e["unavailable"])
