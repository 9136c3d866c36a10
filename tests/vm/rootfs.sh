#!/usr/bin/env bash
# The systemd floor's Debian userspace: Debian 12 with systemd (mmdebstrap, minbase), built
# once and cached as a tarball keyed on what goes into it. Idempotent: a second run builds
# nothing. Prints the tarball's path on stdout.
# Env: LVS_VM_CACHE (default ~/.cache/lvs-dr-vm), LVS_VM_MIRROR (default deb.debian.org).
set -euo pipefail
CACHE=${LVS_VM_CACHE:-$HOME/.cache/lvs-dr-vm}
MIRROR=${LVS_VM_MIRROR:-http://deb.debian.org/debian}
# What a host running the agents has: systemd, iproute2, kmod; chrony for the router's NTP,
# busybox for the real servers' httpd, procps and ipvsadm for looking around; keepalived and
# nftables, which the packages recommend for directors in a [[vrrp]] instance, and bird2 for
# [bgp] directors and their router.
PACKAGES=systemd,systemd-sysv,udev,kmod,iproute2,chrony,busybox-static,procps,ipvsadm,keepalived,nftables,bird2
# Boot in seconds under TCG: no getty on the serial console (its device unit would wait
# 90 s), no static-nodes pass, no NTP client steering the guest's clock on its own, no
# keepalived or BIRD of the system's own (an agent runs its engine).
MASK="serial-getty@ttyS0.service getty@tty1.service kmod-static-nodes.service chrony.service systemd-timesyncd.service keepalived.service bird.service"
KEY=$(printf '%s\n' bookworm "$PACKAGES" "$MASK" "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-16)
TAR=$CACHE/rootfs-bookworm-$KEY.tar
if [ ! -s "$TAR" ]; then
    mkdir -p "$CACHE"
    echo "rootfs: building Debian 12 with systemd ($PACKAGES)" >&2
    hooks=()
    for u in $MASK; do hooks+=(--customize-hook="ln -sf /dev/null \"\$1/etc/systemd/system/$u\""); done
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --customize-hook='echo lvs-vm > "$1/etc/hostname"' \
        --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
        --customize-hook='passwd --root "$1" -d root' \
        "${hooks[@]}" \
        bookworm "${TAR%.tar}.partial.tar" "$MIRROR" >&2   # (mmdebstrap picks the format by the name's end)
    mv "${TAR%.tar}.partial.tar" "$TAR"
fi
echo "$TAR"
