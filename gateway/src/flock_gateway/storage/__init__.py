"""Elasticsearch storage: client, agent registry, result writer, templates, retention."""
