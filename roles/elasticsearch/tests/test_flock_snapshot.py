"""flock-snapshot (files/flock_snapshot.py) against a real Elasticsearch node.

The node is the test node of test-infra (built from Maven Central jars) with ``path.repo``
set; the repository is a shared-filesystem one below it, registered as the role does.
Rows stored, a snapshot taken, the indices lost, restored: every index has its documents
again; the agent registry is kept as the cluster has it (an agent revoked after the
snapshot stays revoked); expired snapshots are deleted; a second restore changes nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch
from flock_testinfra.esnode import start_node

from roles.elasticsearch.files import flock_snapshot as snap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with start_node(tmp_path_factory.mktemp("es-snapshot-node")) as node:
        yield node


@pytest.fixture
def es(node):
    client = Elasticsearch(node.url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def setup(node, es, monkeypatch):
    """A registered repository and the tool's environment, per test (own prefix)."""
    prefix = "s" + uuid.uuid4().hex[:8]
    repo = f"repo-{prefix}"
    es.snapshot.create_repository(
        name=repo,
        repository={"type": "fs", "settings": {"location": str(node.workdir / "snapshots" / repo)}},
    )
    for key, value in {
        "FLOCK_SNAPSHOT_URL": node.url,
        "FLOCK_SNAPSHOT_REPOSITORY": repo,
        "FLOCK_SNAPSHOT_PREFIX": prefix,
        "FLOCK_SNAPSHOT_KEEP_DAYS": "30",
    }.items():
        monkeypatch.setenv(key, value)
    yield prefix, repo
    found = es.indices.get_settings(index=f"{prefix}-*", name="index.uuid", allow_no_indices=True)
    if found.body:
        es.indices.delete(index=",".join(found.body))


def _run(capsys, *argv: str) -> tuple[int, dict]:
    code = snap.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def _store(es: Elasticsearch, prefix: str) -> dict[str, int]:
    counts = {
        f"{prefix}-results-2026.01.01": 3,
        f"{prefix}-results-2026.01.02": 5,
        f"{prefix}-status-2026.01.02": 2,
    }
    for index, n in counts.items():
        for i in range(n):
            es.index(index=index, id=str(i), document={"n": i})
    for agent in ("laptop-kept", "laptop-revoked"):
        es.index(index=f"{prefix}-agents", id=agent, document={"username": agent})
    es.indices.refresh(index=f"{prefix}-*")
    return counts


def _counts(es: Elasticsearch, indices) -> dict[str, int]:
    es.indices.refresh(index=",".join(indices))
    return {i: es.count(index=i)["count"] for i in indices}


def test_snapshot_loss_and_restore_bring_every_index_back(es, setup, capsys):
    prefix, _ = setup
    counts = _store(es, prefix)
    code, taken = _run(capsys, "run")
    assert code == 0, taken
    assert set(taken["indices"]) == {*counts, f"{prefix}-agents"}

    # After the snapshot: one laptop revoked (its registry entry deleted), then the results
    # are lost.
    es.delete(index=f"{prefix}-agents", id="laptop-revoked", refresh=True)
    es.indices.delete(index=",".join(counts))

    code, restored = _run(capsys, "restore")
    assert code == 0, restored
    assert restored["snapshot"] == taken["snapshot"]
    assert sorted(restored["restored"]) == sorted(counts)
    assert restored["already_present"] == [f"{prefix}-agents"]
    assert _counts(es, counts) == counts
    # The registry is the live one: the revoked laptop is still gone.
    assert not es.exists(index=f"{prefix}-agents", id="laptop-revoked")
    assert es.exists(index=f"{prefix}-agents", id="laptop-kept")

    # Nothing missing any more: a second restore changes nothing.
    code, again = _run(capsys, "restore", "--snapshot", taken["snapshot"])
    assert code == 0 and again["changed"] is False and again["restored"] == []


def test_registry_is_restored_only_when_asked_and_missing(es, setup, capsys):
    prefix, _ = setup
    _store(es, prefix)
    assert _run(capsys, "run")[0] == 0
    es.indices.delete(index=f"{prefix}-agents")
    code, plain = _run(capsys, "restore")
    assert code == 0 and plain["not_restored"] == [f"{prefix}-agents"]
    assert not es.indices.exists(index=f"{prefix}-agents")
    code, asked = _run(capsys, "restore", "--with-agents")
    assert code == 0 and asked["restored"] == [f"{prefix}-agents"]
    assert es.count(index=f"{prefix}-agents")["count"] == 2


def test_expired_snapshots_are_deleted_and_the_new_one_kept(es, setup, capsys):
    prefix, _ = setup
    _store(es, prefix)
    code, first = _run(capsys, "run")
    assert code == 0 and first["deleted"] == []
    # Within the keep period nothing goes.
    code, kept = _run(capsys, "expire")
    assert code == 0 and kept["deleted"] == []
    later = (datetime.now(tz=UTC) + timedelta(days=31)).isoformat()
    code, expired = _run(capsys, "expire", "--now", later)
    assert code == 0 and expired["deleted"] == [first["snapshot"]]
    code, listed = _run(capsys, "list")
    assert listed["snapshots"] == []


def test_failures_say_what_is_wrong(setup, capsys, monkeypatch):
    code, answer = _run(capsys, "restore", "--snapshot", "no-such-snapshot")
    assert code == 1 and "no snapshot 'no-such-snapshot'" in answer["message"]
    code, answer = _run(capsys, "restore")
    assert code == 1 and "no successful snapshot" in answer["message"]
    monkeypatch.setenv("FLOCK_SNAPSHOT_KEEP_DAYS", "0")
    code, answer = _run(capsys, "expire")
    assert code == 1 and "at least 1" in answer["message"]
    monkeypatch.setenv("FLOCK_SNAPSHOT_URL", "http://127.0.0.1:9")
    code, answer = _run(capsys, "list")
    assert code == 1 and "cannot reach Elasticsearch" in answer["message"]
