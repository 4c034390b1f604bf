#!/usr/bin/env bash
# Creates the controller virtualenv (.venv) with the pinned tools and the gateway package.
# Re-running is cheap: pip only installs when the pins changed (stamp file).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
stamp="$venv/.flock-stamp"

want=$({ cat "$repo/requirements/controller.txt"; cat "$repo/gateway/pyproject.toml" 2>/dev/null || true; } | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

echo ">>> bootstrap: installing controller tools into .venv (first run takes a few minutes)" >&2
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip wheel
"$venv/bin/pip" install --quiet -r "$repo/requirements/controller.txt"
if [[ -f $repo/gateway/pyproject.toml ]]; then
  "$venv/bin/pip" install --quiet -e "$repo/gateway[test]"
fi
echo "$want" > "$stamp"
