#!/usr/bin/env bash
# recovery-parallel: parallel backout of dead nodes (recovery/backout.c).
#   1. recovery_parallelism=0, 65 or x is refused by the daemon with a
#      message and nothing mounted; peerfsctl recover --max-parallelism 0
#      or x is a usage error (status 1).
#   2. node 0 runs with recovery_parallelism=4.  Nodes 1 and 2 (commit
#      only at fsync, data=undo) overwrite 8 MiB files in place in 32 KiB
#      writes (larger ones would move to new blocks, fs/file.c F6) over and
#      over, fsync after each, and are killed with SIGKILL inside their
#      next commits (tests/tools/killat).  Node
#      0 recovers both, logging its worker decision with its inputs; every
#      file holds the content of its last fsync or of the overwrite in
#      progress (never a mix: a dead transaction is backed out whole).
#      Up to four rounds, until a round's recovery backed out a dead
#      transaction with several workers (a kill inside a commit); while it
#      runs, peerfsctl status is polled for the backout progress (printed
#      when caught, not required: a backout takes tens of milliseconds).
#   3. the nodes remount, see the same tree, unmount; fsck finds nothing.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 md5sum
ctl=$(pfs_bin peerfsctl)
killat=$(pfs_tool killat)
pfs_setup -s 1G -n 3 -J 64M

M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1 M2=$PFS_TEST_DIR/m2

step "bad parallelism values are refused"
for v in 0 65 x -1; do
	rc=0
	pfs_try_mount "$M0" -o "node=0,recovery_parallelism=$v" || rc=$?
	((rc != 0 && rc != 124 && rc < 128)) || fail "recovery_parallelism=$v: status $rc"
	((PFS_TRY_MOUNTED == 0)) || fail "recovery_parallelism=$v: mounted"
	grep -q "recovery_parallelism=$v: expected 1..64" <<<"$PFS_TRY_OUT" ||
		fail "recovery_parallelism=$v: unclear message: $PFS_TRY_OUT"
	rc=0
	out=$("$ctl" recover "$PFS_IMAGE" --node 1 --max-parallelism "$v" 2>&1) || rc=$?
	((rc == 1)) || fail "peerfsctl --max-parallelism $v: status $rc"
	grep -q -- "--max-parallelism $v: expected 1..64" <<<"$out" ||
		fail "peerfsctl --max-parallelism $v: unclear message: $out"
done
echo "ok: refused with a message"

# Four 8 MiB patterns, outside the volume.
for p in 0 1 2 3; do
	head -c 8M /dev/urandom >"pat$p"
	sums[p]=$(md5sum <"pat$p" | cut -d' ' -f1)
done

# A worker for every 16 blocks (not 256): a node killed early in a
# commit has logged only part of its images, and it should still count.
export PEERFS_BACKOUT_MIN_BLOCKS=16
pfs_mount m0 -o node=0,recovery_parallelism=4,dead_ms=1000,heartbeat_ms=100
unset PEERFS_BACKOUT_MIN_BLOCKS
log0=${_PFS_LOG[$M0]}

# writer MNT DIR: overwrite DIR/f0..f2 in turn with the next pattern,
# fsync, then append "FILE PATTERN" to DIR.synced (outside the volume).
writer() {
	local mnt=$1 d=$2 k=0
	while :; do
		local f=f$((k % 3)) p=$((k % 4))
		echo "$f $p" >"$PFS_TEST_DIR/$d.next"
		dd if="pat$p" of="$mnt/$d/$f" bs=32K conv=notrunc,fsync status=none
		echo "$f $p" >>"$PFS_TEST_DIR/$d.synced"
		k=$((k + 1))
	done
}

# check DIR: every file holds its last fsync'd pattern, or the one being
# written when the node died.
check_dir() {
	local d=$1 f want next got
	for f in f0 f1 f2; do
		want=$(awk -v f="$f" '$1 == f { p = $2 } END { print p }' "$PFS_TEST_DIR/$d.synced")
		[[ -n $want ]] || continue
		got=$(md5sum <"$M0/$d/$f" | cut -d' ' -f1)
		next=$(awk -v f="$f" '$1 == f { print $2 }' "$PFS_TEST_DIR/$d.next")
		if [[ $got != "${sums[want]}" && ( -z $next || $got != "${sums[next]}" ) ]]; then
			fail "$d/$f: neither its fsync'd pattern $want nor the one in progress (${next:-none})"
		fi
	done
}

