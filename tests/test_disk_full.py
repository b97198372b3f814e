"""Nothing lost when the disk fills: every file of a record is written, or the command says which was not in
one line, exits non-zero, and the record (when it could be written) lists it so that `harness check` fails it.

Each write is made to fail in turn with ENOSPC (injected at the one place files are written); where the tests
run as root, a real tmpfs is filled as well."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import harness, only_run_dir

import harness.results.emissions as emissions
import harness.results.files as files
from harness.cli import main

TARGETS = ["power.csv", "quality.csv", "steps.csv", "mllog.txt", "power_mllog.txt", "emissions.csv", "result.json"]


def _fail_writes_of(monkeypatch, name: str) -> None:
    """Every write of a file called `name` fails as on a full disk."""
    if name == "emissions.csv":
        def full_append(path, row):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        monkeypatch.setattr(emissions, "append_row", full_append)
        return
    real = files.atomic_write_text

    def full(path: Path, text: str, durable: bool = True) -> None:
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, text, durable)

    monkeypatch.setattr(files, "atomic_write_text", full)


@pytest.mark.e2e
@pytest.mark.parametrize("name", TARGETS)
def test_a_run_whose_file_cannot_be_written_says_so_and_fails(tmp_path, monkeypatch, capsys, name):
    _fail_writes_of(monkeypatch, name)
    code = main(["run", "--workload", "switch-tiny", "--meter", "fake", "--no-progress", "--output-dir",
                 str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    monkeypatch.undo()
    assert code == 1  # converged, but the record is not whole
    assert "NOT WRITTEN:" in out and "No space left on device" in out and "this record does not count" in out
    run_dir = only_run_dir(tmp_path)
    if name == "result.json":
        assert not (run_dir / "result.json").exists()  # nothing to list it in; the run said so
        return
    record = json.loads((run_dir / "result.json").read_text())
    key = "../emissions.csv" if name == "emissions.csv" else name
    assert key in record["files_missing"] and "No space left" in record["files_missing"][key]
    assert key not in record["files"]
    capsys.readouterr()
    assert main(["check", str(run_dir)]) == 1
    assert f"{key} was not written" in capsys.readouterr().out


def test_harness_meter_on_a_full_disk_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    _fail_writes_of(monkeypatch, "power_mllog.txt")
    code = main(["meter", "--meter", "fake", "--output-dir", str(tmp_path), "--", "true"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err  # `true` exits 0; a record that is not whole does not
    assert any(line.startswith("harness meter: NOT WRITTEN: power_mllog.txt") for line in err.splitlines())


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 12 KiB tmpfs (root only): a run's record does not fit in it."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to fill a real filesystem (the injected-ENOSPC tests cover every write)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.e2e
def test_a_real_full_filesystem(small_tmpfs):
    proc = harness("meter", "--meter", "fake", "--output-dir", str(small_tmpfs), "--", sys.executable, "-c", "pass")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "NOT WRITTEN:" in proc.stderr and "No space left on device" in proc.stderr
    # A failed emissions.csv append leaves no empty file behind.
    assert not (small_tmpfs / "emissions.csv").exists() or (small_tmpfs / "emissions.csv").stat().st_size > 0
