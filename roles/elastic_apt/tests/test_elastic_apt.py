"""The elastic_apt role's key check, keyring and origin pin, run on this machine.

Elastic's repository is out of reach here, so the role's own task files run with
ansible-playbook against temporary paths with a signing key generated for the test
(gpg), and the pin is judged by APT itself: two small repositories served over HTTP on
this machine stand in for Elastic's (127.0.0.1, signed with the generated key, checked
through the keyring the role wrote) and for another source (localhost) that offers a
newer package of the same name. The removal of other majors' sources runs on a
temporary sources directory. Not run here: the download from artifacts.elastic.co,
writing the deb822 source (it writes /etc/apt on the host, and needs python3-debian),
the package list refresh and installing a package.
"""

from __future__ import annotations

import email.utils
import functools
import gzip
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from roles.elastic_apt.filter_plugins.elastic_apt import primary_fingerprints

ROLES = Path(__file__).parents[2]

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
GPG = shutil.which("gpg")
APT_GET = shutil.which("apt-get")

needs_gpg = pytest.mark.skipif(GPG is None, reason="gpg not installed")
needs_ansible = [
    pytest.mark.skipif(
        not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook not in this venv (bootstrap.sh)"
    ),
    # The role writes root-owned files, as it does on a host.
    pytest.mark.skipif(os.geteuid() != 0, reason="the role sets owner root: needs root"),
    needs_gpg,
]


