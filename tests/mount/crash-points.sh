#!/usr/bin/env bash
# timeout: 600
# crash-points: simulated power loss at chosen device writes and flushes.
# For each workload of crashwl and each data mode, a first run without
# faults counts the writes and flushes the daemon issues from mount to
# unmount (PEERFS_IO_COUNT_FILE); then, for a set of crash points P in
# 1..count, a fresh copy of the volume is mounted with
# PEERFS_FAULT="crash_io=P,mode=M,seed=S" (M cycling through random, keep,
# drop and tear; S fixed per point), the workload runs until the crash
# fences the daemon (or to its end, the crash then coming at unmount),
# the daemon is killed and the mount lazily detached.  At every fourth
# point the recovering mount is crashed as well, at one of its first 24
# writes and flushes (inside the backout, the new log or the first
# commit).  Then the volume is mounted again without faults: the journal
# of slot 0 is recovered, the directory must be in a state crashwl verify
# accepts (prefix consistency and every fsync'd operation, see
# tests/tools/crashwl.c), the unmount must be clean and fsck.peerfs -n
# must find nothing.  data=ordered is checked for metadata atomicity and
# fsync'd data (crashwl verify -m ordered).  Recovering mounts back out
# with 1 or 4 workers (by crash mode, see recovery_par).
#
# Points: a stride per workload that keeps the test near three minutes;
# every point with PFS_LONG=1 (about half an hour:
# PFS_LONG=1 PFS_TIMEOUT_SCALE=10 tests/run.sh crash-points).  The stride
# offsets and the workload seeds come from PFS_CRASH_SEED (random unless
# set; printed).  Each failure prints the PFS_CRASH_ONLY value that reruns
# it alone (WORKLOAD:DATA:POINT:MODE:SEED:WLSEED[:POINT2]) and keeps its
# images in fail-N/; PFS_CRASH_SETS="WL DATA POINTS,..." replaces the list
# of workloads.  Commits happen only at fsync and unmount
# (commit_ms=600000) and the heartbeat beats once, so a workload issues
# the same writes and flushes in the same order at every run.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 awk
crashwl=$(pfs_tool crashwl)
peerfs=$(pfs_bin peerfs)
fsck=$(pfs_bin fsck.peerfs)

MNT=$PFS_TEST_DIR/m
mkdir -p "$MNT"

# Images live on a tmpfs: the daemon flushes at every commit.
FAST=$PFS_TEST_DIR/fast
mkdir -p "$FAST"
mount -t tmpfs -o size=1G,mode=0700 crash-points "$FAST"
CUR_ID=
_crash_cleanup() {
	local rc=$1
	if ((rc != 0 && rc != 77)) && [[ -n $CUR_ID && -f $FAST/crashed.img ]]; then
		echo "crash-points: stopped during iteration $CUR_ID; its crashed image and logs are in $PFS_TEST_DIR/last" >&2
		mkdir -p "$PFS_TEST_DIR/last"
		cp --sparse=always "$FAST/crashed.img" "$FAST/wl.log" "$FAST/crash.log" "$PFS_TEST_DIR/last/" 2>/dev/null
	fi
	if [[ -n ${CPID:-} ]] && _pfs_alive "$CPID"; then
		kill -KILL "$CPID" 2>/dev/null
	fi
	is_mounted "$MNT" && fusermount3 -uz "$MNT" 2>/dev/null
	is_mounted "$FAST" && umount -l "$FAST"
}
trap '_crc=$?; _crash_cleanup $_crc; (exit $_crc); _pfs_on_exit' EXIT
PFS_IMAGE=$FAST/vol.img

CRASH_OPTS=commit_ms=600000,heartbeat_ms=600000,dead_ms=1200000
# Mounting a slot left MOUNTED watches its heartbeat for two periods of
# the mounting daemon's heartbeat_ms first.
RECOVER_OPTS=node=0,heartbeat_ms=10,dead_ms=20

seed=${PFS_CRASH_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 ))}
echo "crash-points: PFS_CRASH_SEED=$seed${PFS_LONG:+ PFS_LONG=$PFS_LONG}"

step "base volume"
pfs_setup -s 64M -n 2 -J 4M
pfs_mount "$MNT" -o node=0
mkdir "$MNT/w"
pfs_umount "$MNT"
cp --sparse=always "$PFS_IMAGE" "$FAST/base.img"

