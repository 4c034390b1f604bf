#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, and that the host kernel
# settings our scenarios need are in place.
#
#   scripts/ensure-docker.sh
#
# - installs Debian's docker.io (apt-get update once, then install) when dockerd
#   is missing;
# - starts dockerd in the background when no engine answers (log:
#   ${FLOCK_DOCKERD_LOG:-/var/log/flock-dockerd.log}), waits until `docker info`
#   works (up to ${FLOCK_DOCKERD_TIMEOUT:-60}s) and fails with the log tail
#   otherwise;
# - sets vm.max_map_count=262144 (Elasticsearch bootstrap checks read the host's
#   value; it cannot be set inside a container).
#
# Idempotent and safe to run concurrently (serialised with flock(1)).
# Needs root (or passwordless sudo) for the install/start/sysctl steps.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
fi

LOCK=${FLOCK_DOCKER_LOCK:-/tmp/flock-ensure-docker.lock}
exec 9>"$LOCK"
flock -w 900 9 || die "could not take lock $LOCK within 900s"

engine_up() { docker info >/dev/null 2>&1; }

# 1. binaries
if ! command -v dockerd >/dev/null 2>&1; then
    log "dockerd not found: installing docker.io from the Debian archive"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO apt-get install -y -qq --no-install-recommends docker.io >&2 \
        || die "apt-get install docker.io failed"
fi
command -v docker >/dev/null 2>&1 || die "docker CLI not found after install"

# 2. engine
if engine_up; then
    log "docker engine is running"
else
    DLOG=${FLOCK_DOCKERD_LOG:-/var/log/flock-dockerd.log}
    TIMEOUT=${FLOCK_DOCKERD_TIMEOUT:-60}
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd process exists but does not answer yet; waiting"
    else
        log "starting dockerd in the background (log: $DLOG)"
        # setsid: detach from our session so it survives the caller; 9>&-: the
        # daemon must not inherit (and hold forever) our lock.
        $SUDO setsid nohup dockerd >>"$DLOG" 2>&1 </dev/null 9>&- &
    fi
    waited=0
    until engine_up; do
        if [ "$waited" -ge "$TIMEOUT" ]; then
            log "last lines of $DLOG:"
            tail -n 20 "$DLOG" >&2 2>/dev/null || true
            die "docker engine did not answer within ${TIMEOUT}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "docker engine is up after ${waited}s"
fi

# 3. kernel setting for Elasticsearch
want=262144
have=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
if [ "$have" -lt "$want" ]; then
    $SUDO sysctl -q -w vm.max_map_count=$want >/dev/null \
        || die "could not set vm.max_map_count=$want (have $have)"
    log "vm.max_map_count set to $want (was $have)"
fi
