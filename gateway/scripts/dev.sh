#!/usr/bin/env bash
# `make dev` (see dev.py): test Elasticsearch node + gateway on http://127.0.0.1:5000.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" "$HERE/dev.py" "$@"