# Is something mounted on $1?  From the mount table: a fenced daemon
# fails even the stat of its root, which mountpoint(1) needs.
is_mounted() {
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# Recovering mounts back out with 1 (serial) or 4 workers, by crash mode
# (random and drop: 4; keep and tear: 1); PEERFS_BACKOUT_MIN_BLOCKS=1 lets
# the small transactions of the workloads use several workers.
export PEERFS_BACKOUT_MIN_BLOCKS=1
recovery_par() {
	case ${1%%,*} in
	random|drop) echo 4 ;;
	*) echo 1 ;;
	esac
}

# crash_start FAULT DATA [keep]: mount a fresh copy of the base volume
# (with "keep": the crashed volume as it is, its slot left MOUNTED) with
# the fault armed.  0 when mounted, 1 when the daemon exited first.
CPID=
crash_start() {
	local fault=$1 data=$2 deadline=$((SECONDS + 30)) opts=$CRASH_OPTS
	if [[ ${3:-} != keep ]]; then
		rm -f "$PFS_IMAGE"
		cp --sparse=always "$FAST/base.img" "$PFS_IMAGE"
	else
		opts=commit_ms=600000,heartbeat_ms=10,dead_ms=20,recovery_parallelism=$(recovery_par "${fault#*mode=}")
	fi
	PEERFS_FAULT=$fault "$peerfs" "$PFS_IMAGE" "$MNT" -f \
		-o "keyfile=$PFS_KEY,node=0,data=$data,$opts" >"$FAST/crash.log" 2>&1 </dev/null &
	CPID=$!
	echo "$CPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
	until is_mounted "$MNT"; do
		if ! _pfs_alive "$CPID"; then
			wait "$CPID" || true
			CPID=
			return 1
		fi
		((SECONDS < deadline)) || fail "crash run: $MNT not mounted after 30s"
		sleep 0.01
	done
	return 0
}

# crash_stop: a fenced daemon is killed and its mount detached; one that
# has not crashed yet is unmounted (the crash point may lie in the
# unmount).  Either way the daemon is gone afterwards.
crash_stop() {
	local deadline=$((SECONDS + 30))
	[[ -n $CPID ]] || return 0
	if grep -q 'simulated crash' "$FAST/crash.log"; then
		kill -KILL "$CPID" 2>/dev/null || true
		wait "$CPID" 2>/dev/null || true
		fusermount3 -uz "$MNT" 2>/dev/null || true
	! is_mounted "$MNT" || umount -l "$MNT"
	else
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
		while _pfs_alive "$CPID"; do
			if ((SECONDS >= deadline)); then
				kill -KILL "$CPID" 2>/dev/null || true
				break
			fi
			sleep 0.01
		done
		wait "$CPID" 2>/dev/null || true
	fi
	CPID=
	! is_mounted "$MNT" || fail "$MNT still mounted after the crash run"
}

# COUNT: writes and flushes of one complete run of workload $1 at data=$2.
COUNT=
count_ios() {
	local wl=$1 data=$2 wseed=$3 rc=0
	rm -f "$FAST/count"
	rm -f "$PFS_IMAGE"
	cp --sparse=always "$FAST/base.img" "$PFS_IMAGE"
	PEERFS_IO_COUNT_FILE=$FAST/count "$peerfs" "$PFS_IMAGE" "$MNT" -f \
		-o "keyfile=$PFS_KEY,node=0,data=$data,$CRASH_OPTS" >"$FAST/count.log" 2>&1 </dev/null &
	CPID=$!
	echo "$CPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
	local deadline=$((SECONDS + 30))
	until is_mounted "$MNT"; do
		_pfs_alive "$CPID" || { cat "$FAST/count.log" >&2; fail "count run: mount failed"; }
		((SECONDS < deadline)) || fail "count run: not mounted after 30s"
		sleep 0.01
	done
	"$crashwl" -q -s "$wseed" "$wl" "$MNT/w" "$FAST/wl.log" || fail "count run of $wl failed"
	fusermount3 -u "$MNT"
	while _pfs_alive "$CPID"; do sleep 0.01; done
	wait "$CPID" || rc=$?
	CPID=
	((rc == 0)) || { tail "$FAST/count.log" >&2; fail "count run: daemon exited with $rc"; }
	# The complete run is itself checked: the state after the last operation.
	pfs_mount "$MNT" -o "$RECOVER_OPTS,data=$data"
	"$crashwl" verify -c -q -m "$data" "$wl" "$MNT/w" "$FAST/wl.log" ||
		fail "$wl/$data: the complete run without faults does not verify"
	pfs_umount "$MNT"
	COUNT=$(sed -n 's/.* wf=\([0-9]*\) .*/\1/p' "$FAST/count")
}

