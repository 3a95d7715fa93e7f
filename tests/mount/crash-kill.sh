#!/usr/bin/env bash
# crash-kill: real kills of the daemon under load.  Each iteration mounts
# the volume (data=undo or ordered, alternately; a random commit_ms),
# starts crashwl's mixed workload in a fresh directory and fsx on a file
# beside it, kills the daemon with SIGKILL after a random delay, detaches
# the dead mount, and mounts again: recovery of slot 0's journal must
# succeed, the directory must be in a state crashwl verify accepts (every
# operation acknowledged before a completed fsync present, nothing half
# done, see tests/tools/crashwl.c), the directory of the previous
# iteration must still verify, the unmount must be clean and fsck.peerfs
# -n must find nothing.  One iteration in five also kills the recovering
# daemon during its mount, so recovery runs twice.  Recovering mounts back
# out serially or with four workers, by pairs of iterations.
#
# PFS_KILL_ITERS iterations (default 20, about a minute; an iteration
# takes 2-3 s, so the time limit allows PFS_KILL_ITERS=500); PFS_KILL_SEED
# fixes the seed (random unless set; printed, with each iteration's delay
# and seeds; the moment of a kill still depends on timing).
# tests/soak-kill.sh runs many iterations and prints a summary.
# timeout: 2400
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 awk
crashwl=$(pfs_tool crashwl)
fsx=$(pfs_tool fsx)
peerfs=$(pfs_bin peerfs)
fsck=$(pfs_bin fsck.peerfs)

iters=${PFS_KILL_ITERS:-20}
[[ $iters =~ ^[0-9]+$ && $iters -gt 0 ]] || fail "PFS_KILL_ITERS must be a positive number"
seed=${PFS_KILL_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 ))}
echo "crash-kill: PFS_KILL_SEED=$seed PFS_KILL_ITERS=$iters"

MNT=$PFS_TEST_DIR/m
mkdir -p "$MNT"
export PEERFS_BACKOUT_MIN_BLOCKS=1
# The image stays on the test directory's file system: real flushes make
# commits long enough for kills to land inside them.
FAST=$PFS_TEST_DIR/work
mkdir -p "$FAST"

