#!/bin/sh
# /init of the systemd floor's initramfs: load the disk and filesystem modules, mount the
# Debian userspace from the virtio disk and hand over to systemd as PID 1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
while read -r ko; do insmod "$ko" 2>/dev/null; done < /etc/modules.order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "LVSVM-FAILED root: cannot mount /dev/vda" > /dev/ttyS1
    echo "LVSVM-EXIT 1" > /dev/ttyS1
    poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
