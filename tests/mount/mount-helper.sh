#!/usr/bin/env bash
# mount-helper: the volume mounts through mount(8) as type fuse.peerfs,
# both from the command line and from an fstab line with the options
# mount passes along (defaults, _netdev), and unmounts with umount(8).
# timeout: 120
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_setup -s 64M
MNT=$PFS_TEST_DIR/mnt
mkdir -p "$MNT"
# mount.fuse runs the filesystem's program found on PATH.
export PATH=$(dirname "$(pfs_bin peerfs)"):$PATH

mount -t fuse.peerfs "$PFS_IMAGE" "$MNT" -o "keyfile=$PFS_KEY" || fail "mount -t fuse.peerfs failed"
mountpoint -q "$MNT" || fail "not mounted"
findmnt -n -o FSTYPE "$MNT" | grep -qx fuse.peerfs || fail "wrong type: $(findmnt -n -o FSTYPE "$MNT")"
echo hello >"$MNT/f"
umount "$MNT" || fail "umount failed"
sleep 0.5

echo "$PFS_IMAGE $MNT fuse.peerfs defaults,_netdev,keyfile=$PFS_KEY 0 0" >"$PFS_TEST_DIR/fstab"
mount -T "$PFS_TEST_DIR/fstab" "$MNT" || fail "mount from an fstab line failed"
expect_eq "$(cat "$MNT/f")" hello "content after remount through fstab"
umount "$MNT" || fail "umount failed"
sleep 0.5
pfs_fsck
echo "ok: mount(8) and fstab"
