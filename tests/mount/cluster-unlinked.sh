#!/usr/bin/env bash
# cluster-unlinked: a file open on one node outlives its last name removed
# on another (fs/inode.c I5), as on a local filesystem.
#   1. node 0 holds a file open (read and read-write descriptors); node 1
#      removes it.  Node 0 no longer sees the name, but reads and writes
#      through its descriptors (and reopens through /proc) keep working;
#      the blocks stay allocated.  Once node 0 closes, node 1 deletes the
#      inode: the free space comes back.
#   2. the unlinking node unmounts and mounts again while node 0 still
#      holds the file: the orphan stays, and is deleted after the close.
#   3. node 0 dies (SIGKILL) holding an unlinked file open: node 1
#      recovers it and then deletes the file.
#   4. every node unmounts cleanly and fsck.peerfs finds nothing.
# timeout: 240
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 cmp
pfs_setup -s 256M

OPTS=heartbeat_ms=100,dead_ms=1000
M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1
pfs_mount m0 -o node=0,$OPTS
pfs_mount m1 -o node=1,$OPTS

free_blocks() { stat -f -c %f "$1"; }

# wait_freed MNT BEFORE: until MNT reports at least 1900 more free blocks
# (an 8 MiB file is 2048) than BEFORE.
wait_freed() {
	local i
	for ((i = 0; i < 600; i++)); do
		(($(free_blocks "$1") >= $2 + 1900)) && return 0
		sleep 0.1
	done
	fail "the unlinked file's blocks were not freed (free $(free_blocks "$1"), before $2)"
}


head -c 8M /dev/urandom >"$PFS_TEST_DIR/data"
mkdir "$M0/d"

step "open on node 0, unlinked on node 1"
cp "$PFS_TEST_DIR/data" "$M0/d/f"
sync "$M0/d/f"
free0=$(free_blocks "$M1")
exec 7<"$M0/d/f" 8<>"$M0/d/f"
rm "$M1/d/f"
[[ ! -e $M0/d/f ]] || fail "node 0 still sees the removed name"
[[ ! -e $M1/d/f ]] || fail "node 1 still sees the removed name"
cmp - "$PFS_TEST_DIR/data" <&7 || fail "node 0 cannot read its open unlinked file"
printf 'XXXX' >&8
cp "$PFS_TEST_DIR/data" "$PFS_TEST_DIR/data.x"
printf 'XXXX' | dd of="$PFS_TEST_DIR/data.x" conv=notrunc status=none
cmp "/proc/$$/fd/8" "$PFS_TEST_DIR/data.x" || fail "a write to the open unlinked file was lost"
sleep 2
(($(free_blocks "$M1") < free0 + 1000)) || fail "node 1 freed the blocks of a file open on node 0"
cmp "/proc/$$/fd/7" "$PFS_TEST_DIR/data.x" || fail "the open unlinked file changed while open"
exec 7<&- 8>&-
wait_freed "$M1" "$free0"
echo "freed after the close"

step "the unlinking node remounts while the file is still open"
cp "$PFS_TEST_DIR/data" "$M0/d/g"
sync "$M0/d/g"
free0=$(free_blocks "$M1")
exec 7<"$M0/d/g"
rm "$M1/d/g"
pfs_remount "$M1" -o node=1,$OPTS 7<&-       # the daemon must not inherit it
cmp - "$PFS_TEST_DIR/data" <&7 || fail "the open unlinked file is damaged after the unlinking node remounted"
(($(free_blocks "$M1") < free0 + 1000)) || fail "the remount freed a file open on node 0"
exec 7<&-
wait_freed "$M1" "$free0"
echo "freed after the close"

step "node 0 dies holding an unlinked file open"
cp "$PFS_TEST_DIR/data" "$M0/d/h"
sync "$M0/d/h"
free0=$(free_blocks "$M1")
exec 7<"$M0/d/h"
rm "$M1/d/h"
pfs_kill_daemon "$M0"
exec 7<&-
wait_freed "$M1" "$free0"
echo "freed after node 0 was recovered"

step "unmount, fsck"
pfs_mount m0 -o node=0,$OPTS
[[ -d $M0/d && -z $(ls -A "$M0/d") ]] || fail "directory d is not empty: $(ls -A "$M0/d")"
pfs_umount "$M0"
pfs_umount "$M1"
pfs_fsck