def _gpg(home: Path, *args: str, stdin: str | None = None) -> str:
    run = subprocess.run(  # noqa: S603 (gpg from PATH, argv without a shell)
        [GPG, "--homedir", str(home), "--batch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return run.stdout


class Signer:
    """A signing key generated in its own GnuPG home."""

    def __init__(self, home: Path, uid: str) -> None:
        home.mkdir(mode=0o700, parents=True)
        self.home = home
        _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        colons = _gpg(home, "--with-colons", "--list-keys")
        self.fingerprint = primary_fingerprints(colons)[0]
        self.armored = _gpg(home, "--armor", "--export", self.fingerprint)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Signer]:
    if GPG is None:
        pytest.skip("gpg not installed")
    base = tmp_path_factory.mktemp("gnupg")
    return {
        "elastic": Signer(base / "elastic", "Test Elastic signing key <elastic@example.invalid>"),
        "other": Signer(base / "other", "Someone else <other@example.invalid>"),
    }


def _play(tmp_path: Path, tasks_from: str, extra: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / f"{tasks_from}.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: elastic_apt\n"
        f"        tasks_from: {tasks_from}\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    # The modules run in this interpreter (it has Ansible), not one found on PATH.
    extra = {"ansible_python_interpreter": sys.executable, "elastic_apt_version": "8.19.21"} | extra
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook)]
    argv += ["-e", json.dumps(extra)]
    return subprocess.run(  # noqa: S603 (our own ansible-playbook, argv without a shell)
        argv, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _install_key(tmp_path: Path, key_text: str, fingerprint: str) -> subprocess.CompletedProcess:
    key_file = tmp_path / "GPG-KEY-elasticsearch"
    key_file.write_text(key_text)
    return _play(
        tmp_path,
        "key",
        {
            "elastic_apt_key_file": str(key_file),
            "elastic_apt_key_fingerprint": fingerprint,
            "elastic_apt_keyring": str(tmp_path / "keyrings" / "elastic.gpg"),
            "__elastic_apt_former_keyring_files": [str(tmp_path / "former" / "elastic.gpg")],
        },
    )


def _keyring_fingerprints(tmp_path: Path, keyring: Path) -> list[str]:
    home = tmp_path / "show"
    home.mkdir(mode=0o700, exist_ok=True)
    return primary_fingerprints(_gpg(home, "--with-colons", "--show-keys", str(keyring)))


# --- the fingerprint filter ----------------------------------------------------------


@needs_gpg
def test_primary_fingerprints_ignore_subkeys(tmp_path):
    signer = Signer(tmp_path / "gnupg", "Key with a subkey <subkey@example.invalid>")
    # Elastic's key signs with a subkey as well: a subkey's fingerprint is not a primary key.
    _gpg(signer.home, "--passphrase", "", "--quick-add-key", signer.fingerprint, "ed25519", "sign")
    colons = _gpg(signer.home, "--with-colons", "--list-keys")
    assert colons.count("\nfpr:") == 2
    assert primary_fingerprints(colons) == [signer.fingerprint]


# --- key.yml: only the pinned key reaches the keyring -------------------------------


@pytest.mark.usefixtures("keys")
class TestKeyring:
    pytestmark = needs_ansible

    def test_the_pinned_key_is_written_dearmored_and_the_former_keyring_removed(
        self, keys, tmp_path
    ):
        former = tmp_path / "former" / "elastic.gpg"
        former.parent.mkdir()
        former.write_bytes(b"old")
        elastic = keys["elastic"]
        run = _install_key(tmp_path, elastic.armored, elastic.fingerprint.lower())
        assert run.returncode == 0, run.stdout + run.stderr
        keyring = tmp_path / "keyrings" / "elastic.gpg"
        # Binary (dearmored), not ASCII armour: APT's signed-by reads it as is.
        assert not keyring.read_bytes().startswith(b"-----BEGIN")
        assert _keyring_fingerprints(tmp_path, keyring) == [elastic.fingerprint]
        assert oct(keyring.stat().st_mode & 0o777) == "0o644"
        assert not former.exists()
        # Again: nothing changes.
        again = _install_key(tmp_path, elastic.armored, elastic.fingerprint)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "changed=0" in again.stdout

    def test_another_fingerprint_is_refused_and_nothing_written(self, keys, tmp_path):
        run = _install_key(tmp_path, keys["other"].armored, keys["elastic"].fingerprint)
        assert run.returncode != 0
        said = " ".join((run.stdout + run.stderr).split())
        assert f"not exactly {keys['elastic'].fingerprint}" in said
        assert keys["other"].fingerprint in said
        assert not (tmp_path / "keyrings" / "elastic.gpg").exists()

    def test_a_file_with_another_key_beside_elastics_is_refused(self, keys, tmp_path):
        both = keys["elastic"].armored + keys["other"].armored
        run = _install_key(tmp_path, both, keys["elastic"].fingerprint)
        assert run.returncode != 0
        assert "not exactly" in " ".join((run.stdout + run.stderr).split())
        assert not (tmp_path / "keyrings" / "elastic.gpg").exists()


# --- pin.yml, judged by APT ----------------------------------------------------------

# name -> version, per repository. "other" offers a newer elasticsearch than Elastic's.
ELASTIC_REPO = {"elasticsearch": "8.19.21", "kibana": "8.19.21", "filebeat": "8.19.21"}
OTHER_REPO = {"elasticsearch": "99.0.0", "flock-demo-tool": "1.0"}


def _flat_repo(root: Path, packages: dict[str, str], signer: Signer | None) -> None:
    """A flat APT repository (``deb <url> ./``) with package records only (no .deb)."""
    root.mkdir(parents=True)
    records = "".join(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        f"Filename: ./{name}_{version}_all.deb\nSize: 1\nSHA256: {'0' * 64}\n"
        f"Description: test record\n\n"
        for name, version in packages.items()
    )
    (root / "Packages").write_text(records)
    with gzip.open(root / "Packages.gz", "wt") as gz:
        gz.write(records)
    sums = "".join(
        f" {hashlib.sha256((root / f).read_bytes()).hexdigest()} {(root / f).stat().st_size} {f}\n"
        for f in ("Packages", "Packages.gz")
    )
    date = email.utils.formatdate(usegmt=True)
    release = (
        f"Origin: test\nLabel: test\nSuite: stable\nDate: {date}\n"
        f"Architectures: all amd64\nSHA256:\n{sums}"
    )
    (root / "Release").write_text(release)
    if signer is not None:
        signed = _gpg(signer.home, "--clearsign", "--output", "-", stdin=release)
        (root / "InRelease").write_text(signed)


@pytest.fixture
def repos(tmp_path, keys) -> Iterator[int]:
    www = tmp_path / "www"
    _flat_repo(www / "elastic", ELASTIC_REPO, keys["elastic"])
    _flat_repo(www / "other", OTHER_REPO, None)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _candidates(tmp_path: Path, port: int, keyring: Path, preferences: Path | None) -> dict:
    """apt-get update and apt-cache policy in an APT tree of their own under tmp_path."""
    state = tmp_path / "apt-state"
    for d in ("lists/partial", "cache/archives/partial", "parts", "prefs.d"):
        (state / d).mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    sources = state / "sources.list"
    sources.write_text(
        f"deb [signed-by={keyring}] http://127.0.0.1:{port}/elastic/ ./\n"
        f"deb [trusted=yes] http://localhost:{port}/other/ ./\n"
    )
    opts = [
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::State::status={state / 'status'}",
        f"-oDir::Cache={state / 'cache'}",
        f"-oDir::Etc::SourceList={sources}",
        f"-oDir::Etc::SourceParts={state / 'parts'}",
        f"-oDir::Etc::Preferences={preferences or state / 'none.pref'}",
        f"-oDir::Etc::PreferencesParts={state / 'prefs.d'}",
        "-oAPT::Sandbox::User=root",
        "-oDebug::NoLocking=1",
        "-oAPT::Architecture=amd64",
    ]
    update = subprocess.run(  # noqa: S603 (apt-get from PATH, argv without a shell)
        [APT_GET, *opts, "update"], capture_output=True, text=True, timeout=120, check=False
    )
    assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, (
        update.stdout + update.stderr
    )
    names = sorted(set(ELASTIC_REPO) | set(OTHER_REPO))
    policy = subprocess.run(  # noqa: S603
        [shutil.which("apt-cache"), *opts, "policy", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    found, name = {}, None
    for line in policy.splitlines():
        if not line.startswith(" "):
            name = line.rstrip(":")
        elif line.strip().startswith("Candidate:"):
            found[name] = line.split(":", 1)[1].strip()
    return found


@pytest.mark.skipif(APT_GET is None, reason="APT not installed")
class TestOriginPin:
    pytestmark = needs_ansible

    def test_only_the_callers_packages_from_elastic_and_those_only_from_there(
        self, keys, repos, tmp_path
    ):
        elastic = keys["elastic"]
        run = _install_key(tmp_path, elastic.armored, elastic.fingerprint)
        assert run.returncode == 0, run.stdout + run.stderr
        keyring = tmp_path / "keyrings" / "elastic.gpg"
        preferences = tmp_path / "elastic.pref"
        pinned = _play(
            tmp_path,
            "pin",
            {
                "elastic_apt_repo_url": f"http://127.0.0.1:{repos}/elastic/",
                "__elastic_apt_preferences": str(preferences),
            },
        )
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr

        # Without the pin APT takes the newest elasticsearch (the other source's) and
        # anything Elastic's repository offers: what the pin is there to prevent.
        assert _candidates(tmp_path, repos, keyring, None) == {
            "elasticsearch": "99.0.0",
            "kibana": "8.19.21",
            "filebeat": "8.19.21",
            "flock-demo-tool": "1.0",
        }
        assert _candidates(tmp_path, repos, keyring, preferences) == {
            "elasticsearch": "8.19.21",
            "kibana": "8.19.21",
            "filebeat": "(none)",
            "flock-demo-tool": "1.0",
        }


# --- other_majors.yml ----------------------------------------------------------------


@pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="needs ansible-playbook (bootstrap.sh)")
@pytest.mark.skipif(os.geteuid() != 0, reason="the role's tasks run as root on a host")
def test_other_majors_sources_removed_current_and_unrelated_kept(tmp_path):
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    names = [
        "elastic-7x.sources",  # this role, an earlier major
        "elastic-8.x.list",  # Elastic's documented one-line source
        "elastic-9x.sources",  # this run's source (__elastic_apt_repo.dest)
        "elastic-agent.list",  # not a major's source
        "debian.sources",
    ]
    for name in names:
        (sources / name).write_text("deb http://example.invalid/ ./\n")
    run = _play(
        tmp_path,
        "other_majors",
        {
            "__elastic_apt_sources_dir": str(sources),
            "__elastic_apt_repo": {"dest": str(sources / "elastic-9x.sources")},
        },
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in sources.iterdir()) == [
        "debian.sources",
        "elastic-9x.sources",
        "elastic-agent.list",
    ]
