#!/usr/bin/env bash
# posix-basic: every posix_check group on a fresh volume, then the data
# path groups again on a volume mounted with data=ordered, and the lock
# group with coord=none (kernel-local locks).  The checks
# must leave the root directory empty; fsck after each mount.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pc=$(pfs_tool posix_check)
pfs_setup
pfs_mount mnt

step "posix_check, all groups"
mkdir mnt/work
"$pc" mnt/work
rmdir mnt/work
expect_eq "$(find mnt -mindepth 1 | wc -l)" 0 "entries left in the root"
pfs_umount mnt
pfs_fsck

step "posix_check, data path groups, data=ordered"
pfs_mount mnt -o data=ordered
mkdir mnt/work
"$pc" mnt/work file truncate sparse blocks fallocate seek cfr unlinked
rmdir mnt/work
pfs_umount mnt
pfs_fsck

step "posix_check, locks, coord=none (the kernel keeps them)"
pfs_mount mnt -o coord=none
mkdir mnt/work
"$pc" mnt/work lock
rmdir mnt/work
pfs_umount mnt
