#!/usr/bin/env bash
# Time `lvsctl apply` of the lab on this machine's own kernel, as a user runs it (a fresh
# lvsctl process each time, mutual TLS, real netlink and /proc/sys in namespaces).
# This host has no IPVS, so the router and the real servers are applied; the director's
# IPVS part is timed on real IPVS by the VM e2e suite (step 1) and by `tests/vm/run bench`.
# Usage (root): tests/bench/lab-apply.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p lvsctl -p lvs-agent --bins
B=$PWD/${CARGO_TARGET_DIR:-target}/release
P=lvsbench
D=$(mktemp -d)
trap '"$B/lvsctl" lab down --dir "$D/lab" >/dev/null; rm -rf "$D"' EXIT
LVS_AGENT_BIN=$B/lvs-agent "$B/lvsctl" -f deploy/examples/lab.toml lab up --prefix $P --dir "$D/lab" >/dev/null
apply() {
    ip netns exec $P-admin "$B/lvsctl" -f deploy/examples/lab.toml --pki "$D/lab/pki" \
        apply --yes --node router --node rs1 --node rs2 >/dev/null
}
ms() { local s; s=$(date +%s%N); apply; echo $(( ($(date +%s%N) - s) / 1000000 )); }
echo "lab apply on this kernel (router, rs1, rs2; 16 changes), lvsctl process included:"
echo "  first apply: $(ms) ms"
again=(); for _ in 1 2 3 4 5; do again+=("$(ms)"); done
echo "  again (0 changes), 5 runs: ${again[*]} ms"
