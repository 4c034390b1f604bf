"""Flock gateway: a write-only HTTP API storing osquery results in Elasticsearch."""

__version__ = "0.1.0"
