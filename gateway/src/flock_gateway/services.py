"""The objects a running app shares between requests (stored in app.extensions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from elasticsearch import Elasticsearch
from flask import current_app

from .auth import Authenticator
from .config import Config
from .indices import IndexNames
from .metrics import Metrics
from .schedule import Schedule
from .state import SeenHosts
from .storage.readiness import Readiness
from .storage.registry import Registry
from .storage.results import BulkWriter

EXTENSION_KEY = "flock"


@dataclass
class Services:
    config: Config
    client: Elasticsearch
    names: IndexNames
    registry: Registry
    writer: BulkWriter
    authenticator: Authenticator
    schedule: Schedule
    metrics: Metrics
    readiness: Readiness
    # when this process last wrote each host's current-state host document
    seen_hosts: SeenHosts = field(default_factory=SeenHosts)


def services() -> Services:
    svc: Services = current_app.extensions[EXTENSION_KEY]
    return svc
