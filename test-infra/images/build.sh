#!/usr/bin/env bash
# Build (once) the systemd base image used by every Molecule scenario.
#
#   test-infra/images/build.sh [IMAGE]
#       IMAGE: debian-bookworm (default) | ubuntu-noble
#
# Recipe: <this dir>/<IMAGE>/recipe.env (+ sources.list) and setup-rootfs.sh.
# Result: docker image flock-base/<IMAGE>:<recipe-hash>, printed as the LAST line
# of stdout (progress goes to stderr). When that tag exists nothing is built.
# The rootfs tarball is cached in ${FLOCK_CACHE:-$HOME/.cache/flock}/images/, so a
# machine whose docker images were wiped re-imports it without downloading, and the
# downloaded .debs are kept in .../debootstrap/<IMAGE>/.
# Needs root, debootstrap (installed from Debian's archive if missing) and a
# running docker engine (scripts/ensure-docker.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE=${1:-debian-bookworm}
RECIPE_DIR=$HERE/$IMAGE
CACHE=${FLOCK_CACHE:-$HOME/.cache/flock}

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -f "$RECIPE_DIR/recipe.env" ] || die "unknown image '$IMAGE' (no $RECIPE_DIR/recipe.env)"

# docker import settings (part of the recipe).
IMPORT_CHANGES=('CMD ["/lib/systemd/systemd"]' 'ENV container=docker' 'ENV LANG=C.UTF-8')
# Tag = hash of everything that defines the image: the image's recipe dir, the
# rootfs setup script and the import settings (not this script's plumbing).
HASH=$(cd "$HERE" && { cat setup-rootfs.sh "$IMAGE"/*; printf '%s\n' "${IMPORT_CHANGES[@]}"; } |
    sha256sum | cut -c1-12)
TAG=flock-base/$IMAGE:$HASH

have_image() { docker image inspect "$TAG" >/dev/null 2>&1; }

if have_image; then
    log "$TAG present"
    echo "$TAG"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building the base image needs root (debootstrap, chroot)"
mkdir -p "$CACHE/images" "$CACHE/debootstrap/$IMAGE"

# One builder at a time per image (parallel scenarios may all ask for it).
exec 9>"$CACHE/images/$IMAGE.lock"
flock -w 1800 9 || die "timed out waiting for another build of $IMAGE"
if have_image; then
    log "$TAG built by a concurrent run"
    echo "$TAG"
    exit 0
fi

ROOTFS_TAR=$CACHE/images/$IMAGE-$HASH.tar.gz

# Archive keyring shipped as a Debian package (e.g. ubuntu-keyring from
# bookworm-backports): downloaded with apt from Debian's signed archive into a
# private apt state dir (the host's apt configuration is not touched), unpacked
# into the cache. Recipe variables: KEYRING_DEB, KEYRING_DEB_SOURCE, KEYRING.
fetch_keyring() {
    local t
    t=$(mktemp -d)
    mkdir -p "$t/lists/partial" "$t/cache/archives/partial" "$(dirname "$KEYRING")"
    echo "$KEYRING_DEB_SOURCE" >"$t/sources.list"
    local o=(-o "Dir::Etc::SourceList=$t/sources.list" -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$t/lists" -o "Dir::Cache=$t/cache" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
    log "fetching $KEYRING_DEB ($KEYRING_DEB_SOURCE)"
    apt-get "${o[@]}" -qq update >&2 || die "apt-get update for $KEYRING_DEB failed"
    (cd "$t" && apt-get "${o[@]}" -qq download "$KEYRING_DEB" >&2) || die "could not download $KEYRING_DEB"
    dpkg-deb -x "$t"/"$KEYRING_DEB"_*.deb "$t/x"
    install -m 0644 "$t/x/usr/share/keyrings/$(basename "$KEYRING")" "$KEYRING"
    rm -rf "$t"
}
# shellcheck disable=SC1091
. "$RECIPE_DIR/recipe.env"

if [ ! -s "$ROOTFS_TAR" ]; then
    log "building base image $TAG (first run only, ~5-10 min)"
    start=$(date +%s)
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    fi
    if [ -n "${KEYRING_DEB:-}" ] && [ ! -r "$KEYRING" ]; then
        fetch_keyring
    fi
    [ -r "$KEYRING" ] || die "keyring $KEYRING missing"
    WORK=$(mktemp -d "$CACHE/images/work-$IMAGE.XXXXXX")
    R=$WORK/rootfs
    cleanup() {
        # Unmount anything debootstrap/chroot left mounted, deepest first.
        if [ -d "$R" ]; then
            awk -v r="$R" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r |
                while read -r m; do umount -l "$m" 2>/dev/null || true; done
        fi
        rm -rf "$WORK"
    }
    trap cleanup EXIT
    mkdir -p "$R"
    DLOG=$CACHE/images/$IMAGE-debootstrap.log
    log "debootstrap $SUITE ($VARIANT) from $MIRROR (log: $DLOG)"
    # shellcheck disable=SC2086
    if ! debootstrap --variant="$VARIANT" --components="$COMPONENTS" \
        --keyring="$KEYRING" --cache-dir="$CACHE/debootstrap/$IMAGE" \
        --include="$(echo $PACKAGES | tr ' ' ',')" \
        "$SUITE" "$R" "$MIRROR" "/usr/share/debootstrap/scripts/$DEBOOTSTRAP_SCRIPT" \
        >"$DLOG" 2>&1; then
        tail -n 30 "$DLOG" >&2
        [ -f "$R/debootstrap/debootstrap.log" ] && tail -n 30 "$R/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (full log: $DLOG)"
    fi
    log "configuring rootfs for systemd in docker"
    DISTRO=$DISTRO "$HERE/setup-rootfs.sh" "$R" "$RECIPE_DIR/sources.list" >&2
    # Make sure nothing is still mounted inside before packing.
    awk -v r="$R" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
    log "packing rootfs"
    tar --numeric-owner --xattrs -C "$R" -czf "$ROOTFS_TAR.part" .
    mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
    log "rootfs built in $(( $(date +%s) - start ))s"
else
    log "importing cached rootfs $ROOTFS_TAR"
fi

changes=()
for c in "${IMPORT_CHANGES[@]}"; do changes+=(--change "$c"); done
docker import "${changes[@]}" \
    --message "flock base image $IMAGE (recipe $HASH)" \
    "$ROOTFS_TAR" "$TAG" >&2
# Drop cached rootfs tarballs of older recipes of this image.
find "$CACHE/images" -maxdepth 1 -name "$IMAGE-*.tar.gz" ! -name "$IMAGE-$HASH.tar.gz" -delete
log "built $TAG"
echo "$TAG"
