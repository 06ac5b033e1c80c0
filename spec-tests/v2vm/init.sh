#!/bin/busybox sh
# The guest's /init for the pure cgroup-v2 test VM (built into the initramfs by build.py).
#
# Stage 1 runs on the initramfs itself. pivot_root(2) refuses a root with no parent mount, and the
# initramfs is exactly that, so pyrunc could never pivot there. Instead of copying the image into a
# tmpfs, bind the initramfs onto a mount point and move that mount over / : the new root is then an
# ordinary mount with a parent, and stage 2 runs chrooted in it.
export PATH=/usr/local/bin:/root/.pyenv/versions/3.11.7/bin:/bin:/sbin:/usr/bin:/usr/sbin
if [ "$1" != "stage2" ]; then
    mkdir -p /.newroot
    mount --rbind / /.newroot || { echo "PYRUNC-V2VM-FATAL bind of / failed"; poweroff -f; }
    cd /.newroot
    mount --move . / || { echo "PYRUNC-V2VM-FATAL move of / failed"; poweroff -f; }
    exec chroot . /init stage2
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
# The virtio disk (run.py attaches one) for the io.max tests; bfq is left to the test that needs it.
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
    [ -e /v2vm/modules/$m.ko ] && { insmod /v2vm/modules/$m.ko 2>/dev/null || echo "PYRUNC-V2VM-WARN insmod $m failed"; }
done
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# One controller at a time: a controller the kernel refuses must not keep the others off.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "PYRUNC-V2VM-WARN cannot enable $c"
done
hostname v2vm
echo "PYRUNC-V2VM-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) controllers=$(cat /sys/fs/cgroup/cgroup.subtree_control | tr ' ' ,) disk=$(cat /sys/block/vda/dev 2>/dev/null || echo none)"

rc=127
if [ -x /v2vm/cmd.sh ]; then
    cd /
    HOME=/root TMPDIR=/tmp /v2vm/cmd.sh
    rc=$?
else
    echo "PYRUNC-V2VM-FATAL no /v2vm/cmd.sh in the initramfs"
fi
# The sentinel run.py waits for: the guest command's status, then power off.
echo "PYRUNC-V2VM-EXIT=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
