#!/usr/bin/env bash
# Build the test VM's initramfs: busybox, iproute2 `ip`, `ipvsadm` (the referee), the kernel
# modules the tests need (dependencies and soft dependencies resolved, deps first), our
# binaries with their shared libraries, and guest-init.sh as /init.
# Usage: build-initramfs.sh KDIR KVER OUT.cpio BIN... (each BIN is copied to /bin/<name>)
# Env: LVS_VM_MODULES (the modules to load instead of the test set: no schedulers then),
#      LVS_VM_INIT (the /init script instead of guest-init.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KDIR=$1 KVER=$2 OUT=$3; shift 3
MODDIR=$KDIR/lib/modules/$KVER
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/lvs-vm-stage.XXXXXX")
# mktemp makes it 0700, and it becomes the guest's /: others (the check scripts' user) must
# be able to pass through it.
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run/netns,tmp,etc,srv,lib/modules/$KVER,root}
ln -s ../run "$STAGE/var" 2>/dev/null || { mkdir -p "$STAGE/var"; ln -s ../run "$STAGE/var/run"; }

cp /bin/busybox "$STAGE/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$STAGE/bin/$a" ] || ln -s busybox "$STAGE/bin/$a"; done
rm -f "$STAGE/bin/ip"   # iproute2's ip (netns, veth peers) replaces busybox's

copy_with_libs() { # SRC DST-in-stage [strip]
    install -D -m 0755 "$1" "$STAGE/$2"
    [ "${3:-}" = strip ] && strip --strip-debug "$STAGE/$2" 2>/dev/null || true
    # (a data file has no libraries: ldd fails, which is fine)
    { ldd "$1" 2>/dev/null || true; } | awk '/=>/ {print $3} /^\t\/lib64\// {print $1}' | while read -r lib; do
        [ -n "$lib" ] && [ -f "$lib" ] && [ ! -e "$STAGE$lib" ] && install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
        true
    done
}
IP=$(command -v ip); copy_with_libs "$IP" usr/sbin/ip
copy_with_libs /usr/sbin/ipvsadm usr/sbin/ipvsadm
for extra in /usr/sbin/chronyd /usr/bin/chronyc /usr/sbin/keepalived /usr/sbin/lighttpd /usr/sbin/nft /usr/sbin/bird /usr/sbin/birdc; do
    [ -x "$extra" ] && copy_with_libs "$extra" "${extra#/}"
done
for b in "$@"; do copy_with_libs "$b" "bin/$(basename "$b")" strip; done

# Kernel modules: IPVS with every scheduler (the agent reports which exist), veth, bridge, dummy.
# nf_tables: the admin's marking rule of the dual-stack test's IPv6 fwmark service; nft_dup_*:
# the directors' hand-over bounce (agent/src/ha/straddle.rs).
WANT=${LVS_VM_MODULES:-ip_vs ip_vs_rr ip_vs_wrr veth bridge dummy nf_tables nft_dup_ipv4 nft_dup_ipv6}
# Schedulers differ between kernel versions (twos came in 6.2): every one this kernel ships,
# found in its module tree (not from a list of ours), and that list is written to
# /etc/ipvs-schedulers for the test that holds the validator's list against the kernel.
OPTIONAL=$(find "$MODDIR/kernel/net/netfilter/ipvs" -name 'ip_vs_*.ko*' -printf '%f\n' \
    | sed -E 's/\.ko(\.(xz|zst|gz))?$//' | grep -vxE 'ip_vs|ip_vs_ftp|ip_vs_pe_sip' | sort)
[ -n "${LVS_VM_MODULES:-}" ] && OPTIONAL=""
printf '%s\n' $OPTIONAL | sed 's/^ip_vs_//' > "$STAGE/etc/ipvs-schedulers"
declare -A SEEN=()
ORDER=()
name_of() { local n; n=$(basename "$1"); n=${n%%.ko*}; echo "${n//-/_}"; }
modpath() { awk -F: -v m="$1" '{n=$1; sub(".*/","",n); sub(/\.ko(\.(xz|zst|gz))?$/,"",n); gsub("-","_",n); if (n==m) {print $1; exit}}' "$MODDIR/modules.dep"; }
softdeps() { awk -v m="$1" '$1=="softdep" && $2==m {p=0; for (i=3;i<=NF;i++) {if ($i=="pre:") p=1; else if ($i=="post:") p=0; else if (p) print $i}}' "$MODDIR/modules.softdep"; }
by_alias() { awk -v a="$1" '$1=="alias" && $2==a {print $3}' "$MODDIR/modules.alias" | sort -u | awk '/_generic$/ {g=$0} {f = f ? f : $0} END {print (g ? g : f)}'; }
resolve() {
    local rel=$1 sd m d
    [ -n "${SEEN[$rel]:-}" ] && return
    SEEN[$rel]=1
    # Soft pre-dependencies are not in modules.dep but the module's init needs them
    # (Debian 6.1: libcrc32c allocates "crc32c", which is a module).
    for sd in $(softdeps "$(name_of "$rel")"); do
        m=$(modpath "$sd"); [ -n "$m" ] || { a=$(by_alias "$sd"); [ -n "$a" ] && m=$(modpath "$a"); }
        [ -n "$m" ] && resolve "$m"
    done
    for d in $(awk -F: -v r="$rel" '$1==r {print $2}' "$MODDIR/modules.dep"); do resolve "$d"; done
    ORDER+=("$rel")
}
for m in $WANT; do
    rel=$(modpath "$m"); [ -n "$rel" ] || { echo "module $m not in $MODDIR" >&2; exit 1; }
    resolve "$rel"
done
for m in $OPTIONAL; do
    rel=$(modpath "$m"); [ -n "$rel" ] && resolve "$rel"
done
: > "$STAGE/etc/modules.order"
for rel in "${ORDER[@]}"; do
    base=$(basename "$rel"); plain=${base%.xz}; plain=${plain%.zst}; plain=${plain%.gz}
    case "$base" in   # busybox insmod does not decompress
        *.ko.xz) xz -dc "$MODDIR/$rel" ;; *.ko.zst) zstd -dqc "$MODDIR/$rel" ;; *.ko.gz) gzip -dc "$MODDIR/$rel" ;;
        *) cat "$MODDIR/$rel" ;;
    esac > "$STAGE/lib/modules/$KVER/$plain"
    echo "/lib/modules/$KVER/$plain" >> "$STAGE/etc/modules.order"
done

# chronyd looks up its user; the guest runs everything as root but check scripts and
# hooks, which the agent runs as lvs-agent-script.
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'lvs-agent-script:x:997:997::/nonexistent:/bin/false' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > "$STAGE/etc/passwd"
printf '%s\n' 'root:x:0:' 'lvs-agent-script:x:997:' 'nogroup:x:65534:' > "$STAGE/etc/group"
install -m 0755 "${LVS_VM_INIT:-$HERE/guest-init.sh}" "$STAGE/init"
[ -e "$STAGE/dev/console" ] || mknod -m 600 "$STAGE/dev/console" c 5 1
[ -e "$STAGE/dev/null" ] || mknod -m 666 "$STAGE/dev/null" c 1 3
# Uncompressed: the kernel unpacks it without a decompressor, which is what costs under TCG.
(cd "$STAGE" && find . -print0 | cpio --null -o -H newc --quiet) > "$OUT"
echo "initramfs $OUT: $(( $(stat -c %s "$OUT") / 1024 )) KiB, ${#ORDER[@]} modules" >&2
