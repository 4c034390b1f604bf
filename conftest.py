"""The one collection rule pytest.ini cannot say: Molecule scenarios' tests are Molecule's.

A folder holding ``molecule.yml`` is a Molecule scenario; the testinfra tests in its
``tests/`` run against the scenario's containers (``molecule verify``), and under plain
pytest they would check this machine instead. ``molecule/common`` holds no molecule.yml:
its tests are plain tests and are collected. Molecule passes a scenario's test files to
pytest by name, which this hook does not see (pytest only asks it about folders and files
it finds while walking the tree).

It also registers the real Elasticsearch node's fixtures (``es_url``, ``es``, ``prefix``)
once for every test folder, so that one session starts one node.
"""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ("flock_testinfra.es_fixtures",)


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if collection_path.is_dir() and (collection_path / "molecule.yml").is_file():
        return True
    return None
