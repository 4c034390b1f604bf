#!/usr/bin/env bash
# Lint is part of the tests: Python (ruff), YAML (yamllint), Ansible (ansible-lint, production).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
ruff check .
ruff format --check .
yamllint -s .
ansible-lint
