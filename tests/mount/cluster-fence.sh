#!/usr/bin/env bash
# cluster-fence: a node whose device fails fences itself and stops
# beating, so its peers recover it, although its process lives on.
#   1. node 1 runs with a simulated device failure armed (PEERFS_FAULT
#      crash_io: from that write on its device is gone) and writes and
#      fsyncs files in d1 until a request fails: it is fenced.
#   2. its daemon still runs, but node 0 declares it dead within a few
#      seconds, backs out what it left in flight and releases its locks:
#      node 0 lists and reads d1 (every file whose fsync returned holds
#      its content) without waiting on node 1.
#   3. node 1's mount is taken down (it writes nothing more); node 1
#      mounts again and sees the same files; fsck finds nothing.
# timeout: 120
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 timeout
pfs_setup -s 256M -n 3

HB=heartbeat_ms=100,dead_ms=1000
M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1
pfs_mount m0 -o node=0,$HB
mkdir "$M0/d1"

step "node 1 writes until its device fails"
export PEERFS_FAULT=crash_io=400,mode=drop,seed=7
pfs_mount m1 -o node=1,$HB
unset PEERFS_FAULT
log1=${_PFS_LOG[$M1]}
: >synced
for ((i = 0; i < 5000; i++)); do
	printf 'file %d of node 1\n' "$i" >"$M1/d1/f$i" 2>/dev/null || break
	sync "$M1/d1/f$i" 2>/dev/null || break
	echo "f$i" >>synced
done
((i < 5000)) || fail "the armed device failure never came"
echo "node 1 failed after $(wc -l <synced) fsync'd files"
grep -q 'node fenced' "$log1" || fail "node 1 is not fenced: $(tail -n 5 "$log1")"
for ((k = 0; k < 50; k++)); do
	grep -q 'heartbeats stop' "$log1" && break
	sleep 0.1
done
grep -q 'heartbeats stop' "$log1" || fail "node 1 still beats after its fence"
_pfs_alive "${_PFS_PID[$M1]}" || fail "node 1's daemon exited"

step "node 0 recovers the fenced node"
log0=${_PFS_LOG[$M0]}
for ((k = 0; k < 300; k++)); do
	grep -q 'recovery of node 1: done' "$log0" && break
	sleep 0.1
done
grep -q 'recovery of node 1: done' "$log0" || fail "node 0 did not recover the fenced node 1"
grep -E 'node 1 is dead|recovery of node 1: (journal|done)' "$log0"
_pfs_alive "${_PFS_PID[$M1]}" || fail "node 1's daemon exited during its recovery"
timeout 20 ls "$M0/d1" >/dev/null || fail "node 0 cannot list d1 after the recovery"
while read -r f; do
	expect_eq "$(timeout 20 cat "$M0/d1/$f")" "file ${f#f} of node 1" "d1/$f on node 0"
done <synced
echo "node 0 reads all $(wc -l <synced) fsync'd files of node 1"

step "node 1 remounts"
fusermount3 -u "$M1" 2>/dev/null || fusermount3 -uz "$M1"
for ((k = 0; k < 100; k++)); do
	_pfs_alive "${_PFS_PID[$M1]}" || break
	sleep 0.1
done
_pfs_alive "${_PFS_PID[$M1]}" && fail "node 1's fenced daemon does not exit at unmount"
wait "${_PFS_PID[$M1]}" 2>/dev/null || true
unset "_PFS_PID[$M1]" "_PFS_KIND[$M1]"
pfs_mount m1 -o node=1,$HB
while read -r f; do
	expect_eq "$(cat "$M1/d1/$f")" "file ${f#f} of node 1" "d1/$f on node 1"
done <synced
pfs_umount "$M1"
pfs_umount "$M0"
pfs_fsck
