#!/usr/bin/env bash
# The packaging tools, pinned: cargo-deb and cargo-generate-rpm, into ~/.cargo/bin when
# missing or of another version (idempotent; silent when both are there). Called by
# packaging/build.sh, and by .ci/run early and in the background, so that compiling them
# overlaps the steps that wait on the network.
set -euo pipefail
tool() { # binary crate version
    # (captured first: `grep -q` closing a pipe early is a failure under pipefail)
    local v; v=$("$1" --version 2>/dev/null || true)
    if [[ "$v" != *" $3" ]]; then
        echo "packaging: installing $2 $3" >&2
        cargo install --locked --quiet --force "$2@$3"
    fi
}
tool cargo-deb cargo-deb 3.8.0
tool cargo-generate-rpm cargo-generate-rpm 0.21.1
