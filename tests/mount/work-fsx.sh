#!/usr/bin/env bash
# work-fsx: the fsx exerciser: 100000 operations with a fixed seed, 100000
# with a random seed (printed), and two smaller runs on two files at once.
# timeout: 600
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

fsx=$(pfs_tool fsx)
pfs_setup
pfs_mount mnt
M=$PFS_TEST_DIR/mnt

step "fixed seed"
"$fsx" -N 100000 -S 1 -o 64K "$M/fsx.1"
step "random seed"
"$fsx" -N 100000 -o 64K "$M/fsx.2"
step "two files at once"
"$fsx" -N 30000 -S 3 -l 2M -o 32K "$M/fsx.3" &
p3=$!
"$fsx" -N 30000 -S 4 -l 4M -o 128K "$M/fsx.4" &
p4=$!
rc=0
wait "$p3" || rc=1
wait "$p4" || rc=1
((rc == 0)) || fail "a concurrent fsx run failed"
pfs_umount "$M"
pfs_fsck