parallel_seen=0 progress_seen=0
for round in 1 2 3 4; do
	step "round $round: nodes 1 and 2 overwrite and die together"
	pfs_mount m1 -o node=1,commit_ms=600000,data=undo
	pfs_mount m2 -o node=2,commit_ms=600000,data=undo
	for d in a$round b$round; do
		mkdir "$M0/$d"
		for f in f0 f1 f2; do cp pat3 "$M0/$d/$f"; done
		: >"$PFS_TEST_DIR/$d.synced"
		: >"$PFS_TEST_DIR/$d.next"
	done
	sync "$M0/a$round/f0"
	writer "$M1" a$round 2>/dev/null &
	w1=$!
	writer "$M2" b$round 2>/dev/null &
	w2=$!
	sleep 1
	lines=$(wc -l <"$log0")
	p1=${_PFS_PID[$M1]} p2=${_PFS_PID[$M2]}
	# Each node is killed once it has written 12 MiB more: inside the
	# first commit that follows (8 MiB of before-images logged, then the
	# in-place writes), which the writer's next fsync starts.
	"$killat" -t 30 "$p1" $((12 << 20)) >/dev/null &
	k1=$!
	"$killat" -t 30 "$p2" $((12 << 20)) >/dev/null &
	k2=$!
	wait "$k1" "$k2" || true
	kill -KILL "$p1" "$p2" 2>/dev/null || true
	pfs_kill_daemon "$M1"
	pfs_kill_daemon "$M2"
	kill "$w1" "$w2" 2>/dev/null || true
	wait "$w1" "$w2" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		if [[ $progress_seen == 0 ]] && "$ctl" status "$PFS_IMAGE" 2>/dev/null | grep -q 'undo blocks'; then
			"$ctl" status "$PFS_IMAGE" | grep -A3 'backout:' || true
			progress_seen=1
		fi
		rec=$(tail -n +$((lines + 1)) "$log0")
		grep -q 'recovery of node 1: done' <<<"$rec" && grep -q 'recovery of node 2: done' <<<"$rec" && break
		sleep 0.05
	done
	grep -E 'recovery( of node [12])?: |backout: ' <<<"$rec" || true
	grep -q 'recovery of node 1: done' <<<"$rec" || fail "node 0 did not recover node 1"
	grep -q 'recovery of node 2: done' <<<"$rec" || fail "node 0 did not recover node 2"
	if grep -q 'backout: ' <<<"$rec"; then
		grep -q 'backout: .* undo blocks (largest .*max_parallelism 4, [0-9]* CPUs, 16 blocks per worker' <<<"$rec" ||
			fail "the worker decision is not logged with its inputs"
	fi
	check_dir a$round
	check_dir b$round
	echo "round $round: $(wc -l <"$PFS_TEST_DIR/a$round.synced") + $(wc -l <"$PFS_TEST_DIR/b$round.synced") fsync'd overwrites intact"
	if grep -Eq 'backout: [1-9][0-9]* dead transactions? in [12] slots?, .*: workers [2-9]' <<<"$rec"; then
		parallel_seen=1
		break
	fi
done
((parallel_seen)) || fail "no round killed a node inside a commit: no parallel backout happened"
((progress_seen)) && echo "backout progress seen in peerfsctl status" || echo "backout too quick to see in peerfsctl status"

step "remount; same tree; fsck"
pfs_mount m1 -o node=1
pfs_manifest "$M0" full >manifest-0
pfs_manifest "$M1" full >manifest-1
cmp manifest-0 manifest-1 || fail "nodes 0 and 1 see different trees"
pfs_umount m1
pfs_umount m0
pfs_fsck
echo "recovery-parallel: ok"
