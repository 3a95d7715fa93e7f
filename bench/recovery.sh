#!/usr/bin/env bash
# bench/recovery.sh -- peer recovery, timed from the kill to the last
# retained lock released, by phase, for several amounts of in-flight undo;
# and the latency of unrelated operations on the survivor meanwhile.
# Run by `make bench` after bench/cluster.sh, or alone.
#
# For each size S (MiB) of SIZES: a fresh volume (journal 2S + 64 MiB per
# slot, image on DIR, a tmpfs by default); node 0 (automatic recovery,
# default heartbeat_ms/dead_ms) runs bench/probe in its own directory
# (stat, create, 4 KiB write, close, stat, unlink, every 5 ms); node 1
# writes and fsyncs an S MiB file, overwrites it in one transaction in
# 32 KiB writes (larger ones move to new blocks and log no data)
# (commit_ms=600000) and is killed with SIGKILL by tests/tools/killat
# once its commit wrote 1.5 S MiB: its before-images are logged and half
# of the in-place writes done, so its journal holds S MiB of undo in
# flight.  (Node 1's writes are slowed down by PEERFS_FAULT=delay_us for
# sizes under 1 GiB so that the kill lands inside the commit.)  Node 0 detects the death, registers, takes the slot, scans and
# backs out the journal, frees the slot and releases the locks.
#
# Reported per size: undo blocks; detect (kill -> node 1 declared dead);
# register + take the slot; scan; backout; release; the whole (kill ->
# last retained lock released, from the survivor's log); the probe's
# calls during [kill, release]: count, p99 and max latency.
# Environment: BUILD (build), DIR (/dev/shm/peerfs-bench-recovery),
# SIZES ("1 10 100 1024"), RUNS (1).
set -euo pipefail

BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BUILD" && pwd)
DIR=${DIR:-/dev/shm/peerfs-bench-recovery}
SIZES=${SIZES:-1 10 100 1024}
RUNS=${RUNS:-1}
IMG=$DIR/vol.img
export PEERFS_KEYDIR=$DIR
mkdir -p "$DIR" "$BIN/bench"
cc -O2 -Wall -Wextra -Werror -std=gnu11 -o "$BIN/bench/probe" "$ROOT/bench/probe.c"
KILLAT=$BIN/tests/killat
[[ -x $KILLAT ]] || { echo "recovery.sh: build the test tools first (make)" >&2; exit 1; }

declare -A PID=()
PROBE=
cleanup() {
	[[ -n $PROBE ]] && kill "$PROBE" 2>/dev/null
	local n
	for n in 0 1; do
		mountpoint -q "$DIR/n$n" 2>/dev/null && { fusermount3 -u "$DIR/n$n" 2>/dev/null || umount -l "$DIR/n$n"; }
	done
	wait 2>/dev/null || true
	rm -f "$IMG"
}
trap cleanup EXIT
die() { echo "recovery.sh: $*" >&2; exit 1; }

mount_node() {         # mount_node N OPTS
	local n=$1 i
	mkdir -p "$DIR/n$n"
	"$BIN/peerfs" "$IMG" "$DIR/n$n" -f -o "node=$n,keyfile=$DIR/vol.key,$2" >>"$DIR/n$n.log" 2>&1 &
	PID[$n]=$!
	for ((i = 0; i < 600; i++)); do
		mountpoint -q "$DIR/n$n" && return 0
		sleep 0.05
	done
	tail -n 20 "$DIR/n$n.log" >&2
	die "node $n did not mount"
}

unmount_node() {       # a just-stopped probe may keep the mount busy briefly
	local i
	for ((i = 0; i < 20; i++)); do
		fusermount3 -u "$DIR/n$1" 2>/dev/null && break
		sleep 0.5
	done
	mountpoint -q "$DIR/n$1" && die "cannot unmount node $1"
	wait "${PID[$1]}" 2>/dev/null || true
}

# Seconds of the day of a log time stamp HH:MM:SS.mmm, and of an epoch.
sod_of_log() { awk -F'[:. ]' '{ printf "%.3f\n", $1 * 3600 + $2 * 60 + $3 + $4 / 1000 }' <<<"$1"; }
sod_of_epoch() { date -d "@$1" +'%H %M %S %N' | awk '{ printf "%.3f\n", $1 * 3600 + $2 * 60 + $3 + $4 / 1e9 }'; }

