"""Every systemd container is made from one definition, every scenario from one base.

test-infra/images/vars/systemd-container.yml says how the base image runs as a server;
the Molecule scenarios (through molecule/common/create.yml) and the demo
(playbooks/local-containers.yml) both create containers with it as the module defaults.
Molecule merges .config/molecule/config.yml (driver, provisioner basics, the shared
create playbook, verifier) under every molecule/<scenario>/molecule.yml. A scenario that
wrote the flags out again, or created its containers some other way, would drift from the
demo: these checks fail then.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEFINITION = ROOT / "test-infra/images/vars/systemd-container.yml"
BASE = ROOT / ".config/molecule/config.yml"
SCENARIOS = sorted(p.parent for p in (ROOT / "molecule").glob("*/molecule.yml"))


def _definition() -> dict:
    return yaml.safe_load(DEFINITION.read_text())["flock_systemd_container"]


def _merged(scenario: Path) -> dict:
    """The scenario's config as Molecule sees it: dictionaries merged key by key over the
    base, anything else replaced."""

    def merge(base, over):
        if isinstance(base, dict) and isinstance(over, dict):
            return {k: merge(base.get(k), over[k]) if k in base else over[k] for k in over} | {
                k: v for k, v in base.items() if k not in over
            }
        return over

    return merge(
        yaml.safe_load(BASE.read_text()), yaml.safe_load((scenario / "molecule.yml").read_text())
    )


def _module_defaults(play_file: Path) -> list:
    """The module_defaults of every task that creates a container, in a playbook."""
    found = []
    for play in yaml.safe_load(play_file.read_text()):
        for task in play.get("tasks", []):
            if "community.docker.docker_container" in task:
                found.append(task.get("module_defaults", {}))
    return found


def test_the_definition_runs_systemd_as_pid_1_unprivileged():
    flags = _definition()
    assert flags["command"] == "/lib/systemd/systemd"
    assert "privileged" not in flags


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_scenario_platforms_name_only_what_is_their_own(scenario):
    config = _merged(scenario)
    assert config["driver"]["name"] == "docker"
    assert config["provisioner"]["playbooks"]["create"] == "../common/create.yml"
    for platform in config["platforms"]:
        written_again = set(platform) & set(_definition())
        assert not written_again, f"{platform['name']} writes {written_again} again"


@pytest.mark.parametrize(
    "playbook", ["molecule/common/create.yml", "playbooks/local-containers.yml"]
)
def test_containers_are_created_with_the_definition(playbook):
    path = ROOT / playbook
    text = path.read_text()
    assert "test-infra/images/vars/systemd-container.yml" in text
    defaults = _module_defaults(path)
    assert defaults, f"{playbook} creates no container"
    for d in defaults:
        assert d == {"community.docker.docker_container": "{{ flock_systemd_container }}"}
