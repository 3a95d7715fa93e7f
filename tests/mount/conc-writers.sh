#!/usr/bin/env bash
# conc-writers: concurrent pwrite by threads and processes into disjoint
# regions of one file and into separate files (concwrite), with chunks
# that straddle blocks and with block-aligned chunks, two groups at once;
# the content is checked again after a remount on peerfs.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

cw=$(pfs_tool concwrite)
pfs_setup -s 512M
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
mkdir "$M/a" "$M/b" "$M/c" "$M/d"

A=(-t 4 -p 2 -b 3000 -c 200 -r 3)
B=(-t 2 -p 4 -b 4096 -c 128 -r 2)
C=(-t 3 -p 2 -b 1000 -c 300 -r 2)
D=(-t 3 -p 2 -b 5000 -c 60 -r 3)

step "unaligned chunks"
"$cw" "${A[@]}" "$M/a"
step "block-aligned chunks"
"$cw" "${B[@]}" "$M/b"
step "two groups of writers at once"
"$cw" "${C[@]}" "$M/c" &
pc=$!
"$cw" "${D[@]}" "$M/d" &
pd=$!
rc=0
wait "$pc" || rc=1
wait "$pd" || rc=1
((rc == 0)) || fail "concurrent concwrite runs failed"

if [[ $PFS_TEST_TARGET == peerfs ]]; then
	step "after a remount"
	pfs_remount "$M"
fi
"$cw" -V "${A[@]}" "$M/a"
"$cw" -V "${B[@]}" "$M/b"
"$cw" -V "${C[@]}" "$M/c"
"$cw" -V "${D[@]}" "$M/d"
pfs_umount "$M"
pfs_fsck
