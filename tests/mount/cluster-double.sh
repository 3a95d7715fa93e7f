#!/usr/bin/env bash
# cluster-double: the counterpart dies in the middle of a recovery.
#   1. node 0 (recovery=manual) watches; node 2 recovers automatically.
#      Node 1 fsyncs files and a 32 MiB file, overwrites it with zeros in
#      32 KiB writes (logged before-images) in one transaction and is killed (SIGKILL, tests/tools/killat) half-way
#      through the commit's in-place writes: 32 MiB of undo in flight.
#   2. node 2 declares node 1 dead, registers as its counterpart, takes its
#      slot and is itself killed after writing 12 MiB of node 1's
#      before-images: node 1's journal is half backed out, not marked
#      clean, its slot record says RECOVERING, its locks are retained.
#   3. node 1 mounts again: it waits, naming its dead counterpart.
#   4. node 3 mounts: it declares node 2 dead, takes node 1's registration
#      over (its counterpart is gone), backs node 1's transaction out again
#      from the start (idempotent), recovers node 2, and only then serves.
#      Node 1's waiting mount then completes.
#   5. every node reads the fsync'd content (the big file as it was
#      fsync'd), the same tree everywhere; clean unmounts; fsck.
# timeout: 240
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3
ctl=$(pfs_bin peerfsctl)
killat=$(pfs_tool killat)
pfs_setup -s 768M -J 128M -n 4

HB=heartbeat_ms=200,dead_ms=1500
M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1 M2=$PFS_TEST_DIR/m2 M3=$PFS_TEST_DIR/m3
pfs_mount m0 -o "node=0,recovery=manual,$HB"
pfs_mount m1 -o "node=1,commit_ms=600000,$HB"
pfs_mount m2 -o "node=2,$HB"

slot_state() {
	"$ctl" status "$PFS_IMAGE" | awk -v n="$1" '$1 == n && NF > 6 { print $2; exit }'
}

step "node 1 writes, fsyncs, and dies half-way through a 32 MiB commit"
mkdir "$M1/d1" "$M0/d0"
for ((i = 0; i < 20; i++)); do echo "node 1 file $i" >"$M1/d1/f$i"; done
sync "$M1/d1"
head -c 32M /dev/urandom >big.orig
cp big.orig "$M1/d1/big"
sync "$M1/d1/big"
dd if=/dev/zero of="$M1/d1/big" bs=32K count=1024 conv=notrunc status=none
echo "never committed" >"$M1/d1/uncommitted"
pid1=${_PFS_PID[$M1]} pid2=${_PFS_PID[$M2]}
log2=${_PFS_LOG[$M2]}
# Node 2 is killed once it wrote 12 MiB more than now: its heartbeats
# and slot writes are a few KiB, the rest is node 1's before-images.
"$killat" -t 60 "$pid2" $((12 << 20)) >killat2.out 2>&1 &
killer2=$!
sync "$M1/d1/big" 2>/dev/null &
syncer=$!
"$killat" -t 60 "$pid1" $((48 << 20)) || fail "node 1 did not reach the middle of its commit"
wait "$syncer" 2>/dev/null || true
pfs_kill_daemon "$M1"

step "node 2 recovers node 1 and is killed mid-backout"
wait "$killer2" || { cat killat2.out; tail -n 20 "$log2"; fail "node 2 did not write node 1's before-images"; }
cat killat2.out
pfs_kill_daemon "$M2"
grep 'recovery of node 1\|journal of slot 1' "$log2"
grep -q 'recovery of node 1: took over slot 1' "$log2" || fail "node 2 did not take node 1's slot"
grep -Eq 'journal of slot 1: scan: .* 1 in flight with [0-9]{4,} undo blocks' "$log2" ||
	fail "node 2 found no large in-flight transaction of node 1"
! grep -q 'recovery of node 1: done\|journal of slot 1: backout:' "$log2" ||
	fail "node 2 finished the backout before it was killed"
