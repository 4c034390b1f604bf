#!/usr/bin/env bash
# Run Molecule scenarios the way CI does.
#
#   scripts/run-molecule.sh <scenario> [<scenario>...]
#
# For each run: makes sure docker runs (scripts/ensure-docker.sh), builds or finds
# the base image (test-infra/images/build.sh) and exports FLOCK_BASE_IMAGE;
# when a scenario's molecule.yml mentions FLOCK_ES_ARTIFACT, builds or finds the
# Elasticsearch node tarball (test-infra/elasticsearch-node/build.sh) and
# exports FLOCK_ES_ARTIFACT (FLOCK_ES_ARTIFACT_PREVIOUS: the same node at
# FLOCK_ES_VERSION_PREVIOUS, for the rolling-upgrade scenario); exports
# ANSIBLE_ROLES_PATH=<repo>/roles. A scenario
# without molecule/<scenario>/tests/test_*.py fails before anything runs.
# Then `molecule test -s <scenario>` (full sequence incl. idempotence and destroy).
# Scenarios run one after the other; all are run even if one fails; the exit code
# is non-zero if any failed. Wall times are printed at the end.
#
# Environment:
#   FLOCK_VENV        venv with the pinned tools (default <repo>/.venv, made by scripts/bootstrap.sh)
#   FLOCK_CACHE       artifact cache (default ~/.cache/flock)
#   FLOCK_BASE_IMAGE  use this image instead of building/looking up the base image
#   FLOCK_BASE_IMAGE_UBUNTU  same for the Ubuntu 24.04 image (built only when a
#                     scenario's molecule.yml mentions FLOCK_BASE_IMAGE_UBUNTU)
#   FLOCK_ES_ARTIFACT use this ES tarball instead of running the es-node build
#   FLOCK_ES_ARTIFACT_SECURITY  the same with x-pack security (build.sh --with-security)
#   FLOCK_ES_ARTIFACT_PREVIOUS  same for the previous release (the upgrade's starting point)
#   FLOCK_ES_VERSION_PREVIOUS   that release (default 8.19.20, the newest Maven Central
#                     serves besides 8.19.21)
#   MOLECULE_OPTS     extra arguments for `molecule test` (e.g. "--destroy never")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cargo-path.sh
source "$ROOT/scripts/cargo-path.sh"
cd "$ROOT"

log() { printf 'run-molecule: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

[ $# -ge 1 ] || die "usage: $0 <scenario> [<scenario>...]"

VENV=${FLOCK_VENV:-$ROOT/.venv}
[ -x "$VENV/bin/molecule" ] || die "molecule not found in $VENV (run scripts/bootstrap.sh or set FLOCK_VENV)"
export PATH="$VENV/bin:$PATH"

# Check every scenario before spending time on images.
for s in "$@"; do
    [ -f "molecule/$s/molecule.yml" ] || die "no scenario molecule/$s/molecule.yml"
    compgen -G "molecule/$s/tests/test_*.py" >/dev/null \
        || die "scenario $s has no molecule/$s/tests/test_*.py: a verifier without tests would pass silently"
done

"$ROOT/scripts/ensure-docker.sh"

if [ -z "${FLOCK_BASE_IMAGE:-}" ]; then
    FLOCK_BASE_IMAGE=$("$ROOT/test-infra/images/build.sh" | tail -n 1)
fi
docker image inspect "$FLOCK_BASE_IMAGE" >/dev/null 2>&1 || die "base image $FLOCK_BASE_IMAGE not found"
export FLOCK_BASE_IMAGE
log "FLOCK_BASE_IMAGE=$FLOCK_BASE_IMAGE"

# Offline artifacts, built (once, cached) only when a scenario names them.
need_artifact() {  # need_artifact VAR BUILD_SCRIPT [ENV=VALUE...]
    local var=$1 build=$2 s
    shift 2
    for s in "${scenarios[@]}"; do
        grep -qw "$var" "molecule/$s/molecule.yml" || continue
        if [ -z "${!var:-}" ]; then
            [ -x "$build" ] || die "scenario $s needs $var but $build is missing"
            printf -v "$var" '%s' "$(env "$@" "$build" | tail -n 1)"
        fi
        [ -f "${!var}" ] || die "$var=${!var} is not a file"
        export "${var?}"
        log "$var=${!var}"
        return
    done
}
scenarios=("$@")
need_artifact FLOCK_ES_ARTIFACT "$ROOT/test-infra/elasticsearch-node/build.sh"
# The same node with Elastic's x-pack security (the role configures TLS, passwords, users
# and roles on it).
need_artifact FLOCK_ES_ARTIFACT_SECURITY "$ROOT/test-infra/elasticsearch-node/build.sh" ES_FLAVOUR=security
export FLOCK_ES_VERSION_PREVIOUS=${FLOCK_ES_VERSION_PREVIOUS:-8.19.20}
need_artifact FLOCK_ES_ARTIFACT_PREVIOUS "$ROOT/test-infra/elasticsearch-node/build.sh" \
    ES_VERSION="$FLOCK_ES_VERSION_PREVIOUS"
need_artifact FLOCK_KIBANA_ARTIFACT "$ROOT/test-infra/kibana-standin/build.sh"

export ANSIBLE_ROLES_PATH=$ROOT/roles
export ANSIBLE_NOCOWS=1
export PY_COLORS=${PY_COLORS:-0}
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}

summary=()
failed=0
for s in "$@"; do
    log "=== scenario $s ==="
    start=$(date +%s)
    rc=0
    # One run per scenario on this machine at a time, whichever checkout starts it: the
    # scenario's container names are fixed, so a second run would tear down the first's.
    # shellcheck disable=SC2086
    flock "/tmp/flock-molecule-$s.lock" molecule test -s "$s" ${MOLECULE_OPTS:-} || rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then st=passed; else st="FAILED (rc=$rc)"; failed=1; fi
    mins=$((secs / 60))
    rest=$((secs % 60))
    summary+=("$(printf '%-28s %-16s %dm%02ds' "$s" "$st" "$mins" "$rest")")
done

echo "---- molecule scenario wall times ----"
printf '%s\n' "${summary[@]}"
exit "$failed"
