#!/usr/bin/env bash
# The one list of what the project's tests need from Debian, and its installer.
#
#   tests/prereqs.sh           install whatever is missing (idempotent; silent when nothing is)
#   tests/prereqs.sh --check   print each missing tool and the package that brings it; exit 1
#                              when something is missing, 0 when all is there; installs nothing
#
# Called by `tests/run` before its first cargo command, by `tests/vm/prepare.sh` (so the main
# job `tests/vm/run lab` sets itself up too) and therefore by `.ci/run`.
set -euo pipefail
MODE=install
case "${1:-}" in
    --check) MODE=check ;;
    "") ;;
    *) echo "usage: tests/prereqs.sh [--check]" >&2; exit 2 ;;
esac

# One row per need: package, then the test that proves it is there, then what it is for.
# (The busybox check captures the applet list first: `grep -q` closing a pipe early is a
# failure under pipefail.)
has_busybox_httpd() { local a; a=$([ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null || true); grep -qx httpd <<<"$a"; }
has_ip() { [ -x /usr/bin/ip ] || [ -x /sbin/ip ] || [ -x /usr/sbin/ip ]; }
has_cmd() { command -v "$1" >/dev/null 2>&1; }
NEEDS=(
    "iproute2|has_ip|ip netns/veth/bridges for every root suite"
    "chrony|test -x /usr/sbin/chronyd|the real NTP server of the lab and the netns suites"
    "busybox-static|has_busybox_httpd|the real servers' httpd (netns suites, VM initramfs)"
    "lighttpd|test -x /usr/sbin/lighttpd|a keep-alive httpd for the health bench (host and VM)"
    "ipvsadm|test -x /usr/sbin/ipvsadm|the referee of the IPVS suites (used inside the VM only)"
    "keepalived|test -x /usr/sbin/keepalived|the VRRP engine of director HA (netns and VM suites)"
    "bird2|test -x /usr/sbin/bird|the BGP daemon of ECMP directors and their router (netns and VM suites)"
    "frr|test -x /usr/bin/vtysh|FRR's own parser checks what \`lvsctl peering frr\` prints (bgp test)"
    "nftables|test -x /usr/sbin/nft|the marking rule of the VM's IPv6 fwmark service (dual-stack e2e)"
    "qemu-system-x86|has_cmd qemu-system-x86_64|boots the test kernel (VM suites)"
    "kmod|has_cmd depmod|module index of the test kernel"
    "cpio|has_cmd cpio|packs the VM's initramfs"
    "systemd|has_cmd systemd-analyze|verifies the agent's unit"
    "xz-utils|has_cmd xz|unpacks the test kernel"
    "zstd|has_cmd zstd|unpacks the test kernel's modules"
    "rpm|has_cmd rpmbuild|builds the .rpm packages (rpmbuild) and reads them back (package test)"
    "dpkg-dev|has_cmd dpkg-shlibdeps|the .deb packages' library dependencies (packaging/build.sh)"
    "lintian|has_cmd lintian|checks the .deb packages (package test)"
    "mmdebstrap|has_cmd mmdebstrap|builds the systemd VM's Debian userspace"
    "e2fsprogs|has_cmd mke2fs|makes the systemd VM's disk image"
    "protobuf-compiler|has_cmd protoc|the reference protoc compiles the contract (contract test)"
    "protobuf-compiler-grpc|test -x /usr/bin/grpc_python_plugin|protoc's Python gRPC stubs (contract test)"
    "python3-grpcio|/usr/bin/python3 -c 'import grpc' 2>/dev/null|the Python client of the contract test"
    "python3-protobuf|/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null|the Python client's messages"
)
# Not installed as a package: Debian's `prometheus` would also enable a Prometheus server.
# Its promtool (one static binary) is unpacked from the .deb into $TOOLS and linked onto PATH.
TOOLS=/opt/lvs-dr-test-tools
has_promtool() { [ -x /usr/local/bin/promtool ] && /usr/local/bin/promtool --version >/dev/null 2>&1; }
install_promtool() {
    local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
    (cd "$tmp" && apt-get download -qq prometheus >&2)
    rm -rf "$TOOLS/prometheus"; mkdir -p "$TOOLS/prometheus"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$TOOLS/prometheus"
    rm -rf "$tmp"
    ln -sf "$TOOLS/prometheus/usr/bin/promtool" /usr/local/bin/promtool
}

# buf (lint and wire-breaking checks of the contract) is not in Debian: its release binary
# comes from the npm registry (@bufbuild/buf ships it per platform), pinned, into $TOOLS.
BUF_VERSION=1.75.0
has_buf() { [ -x /usr/local/bin/buf ] && [ "$(/usr/local/bin/buf --version 2>/dev/null)" = "$BUF_VERSION" ]; }
install_buf() {
    has_cmd npm || { echo "tests/prereqs.sh: buf needs npm (Node.js), which this machine lacks" >&2; return 1; }
    rm -rf "$TOOLS/buf"; mkdir -p "$TOOLS/buf"
    npm install --prefix "$TOOLS/buf" --silent --no-audit --no-fund --no-save "@bufbuild/buf@$BUF_VERSION" >&2
    ln -sf "$TOOLS/buf/node_modules/.bin/buf" /usr/local/bin/buf
}

missing=()
need_promtool=""
need_buf=""
if ! has_promtool; then
    need_promtool=1
    [ "$MODE" = check ] && echo "missing: promtool (from Debian's prometheus package: checks the metrics exposition and alert rules)"
fi
if ! has_buf; then
    need_buf=1
    [ "$MODE" = check ] && echo "missing: buf $BUF_VERSION (from npm's @bufbuild/buf: lints the contract, checks it stays wire-compatible)"
fi
for row in "${NEEDS[@]}"; do
    IFS='|' read -r pkg probe why <<<"$row"
    if ! eval "$probe"; then
        missing+=("$pkg")
        [ "$MODE" = check ] && echo "missing: $pkg ($why)"
    fi
done
[ ${#missing[@]} -eq 0 ] && [ -z "$need_promtool" ] && [ -z "$need_buf" ] && exit 0
[ "$MODE" = check ] && exit 1

if [ "$(id -u)" != 0 ]; then
    echo "tests/prereqs.sh: missing ${missing[*]} ${need_promtool:+promtool} ${need_buf:+buf}; run as root" >&2
    exit 1
fi
echo "installing: ${missing[*]} ${need_promtool:+promtool} ${need_buf:+buf}" >&2
export DEBIAN_FRONTEND=noninteractive
# Never let a package start its daemon here (chrony would steer the host's clock): the tests
# start what they need, in namespaces. The guard is removed even when apt fails.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; guard=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
[ -z "$need_buf" ] || install_buf
[ ${#missing[@]} -eq 0 ] && [ -z "$need_promtool" ] || apt-get update -qq >&2
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
[ -z "$need_promtool" ] || install_promtool
# What was just installed must now pass its own check, or the list above is wrong.
"$0" --check >&2