is_mounted() {
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

KPID= WPID= FPID= CUR=
_kill_cleanup() {
	local rc=$1 p
	for p in $WPID $FPID $KPID; do
		_pfs_alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	if ((rc != 0 && rc != 77)) && [[ -n $CUR && -f $FAST/killed.img ]]; then
		echo "crash-kill: stopped in iteration $CUR; the image after the kill and the logs are in $PFS_TEST_DIR/last" >&2
		mkdir -p "$PFS_TEST_DIR/last"
		cp --sparse=always "$FAST/killed.img" "$FAST"/*.log "$PFS_TEST_DIR/last/" 2>/dev/null
	fi
	is_mounted "$MNT" && fusermount3 -uz "$MNT" 2>/dev/null
	return 0
}
trap '_krc=$?; _kill_cleanup $_krc; (exit $_krc); _pfs_on_exit' EXIT
PFS_IMAGE=$FAST/vol.img

step "volume"
pfs_setup -s 512M -n 2 -J 8M

# kill_start OPTS: the daemon in the background, killed later with SIGKILL.
kill_start() {
	local deadline=$((SECONDS + 30))
	"$peerfs" "$PFS_IMAGE" "$MNT" -f -o "keyfile=$PFS_KEY,node=0,heartbeat_ms=10,dead_ms=20,$1" \
		>>"$FAST/daemon.log" 2>&1 </dev/null &
	KPID=$!
	echo "$KPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
	until is_mounted "$MNT"; do
		_pfs_alive "$KPID" || { tail -n 20 "$FAST/daemon.log" >&2; fail "the daemon exited before mounting"; }
		((SECONDS < deadline)) || fail "not mounted after 30s"
		sleep 0.01
	done
}

kill_daemon() {
	kill -KILL "$KPID" 2>/dev/null || true
	wait "$KPID" 2>/dev/null || true
	KPID=
	fusermount3 -uz "$MNT" 2>/dev/null || true
	! is_mounted "$MNT" || umount -l "$MNT"
}

# A random delay in seconds (from RANDOM): LO..HI milliseconds.
rand_delay() {
	local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
	printf '%d.%03d\n' $((ms / 1000)) $((ms % 1000))
}

RANDOM=$seed
backouts=0 ops=0 twice=0 prev=
t_start=$SECONDS
for ((i = 1; i <= iters; i++)); do
	CUR=$i
	data=undo
	((i % 2)) || data=ordered
	commit_ms=$(( (RANDOM % 4 == 0) ? 5 : (RANDOM % 3 == 0 ? 1000 : 50 + RANDOM % 200) ))
	wseed=$((seed * 1000 + i))
	delay=$(rand_delay 20 2500)
	echo "-- iteration $i: data=$data commit_ms=$commit_ms crashwl seed $wseed, kill after ${delay}s"
	: >"$FAST/daemon.log"

	kill_start "data=$data,commit_ms=$commit_ms"
	mkdir "$MNT/w$i"
	"$crashwl" -q -N 0 -s "$wseed" mixed "$MNT/w$i" "$FAST/w$i.log" >"$FAST/crashwl.out" 2>&1 &
	WPID=$!
	"$fsx" -q -N 100000000 -S "$wseed" -l 4M -o 64K "$MNT/fsx.$i" >"$FAST/fsx.out" 2>&1 &
	FPID=$!
	sleep "$delay"
	_pfs_alive "$WPID" || { cat "$FAST/crashwl.out" >&2; fail "crashwl ended before the kill"; }
	kill_daemon
	rc=0
	wait "$WPID" || rc=$?
	WPID=
	((rc == 3)) || { cat "$FAST/crashwl.out" >&2; fail "crashwl exited with $rc after the kill (3 expected)"; }
	wait "$FPID" || true
	FPID=
	cp --sparse=always "$PFS_IMAGE" "$FAST/killed.img"

	if ((RANDOM % 5 == 0)); then
		# Kill the recovering daemon too, during its mount.
		d2=$(rand_delay 150 400)
		"$peerfs" "$PFS_IMAGE" "$MNT" -f \
			-o "keyfile=$PFS_KEY,node=0,heartbeat_ms=10,dead_ms=20,recovery_parallelism=4" \
			>>"$FAST/daemon.log" 2>&1 </dev/null &
		KPID=$!
		echo "$KPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
		sleep "$d2"
		kill_daemon
		twice=$((twice + 1))
		echo "   killed the recovering daemon after ${d2}s"
	fi

	log=$PFS_TEST_DIR/peerfs.m.log
	lines=0
	[[ -f $log ]] && lines=$(wc -l <"$log")
	# The recovery backs out serially or with four workers, alternately
	# (PEERFS_BACKOUT_MIN_BLOCKS=1: even small transactions are shared).
	par=$(( (i / 2) % 2 ? 4 : 1 ))
	pfs_mount "$MNT" -o "node=0,heartbeat_ms=10,dead_ms=20,data=$data,recovery_parallelism=$par"
	rec=$(tail -n +$((lines + 1)) "$log" | grep -E 'journal of slot 0: (scan|backout):' || true)
	[[ -n $rec ]] && echo "$rec" | sed 's/^.*journal/   journal/'
	if grep -Eq 'backout: [1-9][0-9]* transactions' <<<"$rec"; then
		backouts=$((backouts + 1))
	fi
	if ! "$crashwl" verify -m "$data" mixed "$MNT/w$i" "$FAST/w$i.log" >"$FAST/verify.out" 2>&1; then
		cat "$FAST/verify.out"
		cp "$FAST/w$i.log" "$PFS_TEST_DIR/"
		fail "iteration $i: crashwl verify failed (PFS_KILL_SEED=$seed)"
	fi
	sed 's/^/   /' "$FAST/verify.out"
	n=$(sed -n 's/.*last begun \([0-9]*\).*/\1/p' "$FAST/verify.out")
	ops=$((ops + ${n:-0}))
	if [[ -n $prev ]]; then
		# The previous iteration's directory went through this crash too.
		"$crashwl" verify -q -m "$prev_data" mixed "$MNT/w$prev" "$FAST/w$prev.log" ||
			fail "iteration $i: the directory of iteration $prev no longer verifies"
		rm -rf "$MNT/w$prev" "$MNT/fsx.$prev"
		rm -f "$FAST/w$prev.log"
	fi
	prev=$i prev_data=$data
	pfs_umount "$MNT"
	if ! "$fsck" -n -k "$PFS_KEY" "$PFS_IMAGE" >"$FAST/fsck.out" 2>&1; then
		cat "$FAST/fsck.out"
		fail "iteration $i: fsck.peerfs -n found problems (PFS_KILL_SEED=$seed)"
	fi
	rm -f "$FAST/killed.img"
	CUR=
done
echo "crash-kill: $iters iterations, $backouts recoveries backed out a transaction, $twice killed during recovery, $ops operations verified, 0 failed ($((SECONDS - t_start))s, PFS_KILL_SEED=$seed)"
