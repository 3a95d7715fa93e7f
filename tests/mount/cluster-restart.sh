#!/usr/bin/env bash
# cluster-restart: a dead node that mounts its slot again while it is
# still dead waits for its recovery, or is refused by option.
#   1. node 0 runs with recovery=manual.  Node 1 fsyncs a small file and
#      a 24 MiB file, then overwrites the big one with zeros (32 KiB writes,
#      which log their before-images) in one transaction and is killed (SIGKILL, tests/tools/killat) half-way
#      through the commit's in-place writes: 24 MiB of undo in flight.
#      Node 0 declares it dead; nobody recovers it yet.
#   2. node 1 mounts with restart_wait=0: refused with a message naming
#      the slot's state, non-zero exit, slot 1 untouched (still dead, same
#      generation, its journal still backed out later).
#   3. node 1 mounts with the default restart_wait: it waits (not mounted,
#      log says so) until `peerfsctl recover --node 1` backed it out and
#      released the slot, then mounts by itself; the fsync'd files are
#      intact, the big file is back to its fsync'd content.
#   4. node 2 joins with automatic recovery.  Node 1 is killed during a
#      stream of fsync'd writes and mounted again at once, whichever comes
#      first: its own takeover or its peers' recovery; every fsync'd file
#      survives; the nodes see one tree.
#   5. every node unmounts cleanly; fsck finds nothing.
# timeout: 240
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3
ctl=$(pfs_bin peerfsctl)
killat=$(pfs_tool killat)
chunkcheck=$(pfs_tool chunkcheck)
pfs_setup -s 512M -J 96M -n 4

HB=heartbeat_ms=200,dead_ms=1500
M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1 M2=$PFS_TEST_DIR/m2
pfs_mount m0 -o "node=0,recovery=manual,$HB"
pfs_mount m1 -o "node=1,commit_ms=600000,$HB"


node_state() {
	"$ctl" status "$PFS_IMAGE" | awk -v n="$1" 'f && $1 == n { print $2 } /^node +state/ { f = 1 }'
}
slot_line() {
	"$ctl" status "$PFS_IMAGE" | awk -v n="$1" '$1 == n && NF > 6 { print $2, $3; exit }'
}
wait_dead() {
	local i
	for ((i = 0; i < 150; i++)); do
		[[ $(node_state "$1") == dead ]] && return 0
		sleep 0.1
	done
	fail "node $1 was not declared dead"
}

step "node 1 dies half-way through a 24 MiB commit"
mkdir "$M1/d1"
echo "fsync'd by node 1" >"$M1/d1/small"
sync "$M1/d1/small"
head -c 24M /dev/urandom >big.orig
cp big.orig "$M1/d1/big"
sync "$M1/d1/big"
dd if=/dev/zero of="$M1/d1/big" bs=32K count=768 conv=notrunc status=none
pid1=${_PFS_PID[$M1]}
# The commit logs 24 MiB of before-images, then writes 24 MiB in place.
sync "$M1/d1/big" 2>/dev/null &
syncer=$!
"$killat" -t 60 "$pid1" $((36 << 20)) || fail "node 1 did not reach the middle of its commit"
wait "$syncer" 2>/dev/null || true
pfs_kill_daemon "$M1"
wait_dead 1
[[ $(node_state 1) == dead ]] || fail "node 1 not dead"
before=$(slot_line 1)
echo "slot 1 before: $before"

step "restart_wait=0: refused, nothing written"
rc=0
pfs_try_mount m1 -o "node=1,restart_wait=0,$HB" || rc=$?
((rc != 0 && rc != 124)) || fail "the mount of dead node 1 with restart_wait=0 was not refused (status $rc)"
((PFS_TRY_MOUNTED == 0)) || fail "node 1 mounted while it is dead"
[[ $PFS_TRY_OUT == *"declared dead"*"refusing to mount (restart_wait=0)"* ]] ||
	fail "unclear refusal: $PFS_TRY_OUT"
[[ $PFS_TRY_OUT == *"peerfsctl recover"* ]] || fail "the refusal does not say how to recover: $PFS_TRY_OUT"
expect_eq "$(node_state 1)" dead "node 1 after the refused mount"
expect_eq "$(slot_line 1)" "$before" "slot 1 record after the refused mount"

