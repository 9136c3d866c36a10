#!/bin/sh
# /init (PID 1) of the test VM. Loads the modules, then runs the suite named on the kernel
# command line (lvs.suite=NAME -> /bin/suite-NAME.sh is not used; suites are functions below).
# Output for the host goes to /dev/ttyS1 (a file on the host); the console gets the rest.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run; mkdir -p /run/netns
mount -t tmpfs tmpfs /tmp
hostname lvs-vm
OUT=/dev/ttyS1
say() { echo "$*" > $OUT; }
while read -r ko; do insmod "$ko" 2>/dev/null || say "insmod failed: $ko"; done < /etc/modules.order
/usr/sbin/ip link set lo up
say "LVSVM kernel $(uname -r) cpus $(nproc) $(grep MemTotal /proc/meminfo | tr -s ' ')"
[ -e /proc/net/ip_vs ] || say "LVSVM warning: no /proc/net/ip_vs"

suite=$(sed -n 's/.*lvs\.suite=\([a-z0-9_-]*\).*/\1/p' /proc/cmdline)
rc=0
run() { # label command... : runs it, streams output to the host, records failure
    say "LVSVM-BEGIN $1"; shift
    "$@" > $OUT 2>&1 || { rc=$?; say "LVSVM-FAILED rc=$rc"; }
}
case "$suite" in
    ipvs)
        run kernel /bin/kernel --ignored --test-threads=2 --show-output
        ;;
    bench)
        run bench /bin/load --bench
        ;;
    e2e)
        run e2e /bin/e2e --ignored --test-threads=1 --nocapture
        ;;
    lab)
        # The README's main command, inside the VM: `lvsctl lab` on a kernel with IPVS.
        run lab /bin/lvsctl -f /bin/lab.toml lab
        ;;
    *)
        say "unknown suite '$suite'"; rc=2
        ;;
esac
say "LVSVM-EXIT $rc"
sync
poweroff -f
sleep 5
