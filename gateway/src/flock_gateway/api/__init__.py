"""HTTP API blueprints: Flock agent API, health probes (osquery TLS API: see osquery.py)."""
