#!/usr/bin/env bash
# Creates the controller virtualenv (.venv) with the pinned tools and the gateway package.
# Re-running is cheap: pip only installs when the pins changed (stamp file).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/cargo-path.sh
source "$repo/scripts/cargo-path.sh"
venv="$repo/.venv"
stamp="$venv/.flock-stamp"

rowpath="$repo/gateway/rowpath"
want=$(cat "$repo/requirements/controller.txt" "$repo/gateway/pyproject.toml" "$repo/test-infra/pyproject.toml" \
  "$rowpath/pyproject.toml" "$rowpath/Cargo.toml" "$rowpath/Cargo.lock" "$rowpath"/src/*.rs | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

echo ">>> bootstrap: installing controller tools into .venv (first run takes a few minutes)" >&2
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip wheel
"$venv/bin/pip" install --quiet -r "$repo/requirements/controller.txt"
# Both editable: the gateway, and the test infrastructure its tests, bench and `make dev` import.
"$venv/bin/pip" install --quiet -e "$repo/gateway[test]" -e "$repo/test-infra"
# The gateway's compiled row path, which its tests hold to the Python path: cargo builds it
# (crates from crates.io; maturin from PyPI) into $rowpath/target.
if ! command -v cargo >/dev/null; then
  echo "bootstrap: cargo (Rust, e.g. from rustup) is needed to build gateway/rowpath" >&2
  exit 1
fi
"$venv/bin/pip" install --quiet "$rowpath"
echo "$want" > "$stamp"
