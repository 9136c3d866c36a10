#!/usr/bin/env bash
# Build the packages from this tree: lvs-agent and lvsctl as .deb (cargo-deb) and .rpm
# (cargo-generate-rpm). Generates what the packages carry but the tree does not keep: the
# man pages (lvsctl.1, lvs-agent.8), shell completions (bash, zsh, fish) and the units
# (lvs-agent.service as in deploy/, lvs-agent@.service derived from it).
# Usage: packaging/build.sh      Output: target/debian/*.deb, target/generate-rpm/*.rpm
# Installs cargo-deb and cargo-generate-rpm (pinned) into ~/.cargo/bin when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/tools.sh
# The packages' asset paths name target/ (cargo-deb and cargo-generate-rpm resolve
# target/release themselves; our generated files live in target/package).
export CARGO_TARGET_DIR=target
# The same invocation as tests/vm/run's, so the VM suites reuse these binaries as they are.
cargo build --release --locked -q -p lvsctl -p lvs-agent
BIN=target/release
P=target/package
rm -rf "$P"; mkdir -p "$P/units" "$P/completions" "$P/man1"
"$BIN/lvsctl" man --dir "$P/man1" >/dev/null     # lvsctl.1 and lvsctl-SUBCOMMAND.1
gzip -9n "$P"/man1/*.1
"$BIN/lvs-agent" --man | gzip -9n > "$P/lvs-agent.8.gz"
"$BIN/lvsctl" completions bash > "$P/completions/lvsctl.bash"
"$BIN/lvsctl" completions zsh > "$P/completions/_lvsctl"
"$BIN/lvsctl" completions fish > "$P/completions/lvsctl.fish"
cp deploy/systemd/lvs-agent.service "$P/units/lvs-agent.service"
packaging/instance-unit.sh < deploy/systemd/lvs-agent.service > "$P/units/lvs-agent@.service"
rm -f target/debian/*.deb target/generate-rpm/*.rpm
for pkg in lvs-agent lvsctl; do
    cargo deb -q -p "$pkg" --no-build >&2
done
# gzip, not the default zstd: EL8's rpm (4.14) cannot read zstd payloads.
cargo generate-rpm --payload-compress gzip -p agent >&2
cargo generate-rpm --payload-compress gzip -p lvsctl >&2
ls target/debian/*.deb target/generate-rpm/*.rpm
