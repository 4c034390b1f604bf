#!/usr/bin/env bash
# `make dev`: a test Elasticsearch node + the gateway on http://127.0.0.1:5000, in the
# foreground. Prints `ES_URL=http://127.0.0.1:<port>` (where the node listens) so you can
# look at what was stored, e.g. curl "$ES_URL/flock-results-*/_search?pretty".
# Ctrl-C stops both. Env: FLOCK_ES_URL (reuse a running node), PORT (default 5000),
# PYTHON (default <repo>/.venv/bin/python, else python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PORT=${PORT:-5000}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import flock_gateway' 2>/dev/null || {
  echo "dev.sh: flock_gateway is not installed for $PYTHON (run scripts/bootstrap.sh, or pip install -e gateway)" >&2
  exit 1
}

node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  [ -n "${node_out:-}" ] && rm -f "$node_out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${FLOCK_ES_URL:-}" ]; then
  ES_URL=$FLOCK_ES_URL
else
  echo "starting the test Elasticsearch node (first run builds it from Maven Central)..." >&2
  node_out=$(mktemp)
  "$PYTHON" "$REPO/molecule/resources/elasticsearch-node/testnode.py" > "$node_out" &
  node_pid=$!
  ES_URL=""
  while [ -z "$ES_URL" ]; do
    if ! kill -0 "$node_pid" 2>/dev/null; then
      echo "dev.sh: the Elasticsearch node failed to start" >&2
      exit 1
    fi
    ES_URL=$(sed -n 's/^ES_URL=//p' "$node_out" | head -n1)
    [ -n "$ES_URL" ] || sleep 1
  done
fi

echo "ES_URL=$ES_URL"
export FLOCK_ES_HOSTS=$ES_URL
unset FLOCK_CONFIG
"$PYTHON" -m flock_gateway.cli setup-storage > /dev/null
echo "gateway: http://127.0.0.1:$PORT  (try the README's curl examples; Ctrl-C stops)"
"$PYTHON" -m flock_gateway.cli run-dev --host 127.0.0.1 --port "$PORT"
