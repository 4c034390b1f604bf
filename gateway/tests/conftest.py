"""Shared fixtures.

Integration tests (tests/integration, marker ``integration``) talk to a real
Elasticsearch node: the fixtures ``es_url``, ``es`` and ``prefix`` (each test's own index
prefix) come from flock_testinfra.es_fixtures, which the repository's root conftest.py
registers for every test folder (one node per session).
"""

from __future__ import annotations

import os

import pytest
from flock_testinfra.es_fixtures import drop_prefix

__all__ = ["drop_prefix"]  # test_bad_input drops its module-wide prefix itself


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
