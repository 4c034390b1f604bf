"""pytest fixtures for tests against a real Elasticsearch node, for every test folder of the
repository (registered once, by the root ``conftest.py``, so that one test session starts
one node however many folders use it).

``es_url``: the node at $FLOCK_ES_URL if set, else one started for the session by
:mod:`flock_testinfra.esnode` (built once from Maven Central artifacts into the cache,
started on a free port, stopped at the end). ``es``: a client of it. ``prefix``: an index
prefix of the test's own, dropped afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from flock_testinfra.esnode import start_node


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


def new_prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def prefix(es) -> Iterator[str]:
    p = new_prefix()
    yield p
    drop_prefix(es, p)
