#!/usr/bin/env bash
# Configure a freshly debootstrapped rootfs for systemd as PID 1 inside an
# unprivileged Docker container (the container flags: test-infra/images/README.md).
#   DISTRO=debian|ubuntu setup-rootfs.sh <rootfs> <sources.list>
# Called by build.sh; runs as root on the host.
set -euo pipefail
R=$1
SOURCES=$2

# apt: sources that work from inside containers (plain http to Debian's archive),
# no recommends, keep the image small.
install -m 0644 "$SOURCES" "$R/etc/apt/sources.list"
rm -f "$R"/etc/apt/sources.list.d/*
cat >"$R/etc/apt/apt.conf.d/90flock-container" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::Retries "3";
CONF

# Locale: C.UTF-8 is built into glibc; also generate en_US.UTF-8 for tools that ask.
if [ "${DISTRO:-debian}" = ubuntu ]; then
    chroot "$R" /usr/sbin/locale-gen en_US.UTF-8 >/dev/null
else
    echo 'en_US.UTF-8 UTF-8' >"$R/etc/locale.gen"
    chroot "$R" /usr/sbin/locale-gen >/dev/null
fi
echo 'LANG=C.UTF-8' >"$R/etc/default/locale"

# Identity: docker provides hostname/hosts/resolv.conf; machine-id is generated per
# container at boot (empty file => systemd sets up a transient one).
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
rm -f "$R/etc/hostname" "$R/etc/resolv.conf"

# systemd: units that cannot work (or make no sense) in a container.
mask() { for u in "$@"; do ln -sf /dev/null "$R/etc/systemd/system/$u"; done; }
mask \
    getty@.service serial-getty@.service console-getty.service getty.target \
    getty-static.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-modules-load.service systemd-remount-fs.service \
    systemd-firstboot.service systemd-hwdb-update.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
    systemd-binfmt.service systemd-pstore.service \
    apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer
mkdir -p "$R/etc/systemd/system.conf.d"
cat >"$R/etc/systemd/system.conf.d/90-flock-container.conf" <<'CONF'
[Manager]
# Show unit status on the container's stdout (docker logs) and stop quickly.
ShowStatus=yes
DefaultTimeoutStopSec=30s
CONF
ln -sf /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"

# Trim: apt lists are fetched again by roles that need apt (update_cache).
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin \
    "$R"/var/log/*.log "$R"/var/log/apt/* "$R"/tmp/* "$R"/var/tmp/* \
    "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/*
