from __future__ import annotations

import socket

import pytest

from flock_gateway.app import create_app
from flock_gateway.config import Config
from flock_gateway.indices import IndexNames
from flock_gateway.storage.templates import setup_storage

from .helpers import OLD_SECRET, SECRET
from .outage import NodePort


@pytest.fixture
def names(prefix) -> IndexNames:
    return IndexNames(prefix)


@pytest.fixture
def storage(es, names):
    return setup_storage(es, names)


@pytest.fixture
def config(es_url, prefix) -> Config:
    return Config(es_hosts=(es_url,), index_prefix=prefix, auth_cache_ttl=10.0)


@pytest.fixture
def app(config, storage):
    return create_app(config)


@pytest.fixture
def oconfig(es_url, prefix) -> Config:
    """A gateway osquery hosts enroll with (either secret), without the auth cache."""
    return Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET, OLD_SECRET),
        auth_cache_ttl=0,
    )


@pytest.fixture
def oclient(oconfig, storage):
    return create_app(oconfig).test_client()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def env(monkeypatch, es_url, prefix):
    """Environment for the CLI (and gunicorn) pointing at this test's storage."""
    for key in ("FLOCK_CONFIG", "FLOCK_ES_USERNAME", "FLOCK_ES_PASSWORD", "FLOCK_ES_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FLOCK_ES_HOSTS", es_url)
    monkeypatch.setenv("FLOCK_INDEX_PREFIX", prefix)
    return {"FLOCK_ES_HOSTS": es_url, "FLOCK_INDEX_PREFIX": prefix}


@pytest.fixture
def dead_url() -> str:
    """A local port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def node_port(es_url):
    """A port in front of the real node that a test closes (an outage) and opens again;
    closed at first."""
    port = NodePort(es_url)
    yield port
    port.close()
