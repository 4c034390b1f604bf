"""WSGI entry point for gunicorn: ``gunicorn flock_gateway.wsgi:app``.

Configuration comes from the environment (FLOCK_*) and/or FLOCK_CONFIG. When
Elasticsearch cannot be used the worker exits with a one-line explanation on stderr and
status 3, which makes gunicorn stop ("Worker failed to boot") instead of serving errors.
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
