#!/usr/bin/env bash
# Creates the controller virtualenv (.venv) with the pinned tools and the gateway package.
# Re-running is cheap: pip only installs when the pins changed (stamp file).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
stamp="$venv/.flock-stamp"

want=$(cat "$repo/requirements/controller.txt" "$repo/gateway/pyproject.toml" "$repo/test-infra/pyproject.toml" | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

echo ">>> bootstrap: installing controller tools into .venv (first run takes a few minutes)" >&2
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip wheel
"$venv/bin/pip" install --quiet -r "$repo/requirements/controller.txt"
# Both editable: the gateway, and the test infrastructure its tests, bench and `make dev` import.
"$venv/bin/pip" install --quiet -e "$repo/gateway[test]" -e "$repo/test-infra"
echo "$want" > "$stamp"
