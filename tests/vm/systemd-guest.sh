#!/bin/bash
# The systemd floor's test runner, a service of the guest (systemd is PID 1). Phase 1 runs
# the steps on the freshly booted disk and reboots; phase 2 runs after that reboot, on the
# same disk. Output for the host goes to /dev/ttyS1, as in the initramfs suites.
OUT=/dev/ttyS1
say() { echo "$*" > $OUT; }
export LVS_BIN_DIR=/opt/lvs-test PATH=/usr/sbin:/usr/bin:/sbin:/bin
STATE=/var/lib/lvs-vmtest
mkdir -p $STATE
phase=$(cat $STATE/phase 2>/dev/null || echo 1)
rc=0
run() { # label limit command...
    local label=$1 limit=$2; shift 2
    say "LVSVM-BEGIN $label"
    timeout -k 5 "$limit" "$@" > $OUT 2>&1
    local code=$?
    [ $code = 124 ] && say "LVSVM-TIMEOUT $label after ${limit}s"
    [ $code = 0 ] || { rc=$code; say "LVSVM-FAILED $label rc=$code"; }
}
say "LVSVM systemd boot $phase: kernel $(uname -r), $(systemd-analyze time 2>/dev/null | head -1)"
say "LVSVM boot $phase: multi-user.target reached at $(awk '{print $1}' /proc/uptime) s uptime; failed units: $(systemctl list-units --failed --no-legend | wc -l)"
if [ "$phase" = 1 ]; then
    run "systemd:services" 1500 /opt/lvs-test/systemd --ignored --exact agents_as_real_services --nocapture --test-threads=1
    if [ $rc = 0 ]; then
        echo 2 > $STATE/phase
        sync
        say "LVSVM rebooting (state kept on disk)"
        systemctl reboot
        exit 0
    fi
else
    run "systemd:after-reboot" 600 /opt/lvs-test/systemd --ignored --exact after_reboot_the_cluster_comes_back_from_the_agents_alone --nocapture --test-threads=1
    [ $rc = 0 ] && run "systemd:ha" 600 /opt/lvs-test/systemd --ignored --exact two_directors_as_real_services_elect_and_hand_over --nocapture --test-threads=1
fi
say "LVSVM-EXIT $rc"
sync
systemctl poweroff
