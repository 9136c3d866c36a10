#!/usr/bin/env bash
# Install what the VM test bed needs (tests/prereqs.sh) and unpack a stock Debian kernel that ships IPVS modules.
# Idempotent and cached: a second run downloads nothing. Prints KDIR=... and KVER=... on stdout.
# Env: LVS_VM_CACHE (default ~/.cache/lvs-dr-vm), LVS_VM_FLAVOUR (default amd64).
set -euo pipefail
CACHE=${LVS_VM_CACHE:-$HOME/.cache/lvs-dr-vm}
FLAVOUR=${LVS_VM_FLAVOUR:-amd64}
mkdir -p "$CACHE"

# Debian packages: the one list, shared with tests/run (quiet when nothing is missing).
"$(dirname "$0")/../prereqs.sh" >&2

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
