#!/usr/bin/env bash
# work-manyfiles: 100000 files in one directory: create, stat a sample,
# list, look up every name, unlink all (manyfiles); fsck afterwards.
# timeout: 600
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

mf=$(pfs_tool manyfiles)
pfs_setup -s 2G
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
read -r _ _ _ _ files0 ffree0 < <(pfs_statfs "$M")
"$mf" -n 100000 "$M"
read -r _ _ _ _ files1 ffree1 < <(pfs_statfs "$M")
expect_eq "$files1" "$files0" "total inodes"
# Every inode comes back (allowing for deferred frees on the way).
for ((i = 0; i < 50 && ffree1 < ffree0; i++)); do
	sleep 0.2
	read -r _ _ _ _ _ ffree1 < <(pfs_statfs "$M")
done
expect_eq "$ffree1" "$ffree0" "free inodes after unlinking everything"
pfs_umount "$M"
pfs_fsck