expect_eq "$(slot_state 1)" recovering "slot 1 on disk after its counterpart died"
# Node 0 works in its own directory meanwhile.
for ((i = 0; i < 20; i++)); do echo "node 0 file $i" >"$M0/d0/g$i"; done
expect_eq "$(cat "$M0/d0/g19")" "node 0 file 19" "node 0's own work while node 1 is half recovered"

step "node 1 restarts: it waits"
_pfs_parse_mount_args -o "node=1,$HB"
_pfs_daemon_cmd "$M1"
log1=$PFS_TEST_DIR/peerfs.m1.log
echo "=== $(date +%T) ${_pfs_cmd[*]}" >>"$log1"
lines=$(wc -l <"$log1")
"${_pfs_cmd[@]}" >>"$log1" 2>&1 </dev/null &
pid1=$!
echo "$pid1 ${_pfs_cmd[0]}" >>"$PFS_TEST_DIR/.pfs-pids"
_PFS_PID[$M1]=$pid1 _PFS_KIND[$M1]=peerfs _PFS_LOG[$M1]=$log1
# Node 0 declares node 2 dead after dead_ms: the restart then names its
# counterpart as gone.
for ((i = 0; i < 200; i++)); do
	tail -n +"$((lines + 1))" "$log1" | grep -q 'that node died too' && break
	sleep 0.1
done
tail -n +"$((lines + 1))" "$log1" | grep -q 'node 2 recovers it as its counterpart; waiting' ||
	fail "node 1's restart does not name its counterpart: $(tail -n 3 "$log1")"
tail -n +"$((lines + 1))" "$log1" | grep -q 'node 2 recovers it as its counterpart (that node died too' ||
	fail "node 1's restart does not name its dead counterpart: $(tail -n 3 "$log1")"
! mountpoint -q "$M1" || fail "node 1 mounted while half recovered"

step "node 3 mounts: it takes the recovery over and finishes it before serving"
pfs_mount m3 -o "node=3,$HB"
log3=${_PFS_LOG[$M3]}
grep 'recovery of node\|journal of slot [12]\|is dead' "$log3"
grep -q 'recovery of node 1: done' "$log3" || fail "node 3 did not recover node 1 before serving"
grep -q 'recovery of node 2: done' "$log3" || fail "node 3 did not recover node 2 before serving"
grep -Eq 'journal of slot 1: backout: 1 transactions, [0-9]{4,} blocks restored' "$log3" ||
	fail "node 3 did not back node 1's transaction out again"
awk '/recovery of node 1: done/ { d = NR } /mounted / { m = NR } END { exit !(d && m && d < m) }' "$log3" ||
	fail "node 3 served before node 1 was recovered"
for ((i = 0; i < 300; i++)); do
	mountpoint -q "$M1" && break
	_pfs_alive "$pid1" || { tail -n 20 "$log1"; fail "the restarting node 1 exited"; }
	sleep 0.1
done
mountpoint -q "$M1" || fail "node 1 did not mount after its recovery"

step "every node reads what was fsync'd, nothing else"
for m in "$M0" "$M1" "$M3"; do
	cmp big.orig "$m/d1/big" || fail "d1/big on $m is not its fsync'd content"
	for ((i = 0; i < 20; i++)); do
		expect_eq "$(cat "$m/d1/f$i")" "node 1 file $i" "d1/f$i on $m"
	done
	[[ ! -e $m/d1/uncommitted ]] || fail "node 1's uncommitted file exists on $m"
	expect_eq "$(cat "$m/d0/g19")" "node 0 file 19" "d0/g19 on $m"
done
pfs_manifest "$M0" full >manifest-0
pfs_manifest "$M1" full >manifest-1
pfs_manifest "$M3" full >manifest-3
cmp manifest-0 manifest-1 || fail "nodes 0 and 1 see different trees"
cmp manifest-0 manifest-3 || fail "nodes 0 and 3 see different trees"
expect_eq "$("$ctl" status "$PFS_IMAGE" | sed -n 's/^locks: .*, \([0-9]*\) retained by dead nodes$/\1/p')" 0 "locks retained by dead nodes"

step "unmount; fsck"
pfs_umount m1
pfs_umount m3
pfs_umount m0
pfs_fsck
echo "cluster-double: ok"
