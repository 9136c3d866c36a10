#!/usr/bin/env bash
# Install what the VM test bed needs and unpack a stock Debian kernel that ships IPVS modules.
# Idempotent and cached: a second run downloads nothing. Prints KDIR=... and KVER=... on stdout.
# Env: LVS_VM_CACHE (default ~/.cache/lvs-dr-vm), LVS_VM_FLAVOUR (default amd64).
set -euo pipefail
CACHE=${LVS_VM_CACHE:-$HOME/.cache/lvs-dr-vm}
FLAVOUR=${LVS_VM_FLAVOUR:-amd64}
mkdir -p "$CACHE"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# (capture the list first: grep -q closing the pipe early is a failure under pipefail)
bb_applets=$([ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null || true)
grep -qx httpd <<<"$bb_applets" || need+=(busybox-static)
[ -x /usr/sbin/ipvsadm ] || need+=(ipvsadm)          # the referee, used inside the VM only
[ -x /usr/sbin/chronyd ] || need+=(chrony)           # the real NTP server of the lab and the tests
command -v depmod >/dev/null || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
command -v systemd-analyze >/dev/null || need+=(systemd)   # verifies the agent unit
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
[ -x /usr/bin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Never let a package start its daemon here (chrony would steer the host's clock):
    # the tests start what they need, in namespaces, with -x.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; guard=1
    fi
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
fi

# Newest unsigned Debian kernel image of the flavour (same kernel as the signed one, fewer deps).
pick() { apt-cache search --names-only "^linux-image-[0-9.]+-[0-9]+-${FLAVOUR}-unsigned\$" | awk '{print $1}' | sort -V | tail -1; }
if [ -s "$CACHE/kernel-$FLAVOUR.pkg" ] && [ -f "$CACHE/$(cat "$CACHE/kernel-$FLAVOUR.pkg").ready" ]; then
    PKG=$(cat "$CACHE/kernel-$FLAVOUR.pkg")
else
    PKG=$(pick)
    if [ -z "$PKG" ]; then apt-get update -qq >&2; PKG=$(pick); fi
    [ -n "$PKG" ] || { echo "prepare: no linux-image-*-$FLAVOUR-unsigned package in apt" >&2; exit 1; }
fi
KVER=${PKG#linux-image-}; KVER=${KVER%-unsigned}
KDIR=$CACHE/$PKG
if [ ! -f "$CACHE/$PKG.ready" ]; then
    echo "fetching $PKG" >&2
    (cd "$CACHE" && rm -f "${PKG}"_*.deb && apt-get download -qq "$PKG" >&2)
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    dpkg-deb -x "$CACHE/${PKG}"_*.deb "$KDIR"
    rm -f "$CACHE/${PKG}"_*.deb
    # The .deb ships no modules.dep (its postinst runs depmod): generate it in the unpacked tree.
    depmod -b "$KDIR" "$KVER"
    # PVH boot takes the ELF vmlinux and skips the in-guest xz decompression (~2.5 s under TCG).
    VMLINUZ=$KDIR/boot/vmlinuz-$KVER
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$VMLINUZ" | head -1 | cut -d: -f1 || true)
    if [ -n "$off" ]; then
        tail -c +$((off+1)) "$VMLINUZ" | xz -dc --single-stream > "$KDIR/boot/vmlinux" 2>/dev/null || true
        [ "$(head -c 4 "$KDIR/boot/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] || rm -f "$KDIR/boot/vmlinux"
    fi
    echo "$PKG" > "$CACHE/kernel-$FLAVOUR.pkg"
    touch "$CACHE/$PKG.ready"
fi
echo "KDIR=$KDIR"
echo "KVER=$KVER"
