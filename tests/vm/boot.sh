#!/usr/bin/env bash
# Boot the test kernel with an initramfs under qemu. No network device to the host: the
# guest's only outputs are the console (LOG) and a second serial port (RESULTS).
# Usage: boot.sh KDIR KVER INITRAMFS RESULTS LOG [kernel args...]
# Env: LVS_VM_ACCEL (auto|kvm|tcg), LVS_VM_MEM (MiB, 768), LVS_VM_SMP (2), LVS_VM_TIMEOUT (s),
#      LVS_VM_DISK (a raw disk image: virtio, the guest's /dev/vda), LVS_VM_REBOOT=1 (a guest
#      reboot restarts the machine on the same disk instead of ending qemu).
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
[ "${LVS_VM_REBOOT:-0}" = 1 ] || EXTRA+=(-no-reboot)
timeout --foreground -k 5 "$TIMEOUT" qemu-system-x86_64 -M pc "${ACCEL_ARGS[@]}" \
    -m "${LVS_VM_MEM:-768}" -smp "${LVS_VM_SMP:-2}" \
    -nographic -nodefaults -nic none "${EXTRA[@]}" \
    -serial "file:$LOG" -serial "file:$RESULTS" \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 $*" </dev/null
rc=$?
echo "$ACCEL" > "$RESULTS.accel"
exit $rc
