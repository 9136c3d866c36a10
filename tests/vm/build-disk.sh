#!/usr/bin/env bash
# The systemd floor's disk: the cached Debian userspace (rootfs.sh), the test kernel's
# modules, the built packages (not installed: the test installs them with dpkg -i under
# systemd), the test programs, and the guest's test runner as a service.
# Usage: build-disk.sh ROOTFS.tar KDIR KVER OUT.raw PKGDIR BIN...
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TAR=$1 KDIR=$2 KVER=$3 OUT=$4 PKGS=$5; shift 5
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/lvs-vm-disk.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
tar -xf "$TAR" -C "$STAGE"
mkdir -p "$STAGE/lib/modules"
cp -a "$KDIR/lib/modules/$KVER" "$STAGE/lib/modules/"
T=$STAGE/opt/lvs-test
mkdir -p "$T/pkgs" "$T/old-pkgs"
cp "$PKGS"/*.deb "$T/pkgs/"
# The same packages under a lower version ($LVS_VM_OLD_DEBS), installed first so that the
# current ones arrive as an upgrade.
[ -z "${LVS_VM_OLD_DEBS:-}" ] || cp "$LVS_VM_OLD_DEBS"/*.deb "$T/old-pkgs/"
for b in "$@"; do install -m 0755 "$b" "$T/$(basename "$b")"; done
# The harness finds lvsctl and lvs-agent beside the test programs: the installed ones.
ln -sf /usr/bin/lvsctl "$T/lvsctl"
ln -sf /usr/sbin/lvs-agent "$T/lvs-agent"
install -m 0755 "$HERE/systemd-guest.sh" "$T/run.sh"
cat > "$STAGE/etc/systemd/system/lvs-vmtest.service" <<'UNIT'
[Unit]
Description=lvs-dr systemd floor: the test steps
After=multi-user.target

[Service]
Type=simple
ExecStart=/opt/lvs-test/run.sh
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$STAGE/etc/systemd/system/multi-user.target.wants"
ln -sf ../lvs-vmtest.service "$STAGE/etc/systemd/system/multi-user.target.wants/lvs-vmtest.service"
rm -f "$OUT"
mke2fs -q -F -t ext4 -L lvsroot -d "$STAGE" "$OUT" 3G
echo "disk $OUT: $(du -m "$OUT" | cut -f1) MiB used of 3072" >&2
