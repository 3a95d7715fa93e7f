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
# mount(8) runs mount.fuse, which runs the program "peerfs" from mount's
# own safe PATH: put the built daemon there for this test if no peerfs is
# installed, and take it away again at the end.
LINK=
if ! command -v peerfs >/dev/null 2>&1 || [[ $(command -v peerfs) == /usr/local/sbin/peerfs && -L /usr/local/sbin/peerfs ]]; then
	LINK=/usr/local/sbin/peerfs
	mkdir -p /usr/local/sbin
	ln -sfn "$(readlink -f "$(pfs_bin peerfs)")" "$LINK"
	trap 'rc=$?; rm -f "$LINK"; (exit $rc); _pfs_on_exit' EXIT
fi

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