run_size() {
	local S=$1 j=$(($1 * 2 + 64)) lines log0=$DIR/n0.log
	rm -f "$IMG" "$DIR/vol.key" "$DIR"/n*.log "$DIR/stop"
	"$BIN/mkfs.peerfs" -q -n 2 -J "${j}M" -s "$((j * 2 + S * 2 + 512))M" -k "$DIR/vol.key" "$IMG"
	mount_node 0 "data=undo"
	# The victim's device is slowed down for small sizes (delay_us, lib/
	# bio.c), so the kill can land inside its short commit; the survivor
	# runs at full speed.
	PEERFS_FAULT=delay_us=$((S >= 1024 ? 0 : 30000 / S)) \
		mount_node 1 "data=undo,commit_ms=600000,cache_size=$((S * 3 + 256))M"
	mkdir "$DIR/n0/probe" "$DIR/n1/victim"
	dd if=/dev/urandom of="$DIR/n1/victim/f" bs=1M count="$S" conv=fsync status=none
	# The probe first: the locks its first calls need move to node 0
	# (node 1 commits then), before the overwrite starts its transaction.
	"$BIN/bench/probe" "$DIR/n0/probe" "$DIR/stop" "$DIR/probe.out" &
	PROBE=$!
	sleep 1
	dd if=/dev/zero of="$DIR/n1/victim/f" bs=32K count="$((S * 32))" conv=notrunc status=none
	lines=$(wc -l <"$log0")
	"$KILLAT" -t 600 "${PID[1]}" $((S * 3 << 19)) >"$DIR/killat.out" &
	local killer=$! out
	sleep 0.2                       # killat has read its starting point
	sync "$DIR/n1/victim/f" 2>/dev/null &
	local syncer=$!
	wait "$killer" || die "node 1 never reached the middle of its commit"
	out=$(cat "$DIR/killat.out")
	wait "${PID[1]}" 2>/dev/null || true
	wait "$syncer" 2>/dev/null || true
	umount -l "$DIR/n1" 2>/dev/null || true
	local t_kill i
	t_kill=$(sed -n 's/.* at \([0-9.]*\)$/\1/p' <<<"$out")
	for ((i = 0; i < 1200; i++)); do
		tail -n +"$((lines + 1))" "$log0" | grep -q 'recovery of node 1: done' && break
		sleep 0.1
	done
	sleep 0.5
	touch "$DIR/stop"
	wait "$PROBE" || echo "recovery.sh: the probe saw failures" >&2
	PROBE=
	local rec
	rec=$(tail -n +"$((lines + 1))" "$log0")
	grep -q 'recovery of node 1: done' <<<"$rec" || { echo "$rec" >&2; die "node 0 did not recover node 1"; }
	local l_dead l_rel l_scan l_back l_done undo
	l_dead=$(grep -m1 'node 1 is dead' <<<"$rec")
	l_rel=$(grep -m1 'released [0-9]* retained locks of node 1' <<<"$rec")
	l_scan=$(grep -m1 'journal of slot 1: scan:' <<<"$rec")
	l_back=$(grep -m1 'journal of slot 1: backout:' <<<"$rec")
	l_done=$(grep -m1 'recovery of node 1: done' <<<"$rec")
	undo=$(sed -n 's/.* with \([0-9]*\) undo blocks.*/\1/p' <<<"$l_scan")
	if ((${undo:-0} < S * 256 * 9 / 10)); then
		echo "recovery.sh: $S MiB: the kill missed the commit (${undo:-0} undo blocks); again" >&2
		unmount_node 0
		return 1
	fi
	local k d r
	k=$(sod_of_epoch "$t_kill")
	d=$(sod_of_log "${l_dead%% *}")
	r=$(sod_of_log "${l_rel%% *}")
	local scan back regi rel
	scan=$(sed -n 's/.*(\([0-9.]*\) ms)$/\1/p' <<<"$l_scan")
	back=$(sed -n 's/.*(\([0-9.]*\) ms)$/\1/p' <<<"$l_back")
	regi=$(sed -n 's/.*(register \([0-9.]*\), initialize \([0-9.]*\),.*/\1 \2/p' <<<"$l_done" | awk '{ print $1 + $2 }')
	rel=$(sed -n 's/.* release [0-9]* locks \([0-9.]*\),.*/\1/p' <<<"$l_done")
	# Probe calls that started between the kill and the release.
	local st
	st=$(awk -v a="$t_kill" -v b="$(awk -v k="$t_kill" -v d="$k" -v r="$r" 'BEGIN { printf "%.6f", k + (r - d) }')" \
		'$1 >= a && $1 <= b { print $3, $2 }' "$DIR/probe.out" | sort -n |
		awk '{ v[NR] = $1; o[NR] = $2 }
		     END { if (!NR) { print "0 - - -"; exit }
			   i = int(NR * 0.99); if (i < 1) i = 1
			   printf "%d %.1f %.1f %s\n", NR, v[i] / 1000, v[NR] / 1000, o[NR] }')
	printf '| %s MiB | %s | %.0f | %.1f | %s | %s | %s | **%.0f** | %s |\n' "$S" "${undo:-?}" \
		"$(awk -v d="$d" -v k="$k" 'BEGIN { print (d - k) * 1000 }')" "$regi" "$scan" "$back" "$rel" \
		"$(awk -v r="$r" -v k="$k" 'BEGIN { print (r - k) * 1000 }')" \
		"$(awk '{ printf "%d calls, p99 %s ms, max %s ms (%s)", $1, $2, $3, $4 }' <<<"$st")"
	unmount_node 0
}

echo
echo "Peer recovery of node 1 by node 0 (heartbeat_ms=500, dead_ms=3000), image on $DIR, $(nproc) CPUs, $(date -u +%F):"
echo
echo "| undo in flight | undo blocks | detect ms | register+take slot ms | scan ms | backout ms | release ms | kill to last lock released, ms | probe on node 0 during recovery |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for S in $SIZES; do
	for ((run = 0; run < RUNS; run++)); do
		for ((try = 0; try < 3; try++)); do
			run_size "$S" && break
		done
	done
done
