"""Commands run with their default paths never write into the checkout: what they make goes to folders the
project's .gitignore names (results/, site/, submission/), so `git status` stays clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A copy of this checkout as a commit would hold it (tracked files and new ones git does not ignore),
    committed in a repository of its own, and the working folder of the test."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    copy = tmp_path / "repo"
    for name in _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    monkeypatch.chdir(copy)
    return copy


def test_commands_with_default_paths_leave_git_status_clean(checkout, capsys):
    assert main(["run", "--workload", "switch-tiny", "--meter", "fake", "--no-progress"]) == 0
    (run,) = [d for d in (checkout / "results").iterdir() if d.is_dir()]
    run = run.relative_to(checkout)
    for argv in (["report", str(run)], ["compare", str(run)], ["site", "results"], ["check", str(run)],
                 ["package", str(run), "--org", "acme", "--system", "vm"], ["meter", "--meter", "fake", "--", "true"],
                 ["report", "reference_results/cpu-2core/study/default"]):
        assert main(argv) == 0, argv
    capsys.readouterr()
    assert (checkout / "site" / "index.html").is_file() and (checkout / "submission" / "acme").is_dir()
    assert _git(checkout, "status", "--porcelain") == ""
