#!/usr/bin/env bash
# Boot the test kernel with an initramfs under qemu. No network device to the host: the
# guest's only outputs are the console (LOG) and a second serial port (RESULTS).
# Usage: boot.sh KDIR KVER INITRAMFS RESULTS LOG [kernel args...]
# Env: LVS_VM_ACCEL (auto|kvm|tcg), LVS_VM_MEM (MiB, 768), LVS_VM_SMP (2), LVS_VM_TIMEOUT (s),
#      LVS_VM_DISK (a raw disk image: virtio, the guest's /dev/vda), LVS_VM_REBOOT=1 (a guest
#      that says `LVSVM rebooting` and reboots is booted once more on the same disk, its
#      output appended to RESULTS and LOG).
# The reboot is a cold one, a second qemu: qemu's warm reset under TCG left the second
# kernel stuck in soft lockups for about 80 s before it reached its init.
set -uo pipefail
KDIR=$1 KVER=$2 INITRD=$3 RESULTS=$4 LOG=$5; shift 5
KERNEL=$KDIR/boot/vmlinux            # PVH entry: no in-guest decompression
[ -s "$KERNEL" ] || KERNEL=$KDIR/boot/vmlinuz-$KVER
ACCEL=${LVS_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
    # Only real VMX/SVM KVM runs a stock kernel; /dev/kvm may be another kind (e.g. kvm_pvm).
    if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then ACCEL=kvm; else ACCEL=tcg; fi
fi
if [ "$ACCEL" = kvm ]; then
    ACCEL_ARGS=(-enable-kvm -cpu host); TIMEOUT=${LVS_VM_TIMEOUT:-300}
else
    ACCEL_ARGS=(-accel tcg,thread=multi -cpu max); TIMEOUT=${LVS_VM_TIMEOUT:-900}
fi
: > "$RESULTS"
EXTRA=()
[ -n "${LVS_VM_DISK:-}" ] && EXTRA+=(-drive "file=$LVS_VM_DISK,format=raw,if=virtio,cache=unsafe")
boot() { # SECONDS RESULTS LOG -> qemu's status (a guest reboot ends qemu too: -no-reboot)
    timeout --foreground -k 5 "$1" qemu-system-x86_64 -M pc "${ACCEL_ARGS[@]}" \
        -m "${LVS_VM_MEM:-768}" -smp "${LVS_VM_SMP:-2}" \
        -nographic -nodefaults -nic none -no-reboot "${EXTRA[@]}" \
        -serial "file:$3" -serial "file:$2" \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 quiet panic=-1 $ARGS" </dev/null
}
ARGS=$*
deadline=$((SECONDS + TIMEOUT))
boot "$TIMEOUT" "$RESULTS" "$LOG"
rc=$?
if [ "${LVS_VM_REBOOT:-0}" = 1 ] && grep -q '^LVSVM rebooting' "$RESULTS" && ! grep -q '^LVSVM-EXIT' "$RESULTS"; then
    left=$((deadline - SECONDS))
    if [ "$left" -gt 0 ]; then
        boot "$left" "$RESULTS.boot2" "$LOG.boot2"
        rc=$?
        cat "$RESULTS.boot2" >> "$RESULTS"; cat "$LOG.boot2" >> "$LOG"
        rm -f "$RESULTS.boot2" "$LOG.boot2"
    else
        rc=124
    fi
fi
echo "$ACCEL" > "$RESULTS.accel"
exit $rc
