"""WSGI entry point for gunicorn: ``gunicorn flock_gateway.wsgi:app``.

Configuration comes from the environment (FLOCK_*) and/or FLOCK_CONFIG. A configuration
or schedule that cannot be used makes the worker exit with a one-line explanation on
stderr and status 3, which makes gunicorn stop ("Worker failed to boot"): no worker could
ever serve with it. Elasticsearch being down or not set up does not: the worker starts,
answers 503 on the agent endpoints and /readyz, and is ready once storage is.
"""

from __future__ import annotations

import sys

from .app import CannotStart, create_app, tune_collector
from .config import ConfigError
from .errors import install_gunicorn_errors

install_gunicorn_errors()

try:
    app = create_app()
except (ConfigError, CannotStart) as exc:
    print(f"flock-gateway: cannot start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(3) from None

tune_collector()
