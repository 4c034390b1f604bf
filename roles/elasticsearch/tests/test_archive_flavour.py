"""The archive install keeps the open and the x-pack build of one version apart.

Runs the role's own unpack-and-link tasks (tasks/install_archive_version.yml, through
include_role so its vars and filters load) with ansible-playbook on this machine, into a
temporary directory, with two small tarballs laid out like the node's (a top directory,
bin/elasticsearch, and modules/x-pack-security in the x-pack one only). A host that had
the open build and is switched to x-pack at the same version must end up running the
x-pack tree, and back.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROLES = Path(__file__).parents[2]
VERSION = "8.19.21"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

pytestmark = [
    pytest.mark.skipif(
        not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook not in this venv (bootstrap.sh)"
    ),
    # The tasks unpack as root:root, as they do on a node.
    pytest.mark.skipif(os.geteuid() != 0, reason="the role's unpack sets owner root: needs root"),
]

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: elasticsearch
        tasks_from: install_archive_version
"""


def _tarball(path: Path, xpack: bool, version: str = VERSION) -> Path:
    """A tarball shaped like the node's: elasticsearch-<ver>/bin/elasticsearch (+ x-pack)."""
    files = {"bin/elasticsearch": b"#!/bin/sh\n"}
    if xpack:
        files["modules/x-pack-security/plugin-descriptor.properties"] = b"name=x-pack-security\n"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"elasticsearch-{version}/{name}")
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def _install(
    tmp_path: Path, archive: Path, xpack: bool, version: str = VERSION, unpack_only: bool = False
) -> None:
    playbook = tmp_path / "install.yml"
    playbook.write_text(PLAYBOOK)
    extra = {
        "elasticsearch_home": str(tmp_path / "share" / "elasticsearch"),
        "elasticsearch_version": version,
        "elasticsearch_archive_src": str(archive),
        "elasticsearch_xpack_available": xpack,
        "__elasticsearch_archive_unpack_only": unpack_only,
        # The modules run in this interpreter (it has Ansible), not one found on PATH.
        "ansible_python_interpreter": sys.executable,
    }
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook)]
    argv += ["-e", json.dumps(extra)]
    run = subprocess.run(  # noqa: S603 (our own ansible-playbook, argv without a shell)
        argv, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_switching_flavour_at_one_version_switches_the_tree(tmp_path):
    open_tgz = _tarball(tmp_path / "open.tar.gz", xpack=False)
    xpack_tgz = _tarball(tmp_path / "xpack.tar.gz", xpack=True)
    home = tmp_path / "share" / "elasticsearch"

    _install(tmp_path, open_tgz, xpack=False)
    assert not (home / "modules" / "x-pack-security").exists()

    _install(tmp_path, xpack_tgz, xpack=True)
    assert (home / "bin" / "elasticsearch").is_file()
    assert (home / "modules" / "x-pack-security").is_dir(), (
        f"{home} -> {os.readlink(home)} still holds the open build"
    )

    # Back to the open build: its tree is still there and is linked again.
    _install(tmp_path, open_tgz, xpack=False)
    assert not (home / "modules" / "x-pack-security").exists()
    assert os.readlink(home) == f"{home}-{VERSION}"


def test_next_version_unpacked_ahead_of_the_turn_leaves_the_running_tree_linked(tmp_path):
    """What install_archive.yml does on a node to be upgraded, before its turn: the new
    version's tree is ready, the node's install path still points at the running one."""
    home = tmp_path / "share" / "elasticsearch"
    _install(tmp_path, _tarball(tmp_path / "old.tar.gz", xpack=False), xpack=False)
    nxt = "8.19.22"
    new_tgz = _tarball(tmp_path / "new.tar.gz", xpack=False, version=nxt)
    _install(tmp_path, new_tgz, xpack=False, version=nxt, unpack_only=True)
    assert (Path(f"{home}-{nxt}") / "bin" / "elasticsearch").is_file()
    assert os.readlink(home) == f"{home}-{VERSION}"
    # Its turn: only the link moves.
    _install(tmp_path, new_tgz, xpack=False, version=nxt)
    assert os.readlink(home) == f"{home}-{nxt}"
