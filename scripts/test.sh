#!/usr/bin/env bash
# The whole test suite, as the README promises: lint, the gateway's unit and integration
# tests (against a real Elasticsearch node), the dashboards check, and every Molecule
# scenario on systemd containers. Installs what it needs itself.
#   scripts/test.sh              everything
#   FLOCK_SCENARIOS="pki gateway" scripts/test.sh   only those Molecule scenarios
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/cargo-path.sh
source "$repo/scripts/cargo-path.sh"
cd "$repo"

declare -a summary=()
step() { echo; echo "=== [$(date -u +%H:%M:%S)] $*"; }
timed() {  # timed NAME CMD...: runs CMD, records its wall time for the summary
  local name=$1 t0=$SECONDS; shift
  if "$@"; then summary+=("ok    $(printf '%5ss' $((SECONDS - t0)))  $name")
  else summary+=("FAIL  $(printf '%5ss' $((SECONDS - t0)))  $name"); print_summary; exit 1; fi
}
print_summary() { echo; echo "=== summary"; printf '%s\n' "${summary[@]}"; }

step "1/5 controller tools (.venv)"
timed bootstrap scripts/bootstrap.sh
export PATH="$repo/.venv/bin:$PATH"

step "2/5 lint: ruff, yamllint, ansible-lint (production profile)"
timed lint scripts/lint.sh

step "3/5 docker engine"
timed docker scripts/ensure-docker.sh

step "4/5 pytest: gateway unit + integration (real Elasticsearch node), dashboards, roles, ..."
# Each test sits with what it tests (the gateway, the dashboards, the roles' filter plugins,
# the scenarios' shared container definition, the layout table, the Kibana stand-in);
# pytest.ini at the root finds them all by rule, and leaves the Molecule scenarios' testinfra
# tests to step 5.
timed pytest python -m pytest -q

step "5/5 molecule scenarios"
# Dependency order first; any scenario added later runs after these.
order=(pki elasticsearch elasticsearch-cluster elasticsearch-upgrade kibana gateway full-stack)
mapfile -t found < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
scenarios=()
for s in "${order[@]}" "${found[@]}"; do
  [[ -f molecule/$s/molecule.yml ]] || continue
  [[ " ${scenarios[*]} " == *" $s "* ]] || scenarios+=("$s")
done
[[ -n ${FLOCK_SCENARIOS:-} ]] && read -ra scenarios <<<"$FLOCK_SCENARIOS"
for s in "${scenarios[@]}"; do
  step "molecule: $s"
  timed "molecule $s" scripts/run-molecule.sh "$s"
done

print_summary
