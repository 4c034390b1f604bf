"""pytest.ini finds every plain Python test of the repository by rule, and none of Molecule's.

Expected: every test file git tracks (pytest's default names, ``test_*.py`` and
``*_test.py``), except those inside a Molecule scenario (a folder holding molecule.yml: its
testinfra tests run against the scenario's containers, under plain pytest they would check
this machine). Collected: what ``python -m pytest`` collects from the repository root with no
arguments, as scripts/test.sh runs it. A test folder the configuration skips (a testpaths
list, a norecursedirs pattern, a folder named build/, dist/ or target/ ...), a test file
that fails to import, or a scenario's test collected by plain pytest fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GIT = shutil.which("git")


def _in_scenario(path: str) -> bool:
    return any((parent / "molecule.yml").is_file() for parent in (ROOT / path).parents)


def _tracked_test_files() -> set[str]:
    run = subprocess.run(  # noqa: S603 (git from PATH, fixed argv without a shell)
        [GIT, "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {
        path
        for path in run.stdout.split("\0")
        if fnmatch(Path(path).name, "test_*.py") or fnmatch(Path(path).name, "*_test.py")
        if (ROOT / path).is_file()  # the index may still hold a file deleted in the checkout
    }


def _collected_by_pytest() -> tuple[set[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # no -m, -k, ...
    argv = ["--collect-only", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors"]
    run = subprocess.run(  # noqa: S603 (this interpreter, argv without a shell)
        [sys.executable, "-m", "pytest", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    files = {line.split("::", 1)[0] for line in run.stdout.splitlines() if ".py::" in line}
    errors = [line for line in run.stdout.splitlines() if line.startswith("ERROR ")]
    return files, errors


@pytest.fixture(scope="module")
def collection() -> tuple[set[str], set[str], list[str]]:
    if GIT is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the tracked files are the expected set)")
    collected, errors = _collected_by_pytest()
    return _tracked_test_files(), collected, errors


def test_every_tracked_plain_test_file_is_collected(collection):
    tracked, collected, errors = collection
    expected = {path for path in tracked if not _in_scenario(path)}
    assert "molecule/common/tests/test_platforms.py" in expected
    missing = sorted(expected - collected)
    assert not missing, f"pytest from the root does not collect {missing}; errors: {errors}"


def test_no_molecule_scenario_test_is_collected(collection):
    tracked, collected, _ = collection
    assert any(_in_scenario(path) for path in tracked), "no scenario tests: check is vacuous"
    assert not sorted(path for path in collected if _in_scenario(path))
