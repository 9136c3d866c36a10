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
# label limit command... : runs it with its own time limit, streams output to the host,
# records failure. A run that outlives its limit is killed and named (LVSVM-TIMEOUT), so a
# deadlocked test fails as itself instead of hanging the VM until the host gives up.
run() {
    label=$1 limit=$2; shift 2
    say "LVSVM-BEGIN $label"
    rm -f /tmp/run.tests
    "$@" > $OUT 2>&1 &
    pid=$!
    ( sleep "$limit"; kill -KILL $pid 2>/dev/null && say "LVSVM-TIMEOUT $label after ${limit}s" ) &
    watchdog=$!
    wait $pid; code=$?
    kill $watchdog 2>/dev/null
    [ $code = 0 ] || { rc=$code; say "LVSVM-FAILED $label rc=$code"; }
}
# passed LABEL MIN: the last run, a libtest binary given `--logfile /tmp/run.tests` (one
# `ok NAME` line per test that passed), passed at least MIN tests: a filter or a name that
# matches nothing would otherwise run 0 tests and exit 0.
passed() {
    n=$(grep -c '^ok ' /tmp/run.tests 2>/dev/null)
    [ "${n:-0}" -ge "$2" ] || { rc=1; say "LVSVM-FAILED $1: ${n:-no} test(s) passed, at least $2 expected"; }
}
case "$suite" in
    ipvs)
        run kernel 300 /bin/kernel --ignored --test-threads=2 --show-output --logfile /tmp/run.tests
        passed kernel 10
        ;;
    bench)
        run bench 600 /bin/load --bench
        # Our checker and keepalived's on the same 200 destinations (2,000, and 200 probed
        # every 200 ms, are the host's: TCG cannot serve that many requests).
        run health 300 /bin/health --bench --tcg
        ;;
    e2e)
        # One run per test, each with its own limit.
        # lvs.only=SUBSTRING (LVS_VM_ONLY=… tests/vm/run e2e): only the tests it names, for a
        # quick loop while working on one; CI never sets it.
        only=$(sed -n 's/.*lvs\.only=\([A-Za-z0-9_]*\).*/\1/p' /proc/cmdline)
        tests=$(/bin/e2e --ignored --list 2>/dev/null | sed -n 's/: test$//p' | grep -e "${only:-.}")
        [ -n "$tests" ] || { say "LVSVM-BEGIN e2e:list"; rc=1; say "LVSVM-FAILED e2e: no test listed${only:+ matching $only}"; }
        for t in $tests; do
            run "e2e:$t" 600 /bin/e2e --ignored --exact "$t" --test-threads=1 --nocapture --logfile /tmp/run.tests
            passed "e2e:$t" 1
        done
        ;;
    lab)
        # The README's main command, inside the VM: `lvsctl lab` on a kernel with IPVS.
        run lab 600 /bin/lvsctl -f /bin/lab.toml lab
        ;;
    *)
        say "unknown suite '$suite'"; rc=2
        ;;
esac
say "LVSVM-EXIT $rc"
sync
# The serial port's last bytes leave after write() returns: a poweroff at once has cut
# LVSVM-EXIT and the lines before it (a bench run ended "began but never finished").
sleep 1
poweroff -f
sleep 5