step "default: the mount waits for the recovery, then mounts"
opts="node=1,$HB"
_pfs_parse_mount_args -o "$opts"
_pfs_daemon_cmd "$M1"
log1=$PFS_TEST_DIR/peerfs.m1.log
echo "=== $(date +%T) ${_pfs_cmd[*]}" >>"$log1"
lines=$(wc -l <"$log1")
"${_pfs_cmd[@]}" >>"$log1" 2>&1 </dev/null &
pid1=$!
echo "$pid1 ${_pfs_cmd[0]}" >>"$PFS_TEST_DIR/.pfs-pids"
_PFS_PID[$M1]=$pid1 _PFS_KIND[$M1]=peerfs _PFS_LOG[$M1]=$log1
sleep 3
_pfs_alive "$pid1" || { tail -n 20 "$log1"; fail "the restarting node 1 exited instead of waiting"; }
! mountpoint -q "$M1" || fail "node 1 mounted while it is dead"
tail -n +"$((lines + 1))" "$log1" | grep -q 'declared dead and is not recovered yet: no peer recovers it.*waiting until its slot is released' ||
	fail "the waiting mount does not say what it waits for: $(tail -n 5 "$log1")"
expect_eq "$(slot_line 1)" "$before" "slot 1 record while node 1 waits"
"$ctl" recover "$PFS_IMAGE" --node 1 -k "$PFS_KEY" >recover.out 2>&1 || { cat recover.out; fail "peerfsctl recover failed"; }
cat recover.out
grep -Eq 'journal of slot 1: backout: [1-9][0-9]* transactions' recover.out ||
	fail "the recovery backed out nothing: the kill missed the commit"
for ((i = 0; i < 300; i++)); do
	mountpoint -q "$M1" && break
	_pfs_alive "$pid1" || { tail -n 20 "$log1"; fail "the restarting node 1 exited"; }
	sleep 0.1
done
mountpoint -q "$M1" || fail "node 1 did not mount after its recovery"
tail -n +"$((lines + 1))" "$log1" | grep -q 'released by its recovery after' ||
	fail "node 1's log does not show the wait ending"
expect_eq "$(cat "$M1/d1/small")" "fsync'd by node 1" "d1/small on node 1"
cmp big.orig "$M1/d1/big" || fail "d1/big is not its fsync'd content after the backout"
cmp big.orig "$M0/d1/big" || fail "d1/big differs on node 0"
"$chunkcheck" big.orig "$M0/d1/big" 1048576

step "node 1 killed during fsync'd writes and restarted at once; node 2 recovers automatically"
pfs_mount m2 -o "node=2,$HB"
for round in 1 2; do
	mkdir "$M1/s$round"
	: >"synced.$round"
	(
		i=0
		while :; do
			echo "round $round file $i" >"$M1/s$round/f$i"
			if ((i % 4 == 0)); then sync "$M1/s$round/f$i" && echo "$i" >>"synced.$round"; fi
			i=$((i + 1))
		done
	) 2>/dev/null &
	writer=$!
	sleep 1
	done0=$(grep -c 'recovery of node 1: done' "${_PFS_LOG[$M2]}" || true)
	pfs_kill_daemon "$M1"
	kill "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	# round 1: at once (a takeover of its own silent record, or a wait
	# if its peers declare it dead first); round 2: once node 2
	# recovered it.
	if ((round == 2)); then
		for ((i = 0; i < 300; i++)); do
			(($(grep -c 'recovery of node 1: done' "${_PFS_LOG[$M2]}" || true) > done0)) && break
			sleep 0.1
		done
		(($(grep -c 'recovery of node 1: done' "${_PFS_LOG[$M2]}" || true) > done0)) ||
			fail "node 2 did not recover node 1"
	fi
	pfs_mount m1 -o "node=1,$HB"
	n=0
	while read -r i; do
		expect_eq "$(cat "$M1/s$round/f$i")" "round $round file $i" "fsync'd s$round/f$i on node 1"
		expect_eq "$(cat "$M2/s$round/f$i")" "round $round file $i" "fsync'd s$round/f$i on node 2"
		n=$((n + 1))
	done <"synced.$round"
	((n > 0)) || fail "round $round: the writer synced nothing"
	echo "round $round: $n fsync'd files intact"
done
grep -E 'recovery of node 1|slot 1:' "${_PFS_LOG[$M2]}" "$log1" | tail -n 8 || true
pfs_manifest "$M0" full >manifest-0
pfs_manifest "$M1" full >manifest-1
pfs_manifest "$M2" full >manifest-2
cmp manifest-0 manifest-1 || fail "nodes 0 and 1 see different trees"
cmp manifest-0 manifest-2 || fail "nodes 0 and 2 see different trees"

step "unmount; fsck"
pfs_umount m1
pfs_umount m2
pfs_umount m0
pfs_fsck
echo "cluster-restart: ok"
