"""A full disk, on the real node: past the flood-stage watermark Elasticsearch makes every
index read-only (``index.blocks.read_only_allow_delete``) and refuses writes with 429
``cluster_block_exception``. The gateway then answers 503 with ``Retry-After`` (nothing
stored, the agent keeps its rows), registration fails saying why, ``/readyz`` and
``/metrics`` say why; once space returns (Elasticsearch lifts the block itself), the resent
rows are stored exactly once and registration works again.

The disk is "filled" by absolute watermarks far above the test machine's free space (the
node's elasticsearch.yml turns the disk decider off; the transient cluster settings here
turn it on and win over the file), checked every 10 s, the shortest interval it takes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from .helpers import register, stored, submit

WATERMARKS = {
    "cluster.routing.allocation.disk.threshold_enabled": True,
    "cluster.routing.allocation.disk.watermark.low": "1002tb",
    "cluster.routing.allocation.disk.watermark.high": "1001tb",
    "cluster.routing.allocation.disk.watermark.flood_stage": "1000tb",
    "cluster.info.update.interval": "10s",  # the least it takes
}


def _blocked(es: Elasticsearch, index: str) -> bool:
    found = es.indices.get_settings(
        index=index, name="index.blocks.read_only_allow_delete", flat_settings=True
    )
    # keyed by concrete index (the registry's name may be an alias); absent when unset
    return any(
        str(body["settings"].get("index.blocks.read_only_allow_delete")).lower() == "true"
        for body in found.body.values()
    )


def _wait(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def disk(es: Elasticsearch) -> Iterator[dict]:
    """``fill(indices)`` drives the node past its flood stage and waits until ``indices``
    are read-only; ``free(indices)`` puts the watermarks back and waits until Elasticsearch
    has lifted the block by itself. Freed at the end whatever happened, so that no other
    test finds a read-only node."""

    def fill(indices: list[str]) -> None:
        es.cluster.put_settings(transient=WATERMARKS)
        for index in indices:
            _wait(f"the flood-stage block on {index}", lambda i=index: _blocked(es, i))

    def free(indices: list[str]) -> None:
        es.cluster.put_settings(
            transient={k: None for k in WATERMARKS if k != "cluster.info.update.interval"}
        )
        for index in indices:
            _wait(
                f"Elasticsearch to lift the block on {index}", lambda i=index: not _blocked(es, i)
            )

    yield {"fill": fill, "free": free}
    es.cluster.put_settings(transient=dict.fromkeys(WATERMARKS))
    es.indices.put_settings(
        index="_all",
        settings={"index.blocks.read_only_allow_delete": None},
        ignore_unavailable=True,
    )


# One time for every batch: a resent row is the same row (its id comes from its content).
UNIX_TIME = int(time.time()) - 60


def _rows(host: str, start: int, n: int) -> list[dict]:
    return [
        {
            "name": "os_version",
            "hostIdentifier": host,
            "unixTime": UNIX_TIME,
            "counter": i,
            "columns": {"name": "macOS", "version": "14.1", "build": f"b{i}"},
            "action": "added",
        }
        for i in range(start, start + n)
    ]


def test_full_disk_refuses_with_retry_after_and_recovers(client, es, names, prefix, disk):
    token = register(client, "laptop-full-disk")
    first = submit(client, "laptop-full-disk", token, _rows("laptop-full-disk", 0, 3))
    assert first.status_code == 200, first.data
    results = [row["_index"] for row in stored(es, prefix)]
    blocked = sorted({*results, names.agents})

    disk["fill"](blocked)

    batch = _rows("laptop-full-disk", 3, 5)
    refused = submit(client, "laptop-full-disk", token, batch)
    assert refused.status_code == 503, refused.data
    assert refused.headers["Retry-After"] == "60"
    body = json.loads(refused.data)
    assert body["error"] is True
    assert "out of disk space" in body["error_msg"]

    reg = client.post("/register", json={"username": "laptop-after-full"})
    assert reg.status_code == 503, reg.data
    assert "out of disk space" in json.loads(reg.data)["error_msg"]
    assert reg.headers["Retry-After"] == "60"

    ready = client.get("/readyz")
    assert ready.status_code == 503
    ready_body = json.loads(ready.data)
    assert ready_body["reason"] == "storage_read_only"
    assert "flood-stage watermark" in ready_body["error_msg"]
    assert ready.headers["Retry-After"] == "60"

    metrics = client.get("/metrics").data.decode()
    assert "flock_storage_read_only_indices{pid=" in metrics
    line = next(m for m in metrics.splitlines() if m.startswith("flock_storage_read_only_indices"))
    assert int(line.rsplit(" ", 1)[1]) == len(blocked)
    assert 'flock_storage_errors_total{reason="disk_full"' in metrics

    disk["free"](blocked)

    resent = submit(client, "laptop-full-disk", token, batch)
    assert resent.status_code == 200, resent.data
    # The first batch resent too (an agent that never saw its answer): stored once still.
    again = submit(client, "laptop-full-disk", token, _rows("laptop-full-disk", 0, 3))
    assert again.status_code == 200, again.data
    counters = sorted(hit["_source"]["data"]["counter"] for hit in stored(es, prefix))
    assert counters == list(range(8))

    assert register(client, "laptop-after-full")
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").data.decode()
    line = next(m for m in metrics.splitlines() if m.startswith("flock_storage_read_only_indices"))
    assert int(line.rsplit(" ", 1)[1]) == 0
