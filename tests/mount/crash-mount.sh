#!/usr/bin/env bash
# crash-mount: simulated power loss inside mounts.  The volume starts as a
# killed daemon left it: slot 0 mounted, three files with fsync'd content,
# and three open-unlinked files on the orphan list, so a mount has work of
# its own (recovery, a new log, a first commit that frees the orphans and
# writes the slot record, the heartbeat, the unmount's commit).
#   1. Every write and flush of such a mount and unmount is a crash point
#      (modes cycling through drop, tear, random and keep).
#   2. The crash points after which the slot's log header already has the
#      next generation but the slot record still has the old one, with a
#      transaction in flight (the mount died inside its first commit), are
#      found with jnlinfo; from each, the next mount is crashed again at
#      each of its first 24 writes and flushes (tear at odd points, random
#      at even ones).
# After the crashes a plain mount must succeed, the three files must hold
# their bytes, the orphans must be gone, the unmount must be clean and
# fsck.peerfs -n must find nothing.  PFS_LONG=1: phase 2 from every point
# of phase 1, in all four modes.
# timeout: 600
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 awk md5sum
peerfs=$(pfs_bin peerfs)
fsck=$(pfs_bin fsck.peerfs)
jnlinfo=$(pfs_tool jnlinfo)

MNT=$PFS_TEST_DIR/m
mkdir -p "$MNT"
FAST=$PFS_TEST_DIR/fast
mkdir -p "$FAST"
mount -t tmpfs -o size=512M,mode=0700 crash-mount "$FAST"

