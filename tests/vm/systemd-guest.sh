#!/bin/bash
# The systemd floor's test runner, a service of the guest (systemd is PID 1). Phase 1 runs
# the steps on the freshly booted disk and reboots; phase 2 runs after that reboot, on the
# same disk. Output for the host goes to /dev/ttyS1, as in the initramfs suites.
# (The LVS_VM_* variables are for tests/tests/scripts.rs, which sources this file to try
# run() on the host; the guest sets none of them.)
OUT=${LVS_VM_OUT:-/dev/ttyS1}
say() { echo "$*" >> "$OUT"; }
export LVS_BIN_DIR=/opt/lvs-test PATH=/usr/sbin:/usr/bin:/sbin:/bin
STATE=${LVS_VM_STATE:-/var/lib/lvs-vmtest}
TEST_BIN=${LVS_VM_TEST_BIN:-/opt/lvs-test/systemd}
mkdir -p $STATE
phase=$(cat $STATE/phase 2>/dev/null || echo 1)
rc=0
# label limit test: one test of the systemd binary, by its exact name. It must report
# `1 passed`: a renamed test would otherwise run nothing and exit 0.
run() {
    local label=$1 limit=$2 test=$3 log=$STATE/run.log
    say "LVSVM-BEGIN $label"
    timeout -k 5 "$limit" "$TEST_BIN" --ignored --exact "$test" --nocapture --test-threads=1 2>&1 \
        | tee "$log" > "$OUT"
    local code=${PIPESTATUS[0]}
    [ $code = 124 ] && say "LVSVM-TIMEOUT $label after ${limit}s"
    if [ $code = 0 ] && ! grep -q '^test result: ok\. 1 passed' "$log"; then
        say "LVSVM-FAILED $label: no test named $test ran"; code=1
    fi
    [ $code = 0 ] || { rc=$code; say "LVSVM-FAILED $label rc=$code"; }
}
[ "${LVS_VM_FUNCTIONS_ONLY:-}" = 1 ] && return 0
say "LVSVM systemd boot $phase: kernel $(uname -r), $(systemd-analyze time 2>/dev/null | head -1)"
say "LVSVM boot $phase: multi-user.target reached at $(awk '{print $1}' /proc/uptime) s uptime; failed units: $(systemctl list-units --failed --no-legend | wc -l)"
if [ "$phase" = 1 ]; then
    run "systemd:services" 1500 agents_as_real_services
    if [ $rc = 0 ]; then
        echo 2 > $STATE/phase
        sync
        say "LVSVM rebooting (state kept on disk)"
        systemctl reboot
        exit 0
    fi
else
    run "systemd:after-reboot" 600 after_reboot_the_cluster_comes_back_from_the_agents_alone
    [ $rc = 0 ] && run "systemd:ha" 600 two_directors_as_real_services_elect_and_hand_over
    [ $rc = 0 ] && run "systemd:ecmp" 600 ecmp_directors_as_real_services_announce_over_bgp
fi
say "LVSVM-EXIT $rc"
sync
systemctl poweroff
