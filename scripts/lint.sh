#!/usr/bin/env bash
# Lint is part of the tests: Python (ruff), YAML (yamllint), Ansible (ansible-lint, production),
# Rust (rustfmt, clippy with warnings as errors: the gateway's compiled row path).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/cargo-path.sh
source "$repo/scripts/cargo-path.sh"
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
ruff check .
ruff format --check .
yamllint -s .
ansible-lint
scripts/role-docs.sh --check
cargo fmt --check --manifest-path gateway/rowpath/Cargo.toml
cargo clippy --quiet --release --manifest-path gateway/rowpath/Cargo.toml -- -D warnings