is_mounted() {
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

DPID=
trap '_mrc=$?; [[ -n $DPID ]] && kill -KILL "$DPID" 2>/dev/null; is_mounted "$MNT" && fusermount3 -uz "$MNT"; is_mounted "$FAST" && umount -l "$FAST"; (exit $_mrc); _pfs_on_exit' EXIT
PFS_IMAGE=$FAST/vol.img
# A mount of a slot left mounted watches its heartbeat for two periods.
OPTS=node=0,heartbeat_ms=10,dead_ms=20,commit_ms=600000

# crash_mount IMG FAULT: mount IMG with the fault armed and unmount it
# again (or kill it once it crashed).  Sets crashed=0/1.
crash_mount() {
	local img=$1 fault=$2 deadline=$((SECONDS + 30))
	crashed=0
	PEERFS_FAULT=$fault "$peerfs" "$img" "$MNT" -f -o "keyfile=$PFS_KEY,$OPTS" \
		>"$FAST/crash.log" 2>&1 </dev/null &
	DPID=$!
	echo "$DPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
	until is_mounted "$MNT"; do
		_pfs_alive "$DPID" || break
		((SECONDS < deadline)) || fail "$fault: not mounted after 30s"
		sleep 0.01
	done
	if is_mounted "$MNT"; then
		if grep -q 'simulated crash' "$FAST/crash.log"; then
			kill -KILL "$DPID" 2>/dev/null || true
			wait "$DPID" 2>/dev/null || true
			fusermount3 -uz "$MNT" 2>/dev/null || true
			! is_mounted "$MNT" || umount -l "$MNT"
		else
			fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
		fi
	fi
	while _pfs_alive "$DPID"; do
		((SECONDS < deadline + 30)) || { kill -KILL "$DPID"; break; }
		sleep 0.01
	done
	wait "$DPID" 2>/dev/null || true
	DPID=
	if grep -q 'simulated crash' "$FAST/crash.log"; then
		crashed=1
	fi
	return 0
}

failures=0
# final_check IMG WHAT: a plain mount of (a copy of) IMG after the crashes.
final_check() {
	local img=$1 what=$2 rc=0 deadline=$((SECONDS + 30))
	cp --sparse=always "$img" "$FAST/final.img"
	"$peerfs" "$FAST/final.img" "$MNT" -f -o "keyfile=$PFS_KEY,$OPTS" >"$FAST/final.log" 2>&1 </dev/null &
	DPID=$!
	echo "$DPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
	until is_mounted "$MNT"; do
		if ! _pfs_alive "$DPID"; then
			wait "$DPID" || rc=$?
			DPID=
			bad "$img" "$what: the mount after the crashes failed (status $rc): $(grep -E 'error' "$FAST/final.log" | head -n 3)"
			return 0
		fi
		((SECONDS < deadline)) || fail "$what: not mounted after 30s"
		sleep 0.01
	done
	local got why=
	got=$(cd "$MNT/w" && ls | sort | tr '\n' ' ')
	if [[ $got != "keep1 keep2 keep3 " ]]; then
		why="the directory holds: $got"
	elif ! (cd "$MNT/w" && md5sum -c --quiet "$FAST/keep.md5" >/dev/null 2>&1); then
		why="the fsync'd files changed"
	fi
	fusermount3 -u "$MNT"
	while _pfs_alive "$DPID"; do sleep 0.01; done
	wait "$DPID" || rc=$?
	DPID=
	((rc == 0)) || why="${why:+$why; }the unmount failed (status $rc)"
	if [[ -z $why ]] && ! "$fsck" -n -k "$PFS_KEY" "$FAST/final.img" >"$FAST/fsck.out" 2>&1; then
		why="fsck.peerfs -n: $(tail -n 4 "$FAST/fsck.out" | tr '\n' ' ')"
	fi
	[[ -z $why ]] || bad "$img" "$what: $why"
}

bad() {
	failures=$((failures + 1))
	local keep=$PFS_TEST_DIR/fail-$failures
	mkdir -p "$keep"
	cp --sparse=always "$1" "$keep/crashed.img"
	cp "$PFS_KEY" "$keep/"
	echo "FAILED: $2 (image before the final mount in $keep)"
	((failures < 5)) || fail "$failures failures; stopping"
}

step "a volume left mounted, with orphans"
pfs_setup -s 64M -n 2 -J 4M
"$peerfs" "$PFS_IMAGE" "$MNT" -f -o "keyfile=$PFS_KEY,node=0,heartbeat_ms=10,dead_ms=20" \
	>"$FAST/setup.log" 2>&1 </dev/null &
DPID=$!
echo "$DPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
until is_mounted "$MNT"; do
	_pfs_alive "$DPID" || fail "setup mount failed"
	sleep 0.01
done
mkdir "$MNT/w"
for f in keep1 keep2 keep3 o1 o2 o3; do
	head -c $((100000 + RANDOM)) /dev/urandom >"$MNT/w/$f"
done
(cd "$MNT/w" && md5sum keep1 keep2 keep3) >"$FAST/keep.md5"
exec 7<"$MNT/w/o1" 8<"$MNT/w/o2" 9<"$MNT/w/o3"
rm "$MNT/w/o1" "$MNT/w/o2" "$MNT/w/o3"
# fsync of the directory commits the names and the orphan list.
perl -e 'opendir(my $d, $ARGV[0]) or die; use IO::Handle; my $h = IO::Handle->new_from_fd(fileno($d), "r") or die; $h->sync or die "fsync: $!"' "$MNT/w"
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=
exec 7<&- 8<&- 9<&-
fusermount3 -uz "$MNT" 2>/dev/null || true
! is_mounted "$MNT" || umount -l "$MNT"
I0=$FAST/i0.img
cp --sparse=always "$PFS_IMAGE" "$I0"
gen0=$("$jnlinfo" "$I0" | sed -n 's/^slot .* generation=\([0-9]*\).*/\1/p')
echo "  slot 0 left mounted at generation $gen0"
final_check "$I0" "no crash"
((failures == 0)) || fail "the volume does not recover from the kill alone"

# The writes and flushes of one mount and unmount of that volume.
cp --sparse=always "$I0" "$FAST/count.img"
rm -f "$FAST/count"
PEERFS_IO_COUNT_FILE=$FAST/count crash_mount "$FAST/count.img" ""
n1=$(sed -n 's/.* wf=\([0-9]*\) .*/\1/p' "$FAST/count")
[[ $n1 =~ ^[0-9]+$ && $n1 -gt 0 ]] || fail "no I/O count"

modes=(drop tear random keep)
step "1. a crash at each of the $n1 writes and flushes of a mount"
windows=()
for ((p = 1; p <= n1; p++)); do
	m=${modes[p % 4]}
	cp --sparse=always "$I0" "$FAST/c1.img"
	crash_mount "$FAST/c1.img" "crash_io=$p,mode=$m,seed=$p"
	info=$("$jnlinfo" -k "$PFS_KEY" -s 0 "$FAST/c1.img")
	sgen=$(sed -n 's/^slot .* generation=\([0-9]*\).*/\1/p' <<<"$info")
	hgen=$(awk '$1 == "header" && $4 == "status=ok" { split($5, g, "="); if (g[2] > m) m = g[2] } END { print m + 0 }' <<<"$info")
	inflight=$(sed -n 's/^inflight n=//p' <<<"$info")
	echo "  point $p ($m): crashed=$crashed slot generation $sgen, log generation $hgen, in flight ${inflight:-0}"
	final_check "$FAST/c1.img" "mount crash at $p ($m)"
	if ((hgen > sgen && ${inflight:-0} > 0)) || [[ ${PFS_LONG:-0} == 1 ]]; then
		windows+=("$p")
	fi
done
((${#windows[@]} > 0)) || fail "no crash point leaves the log ahead of the slot record"

step "2. a second mount crashed, after crash points ${windows[*]}"
for p in "${windows[@]}"; do
	for ((q = 1; q <= 24; q++)); do
		m1=${modes[p % 4]}
		for m2 in tear random; do
			[[ ${PFS_LONG:-0} == 1 ]] || [[ $m2 == tear && $((q % 2)) == 1 ]] ||
				[[ $m2 == random && $((q % 2)) == 0 ]] || continue
			cp --sparse=always "$I0" "$FAST/c2.img"
			crash_mount "$FAST/c2.img" "crash_io=$p,mode=$m1,seed=$p"
			crash_mount "$FAST/c2.img" "crash_io=$q,mode=$m2,seed=$q"
			final_check "$FAST/c2.img" "mount crash at $p ($m1), then at $q ($m2)"
		done
	done
done
((failures == 0)) || fail "$failures crash combinations did not recover"
echo "crash-mount: all combinations recovered"