failures=0
fail_max=${PFS_CRASH_FAIL_MAX:-5}

# Record a failed iteration: keep its images and logs, print how to rerun it.
iter_failed() {
	local id=$1 why=$2 keep=$PFS_TEST_DIR/fail-$((failures + 1))
	failures=$((failures + 1))
	mkdir -p "$keep"
	cp --sparse=always "$FAST/crashed.img" "$keep/crashed.img" 2>/dev/null || true
	cp --sparse=always "$PFS_IMAGE" "$keep/recovered.img" 2>/dev/null || true
	cp "$PFS_KEY" "$FAST/wl.log" "$FAST/crash.log" "$FAST"/*.out "$keep/" 2>/dev/null || true
	echo "FAILED iteration $id: $why"
	echo "  kept in $keep; rerun: PFS_CRASH_ONLY=$id tests/run.sh crash-points"
	for f in "$FAST/verify.out" "$FAST/fsck.out"; do
		[[ -s $f ]] && sed 's/^/    /' "$f" | head -n 40
	done
	((failures < fail_max)) || fail "$failures failed iterations; stopping"
}

# iterate WL DATA POINT MODE SEED WLSEED [POINT2]: one crash and
# recovery; with POINT2, the recovering mount crashes too, at its write
# or flush POINT2 (mode and seed as the first), before the final one.
# Sets it_crashed, it_backout, it_second for the statistics.
iterate() {
	local wl=$1 data=$2 point=$3 mode=$4 cseed=$5 wseed=$6 point2=${7:-}
	local id=$wl:$data:$point:$mode:$cseed:$wseed${7:+:$7} rc=0 mounted=1
	it_crashed=0 it_backout=0 it_second=0
	CUR_ID=$id
	rm -f "$FAST/crashed.img"
	: >"$FAST/wl.log"
	rm -f "$FAST"/*.out
	crash_start "crash_io=$point,mode=$mode,seed=$cseed" "$data" || mounted=0
	if ((mounted)); then
		"$crashwl" -q -s "$wseed" "$wl" "$MNT/w" "$FAST/wl.log" >"$FAST/run.out" 2>&1 || rc=$?
		if ((rc != 0 && rc != 3)); then
			crash_stop
			iter_failed "$id" "the workload failed with status $rc (not an I/O error)"
			return 0
		fi
		crash_stop
	fi
	if grep -q 'simulated crash' "$FAST/crash.log"; then
		it_crashed=1
	elif ((!mounted)); then
		iter_failed "$id" "the crash run did not mount and did not crash: $(tail -n 3 "$FAST/crash.log")"
		return 0
	elif ((rc == 3)); then
		iter_failed "$id" "the workload met I/O errors without a crash"
		return 0
	fi
	cp --sparse=always "$PFS_IMAGE" "$FAST/crashed.img"

	if [[ -n $point2 ]]; then
		mv "$FAST/crash.log" "$FAST/crash1.log"
		if crash_start "crash_io=$point2,mode=$mode,seed=$cseed" "$data" keep; then
			crash_stop
		fi
		grep -q 'simulated crash' "$FAST/crash.log" && it_second=1
		cat "$FAST/crash.log" >>"$FAST/crash1.log"
		mv "$FAST/crash1.log" "$FAST/crash.log"
	fi

	local log=$PFS_TEST_DIR/peerfs.m.log lines=0
	[[ -f $log ]] && lines=$(wc -l <"$log")
	pfs_mount "$MNT" -o "$RECOVER_OPTS,data=$data,recovery_parallelism=$(recovery_par "$mode")"
	local rec
	rec=$(tail -n +$((lines + 1)) "$log")
	if grep -Eq 'journal of slot 0: backout: [1-9][0-9]* transactions' <<<"$rec"; then
		it_backout=1
	fi
	if ! "$crashwl" verify -m "$data" "$wl" "$MNT/w" "$FAST/wl.log" >"$FAST/verify.out" 2>&1; then
		pfs_umount "$MNT"
		iter_failed "$id" "crashwl verify failed after recovery"
		return 0
	fi
	pfs_umount "$MNT"
	if ! "$fsck" -n -k "$PFS_KEY" "$PFS_IMAGE" >"$FAST/fsck.out" 2>&1; then
		iter_failed "$id" "fsck.peerfs -n found problems after recovery"
		return 0
	fi
	CUR_ID=
	local what=crashed
	((it_crashed)) || what="no crash"
	((it_second)) && what+=", recovery crashed"
	((it_backout)) && what+=", backed out"
	echo "  $id: $what; $(sed -n 's/.*: OK: .* matches the state \(.*\)$/\1/p' "$FAST/verify.out")"
}

modes=(random keep drop tear)
total_iters=0 total_crashed=0 total_backout=0

# run_set WL DATA BUDGET INDEX: the crash points of one workload.
run_set() {
	local wl=$1 data=$2 budget=$3 idx=$4
	local wseed=$((seed * 16 + idx)) count stride offset p i=0 crashed=0 backouts=0 second=0 t0=$SECONDS
	count_ios "$wl" "$data" "$wseed"
	count=$COUNT
	[[ $count =~ ^[0-9]+$ && $count -gt 0 ]] || fail "no I/O count for $wl"
	if [[ ${PFS_LONG:-0} == 1 ]]; then
		stride=1
	else
		stride=$(((count + budget - 1) / budget))
	fi
	offset=$(((seed + idx * 7) % stride + 1))
	step "$wl, data=$data: $count writes and flushes; points $offset..$count step $stride (workload seed $wseed)"
	for ((p = offset; p <= count; p += stride)); do
		# Every fourth point also crashes the recovery, somewhere in
		# its first 24 writes and flushes.
		local p2=
		((i % 4 != 3)) || p2=$((1 + (p * 31 + seed) % 24))
		iterate "$wl" "$data" "$p" "${modes[i % 4]}" "$((p * 7919 + 13))" "$wseed" $p2
		i=$((i + 1))
		crashed=$((crashed + it_crashed))
		backouts=$((backouts + it_backout))
		second=$((second + it_second))
	done
	echo "$wl/$data: $i points, $crashed crashed, $second recoveries crashed, $backouts final recoveries backed out a transaction ($((SECONDS - t0))s)"
	total_iters=$((total_iters + i))
	total_crashed=$((total_crashed + crashed))
	total_backout=$((total_backout + backouts))
}

if [[ -n ${PFS_CRASH_ONLY:-} ]]; then
	IFS=: read -r o_wl o_data o_point o_mode o_seed o_wseed o_point2 <<<"$PFS_CRASH_ONLY"
	step "one iteration: $PFS_CRASH_ONLY"
	iterate "$o_wl" "$o_data" "$o_point" "$o_mode" "$o_seed" "$o_wseed" $o_point2
	((failures == 0)) || fail "the iteration failed"
	((it_crashed)) || fail "no crash happened at point $o_point"
	exit 0
fi

# Workload, data mode, points per workload in the short run.
sets=(
	"create undo 20"
	"rename-over undo 20"
	"overwrite undo 20"
	"relocate undo 14"
	"truncate undo 18"
	"unlink undo 14"
	"hardlinks undo 14"
	"mkdir-tree undo 14"
	"xattrs undo 14"
	"mixed undo 22"
	"create ordered 10"
	"overwrite ordered 14"
	"rename-over ordered 10"
	"truncate ordered 10"
)
# PFS_CRASH_SETS="create undo 10,overwrite ordered 5" replaces the list.
if [[ -n ${PFS_CRASH_SETS:-} ]]; then
	IFS=, read -r -a sets <<<"$PFS_CRASH_SETS"
fi
idx=0
for s in "${sets[@]}"; do
	read -r wl data budget <<<"$s"
	run_set "$wl" "$data" "$budget" "$idx"
	idx=$((idx + 1))
done

echo "crash-points: $total_iters iterations, $total_crashed crashed, $total_backout backed out, $failures failed (PFS_CRASH_SEED=$seed)"
((failures == 0)) || fail "$failures crash points failed"
((total_crashed * 10 >= total_iters * 9)) || fail "only $total_crashed of $total_iters runs crashed: the counts are off"
