"""Several secured clusters in one play each get their own passwords.

Runs the role's own checks and password generation (tasks/validate.yml and
tasks/passwords.yml, through include_role so its defaults, vars and filters load) with
ansible-playbook on this machine, for an inventory of two clusters of two hosts each
(local connection, each host at 127.0.0.1), with the credentials folder in a temporary
directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROLES = Path(__file__).parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

pytestmark = pytest.mark.skipif(
    not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook not in this venv (bootstrap.sh)"
)

PLAYBOOK = """\
- hosts: all
  gather_facts: true
  gather_subset: ["!all", "!min", hardware]
  tasks:
    - ansible.builtin.include_role:
        name: elasticsearch
        tasks_from: validate
    - ansible.builtin.include_role:
        name: elasticsearch
        tasks_from: passwords
"""

# Two of Flock's users stand for all of them (each file is one more task on the controller).
USERS = ["elastic", "kibana_system", "flock_gateway", "flock_viewer"]


def _inventory(credentials: Path, alpha: str, beta: str) -> dict:
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "elasticsearch_address": "127.0.0.1",
        "elasticsearch_heap_size": "64m",
        "flock_credentials_dir": str(credentials),
        "elasticsearch_users": {
            "flock_gateway": {"roles": ["flock_gateway_writer"]},
            "flock_viewer": {"roles": ["flock_viewer"]},
        },
    }
    return {
        "all": {
            "vars": common,
            "children": {
                "elasticsearch": {
                    "hosts": {"alpha1": {}, "alpha2": {}},
                    "vars": {"elasticsearch_cluster_name": alpha},
                },
                "es_beta": {
                    "hosts": {"beta1": {}, "beta2": {}},
                    "vars": {"elasticsearch_group": "es_beta", "elasticsearch_cluster_name": beta},
                },
            },
        }
    }


def _play(tmp_path: Path, alpha: str, beta: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(_inventory(tmp_path / "credentials", alpha, beta)))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)]
    return subprocess.run(  # noqa: S603 (our own ansible-playbook, argv without a shell)
        argv, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_two_clusters_get_their_own_passwords(tmp_path):
    run = _play(tmp_path, "alpha", "beta")
    assert run.returncode == 0, run.stdout + run.stderr
    folders = {
        name: tmp_path / "credentials" / "elasticsearch" / name for name in ("alpha", "beta")
    }
    passwords = {}
    for name, folder in folders.items():
        assert oct(folder.stat().st_mode & 0o777) == "0o700", name
        for user in USERS:
            file = folder / f"{user}.password"
            assert oct(file.stat().st_mode & 0o777) == "0o600", file
            passwords[name, user] = file.read_text()
            assert len(passwords[name, user]) == 32, file
    for user in USERS:
        assert passwords["alpha", user] != passwords["beta", user], user
    # No password reached the play's output.
    assert not any(p in run.stdout + run.stderr for p in passwords.values())


def test_two_clusters_with_one_credentials_folder_are_refused(tmp_path):
    run = _play(tmp_path, "same", "same")
    assert run.returncode != 0
    assert "are different clusters with one credentials folder" in run.stdout
    assert "(group 'elasticsearch') and the group(s) es_beta" in run.stdout
    assert not (tmp_path / "credentials").exists()
