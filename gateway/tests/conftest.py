"""Shared fixtures.

Integration tests (tests/integration, marker ``integration``) talk to a real
Elasticsearch node: the one at $FLOCK_ES_URL if set, else one started for the session
by flock_testinfra.esnode (test-infra/; built once from Maven Central
artifacts into the cache, started on a free port, stopped at the end).
Each test gets its own index prefix, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from flock_testinfra.esnode import start_node


def pytest_configure(config):
    # registered here too, so the marker is known when pytest runs from the repo root
    config.addinivalue_line(
        "markers",
        "integration: needs a real Elasticsearch node (started by the session, or FLOCK_ES_URL)",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def es_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("FLOCK_ES_URL")
    if url:
        yield url.rstrip("/")
        return
    with start_node(tmp_path_factory.mktemp("es-node")) as node:
        yield node.url.rstrip("/")


@pytest.fixture(scope="session")
def es(es_url) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_url, request_timeout=30)
    yield client
    client.close()


def drop_prefix(es: Elasticsearch, prefix: str) -> None:
    rows = es.cat.indices(index=f"{prefix}-*", format="json", h="index", expand_wildcards="all")
    names = [row["index"] for row in rows]
    for start in range(0, len(names), 50):
        es.indices.delete(index=",".join(names[start : start + 50]), ignore_unavailable=True)
    templates = es.options(ignore_status=404).indices.get_index_template(name=f"{prefix}-*")
    for tpl in templates.get("index_templates", []):
        es.indices.delete_index_template(name=tpl["name"])


@pytest.fixture
def prefix(es) -> Iterator[str]:
    p = "t" + uuid.uuid4().hex[:10]
    yield p
    drop_prefix(es, p)
