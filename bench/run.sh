#!/usr/bin/env bash
# bench/run.sh -- peerfs benchmarks against kernel ext4 and fuse2fs.
#
#   make bench                 (BUILD=build bash bench/run.sh)
#   QUICK=1 make bench         smoke test, about 2 minutes
#
# Targets, each on a fresh sparse image file of IMG_SIZE in one private
# directory under BENCH_DIR (so on one disk):
#   peerfs-undo      peerfs, data=undo (the default)
#   peerfs-ordered   peerfs, data=ordered
#   ext4             kernel ext4 on a loop device
#   fuse2fs          the same ext4 format served by fuse2fs
# Every run formats a new image for each target and runs the whole
# workload list on it; the targets are interleaved (their order rotates
# from run to run) and each cell of the table is the median of RUNS runs,
# with the spread (max - min) / 2 as a percentage of the median.
#
# Cold phases (stat, small-file read, sequential and random read, the
# overwrites) start from a remount of the target and a dropped page cache,
# which also empties the caches of the FUSE daemons.  Mutating phases end
# with a sync inside the timed region (pfsbench -S: syncfs, then fsync of
# a marker file, which is what makes a FUSE daemon commit).
#
# Also measured (peerfs): the time to recover a journal holding about
# RECOVERY_MIB MiB of before-images after a crash in the middle of a
# commit, and the device flushes per fsync (fsync/fdatasync calls of the
# daemon counted with perf; for ext4 the flush requests of its loop
# device).
#
# Environment:
#   BUILD        build directory (default build)
#   QUICK=1      small sizes, one run
#   RUNS         runs per target (default 3, QUICK 1)
#   TARGETS      subset of the targets above, in order
#   BENCH_DIR    parent of the scratch directory (default /var/tmp)
#   IMG_SIZE     image size (default 1G)
#   RECOVERY=0   skip the recovery benchmark
#   RESULTS      output file (default bench/results-YYYY-MM-DD.md)
#
# Output: progress on stderr; on stdout one "result ..." line per cell,
# then the markdown report, which is also written to RESULTS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
QUICK=${QUICK:-0}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
IMG_SIZE=${IMG_SIZE:-1G}
RECOVERY=${RECOVERY:-1}
TARGETS=${TARGETS:-peerfs-undo peerfs-ordered ext4 fuse2fs}
DATE=$(date +%F)
RESULTS=${RESULTS:-$ROOT/bench/results-$DATE.md}

if [[ $QUICK == 1 ]]; then
	RUNS=${RUNS:-1}
	NFILES=1000 TREE_FAN=6 TREE_DEPTH=3 NSMALL=1000 SEQ_MIB=128 NRAND=4000
	NFSYNC=300 OW_MIB=64 NROW=4000 TAR_SRC=/usr/include/linux RECOVERY_MIB=24
else
	RUNS=${RUNS:-3}
	NFILES=5000 TREE_FAN=10 TREE_DEPTH=3 NSMALL=5000 SEQ_MIB=512 NRAND=20000
	NFSYNC=2000 OW_MIB=256 NROW=20000 TAR_SRC=/usr/include RECOVERY_MIB=100
fi
SMALL_SIZE=4096
MOUNT_TIMEOUT=30
UMOUNT_TIMEOUT=120

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# ---- preconditions -----------------------------------------------------

[[ $(id -u) == 0 ]] || die "must run as root (loop devices, mounts, drop_caches)"
[[ -c /dev/fuse ]] || die "no /dev/fuse"
for t in $TARGETS; do
	case $t in
	peerfs-undo | peerfs-ordered | ext4 | fuse2fs) ;;
	*) die "unknown target $t" ;;
	esac
done
need=(cc tar losetup mkfs.ext4 mount umount mountpoint)
[[ " $TARGETS " == *" fuse2fs "* ]] && need+=(fuse2fs)
for c in "${need[@]}"; do
	command -v "$c" >/dev/null || die "$c not found (fuse2fs: apt-get install fuse2fs)"
done
for p in peerfs mkfs.peerfs; do
	[[ -x $BUILD/$p ]] || die "$BUILD/$p not built (make)"
done
HAVE_PERF=0
if command -v perf >/dev/null &&
	perf stat -x, -e syscalls:sys_enter_fdatasync -o /dev/null true 2>/dev/null; then
	HAVE_PERF=1
else
	log "perf with syscall tracepoints not available: no flush counts"
fi

# ---- scratch state and cleanup -----------------------------------------

mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/pfsbench.XXXXXX")
declare -A MOUNTED=()     # mount point -> target kind
declare -A DPID=()        # mount point -> FUSE daemon pid
declare -A LOOPDEV=()     # image -> loop device
PERF_PID=

cleanup() {
	local rc=$? m pid i
	set +e
	trap - EXIT INT TERM
	if [[ -n $PERF_PID ]]; then
		kill -INT "$PERF_PID" 2>/dev/null
		wait "$PERF_PID" 2>/dev/null
	fi
	# A workload still running (the script was interrupted): stop it,
	# sparing the daemons, which the unmounts below stop.
	for pid in $(pgrep -P $$ || true); do
		[[ " ${DPID[*]} " == *" $pid "* ]] || kill -TERM "$pid" 2>/dev/null
	done
	for m in "${!MOUNTED[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	for m in "${!DPID[@]}"; do
		pid=${DPID[$m]}
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for i in "${!LOOPDEV[@]}"; do
		losetup -d "${LOOPDEV[$i]}" 2>/dev/null
	done
	if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
		log "something is still mounted under $WORK: left in place"
	else
		rm -rf --one-file-system "$WORK"
	fi
	[[ $rc == 0 ]] || log "exiting with status $rc"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binaries are copied so that a rebuild during the run changes nothing.
BIN=$WORK/bin
mkdir -p "$BIN" "$BUILD/bench"
cc -O2 -Wall -Wextra -Werror -std=gnu11 -o "$BUILD/bench/pfsbench" "$ROOT/bench/pfsbench.c"
cp "$BUILD/peerfs" "$BUILD/mkfs.peerfs" "$BUILD/bench/pfsbench" "$BIN/"
PFSBENCH=$BIN/pfsbench
export PEERFS_KEYDIR=$WORK

# ---- targets: format, mount, unmount -------------------------------------

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# mkimage TARGET IMAGE: a fresh image for TARGET.
mkimage() {
	local t=$1 img=$2
	rm -f "$img"
	case $t in
	peerfs-*)
		"$BIN/mkfs.peerfs" -q -s "$IMG_SIZE" -k "$img.key" "$img"
		;;
	ext4 | fuse2fs)
		truncate -s "$IMG_SIZE" "$img"
		# Initialise inode tables and journal now, so that no lazy
		# initialisation runs during the measurements.
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img"
		;;
	esac
	if [[ $t == ext4 ]]; then
		LOOPDEV[$img]=$(losetup -f --show "$img")
	fi
}

rmimage() {
	local img=$1
	if [[ -n ${LOOPDEV[$img]:-} ]]; then
		losetup -d "${LOOPDEV[$img]}"
		unset "LOOPDEV[$img]"
	fi
	rm -f "$img" "$img.key"
}

# wait_mounted MNT PID LOG: until MNT is a mount point or the daemon died.
wait_mounted() {
	local mnt=$1 pid=$2 logf=$3 i
	for ((i = 0; i < MOUNT_TIMEOUT * 20; i++)); do
		mountpoint -q "$mnt" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || true
			tail -n 20 "$logf" >&2
			die "the daemon for $mnt exited before mounting"
		fi
		sleep 0.05
	done
	die "$mnt: not mounted after ${MOUNT_TIMEOUT}s"
}

# mount_target TARGET IMAGE MNT [peerfs options]
mount_target() {
	local t=$1 img=$2 mnt=$3 extra=${4:-} pid logf
	mkdir -p "$mnt"
	logf=$WORK/daemon-$(basename "$mnt").log
	case $t in
	peerfs-undo | peerfs-ordered)
		"$BIN/peerfs" "$img" "$mnt" -f \
			-o "keyfile=$img.key,node=0,data=${t#peerfs-}${extra:+,$extra}" \
			>>"$logf" 2>&1 &
		pid=$!
		DPID[$mnt]=$pid
		wait_mounted "$mnt" "$pid" "$logf"
		;;
	fuse2fs)
		fuse2fs "$img" "$mnt" -f >>"$logf" 2>&1 &
		pid=$!
		DPID[$mnt]=$pid
		wait_mounted "$mnt" "$pid" "$logf"
		;;
	ext4)
		mount -t ext4 "${LOOPDEV[$img]}" "$mnt"
		;;
	esac
	MOUNTED[$mnt]=$t
}

umount_target() {
	local mnt=$1 pid i st=0
	# A FUSE release is asynchronous: the mount stays busy until the
	# daemon has answered the last one.
	for ((i = 0; ; i++)); do
		umount "$mnt" 2>/dev/null && break
		((i < 200)) || umount "$mnt"
		sleep 0.05
	done
	unset "MOUNTED[$mnt]"
	pid=${DPID[$mnt]:-}
	[[ -n $pid ]] || return 0
	for ((i = 0; i < UMOUNT_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$pid" || st=$?
	unset "DPID[$mnt]"
	if [[ $st != 0 ]]; then
		tail -n 20 "$WORK/daemon-$(basename "$mnt").log" >&2
		die "the daemon for $mnt exited with status $st"
	fi
}

remount_cold() {
	local t=$1 img=$2 mnt=$3
	umount_target "$mnt"
	drop_caches
	mount_target "$t" "$img" "$mnt"
}

# ---- results -------------------------------------------------------------

RAW=$WORK/raw.tsv          # workload target run value
: >"$RAW"
RUN=0

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$RUN" "$3" >>"$RAW"; }

# bench KEY TARGET HOW PFSBENCH-ARGS...: run pfsbench, record one value:
# HOW is ops (ops/s), mib (MiB/s) or secs.
LAST_SECS=
bench() {
	local key=$1 t=$2 how=$3 out v
	shift 3
	out=$("$PFSBENCH" "$@") || die "$key on $t: pfsbench $* failed"
	v=$(awk -v how="$how" '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		if (how == "ops") printf "%.6g", f["ops"] / f["secs"]
		else if (how == "mib") printf "%.6g", f["bytes"] / 1048576 / f["secs"]
		else printf "%.6g", f["secs"]
	}' <<<"$out")
	LAST_SECS=$(sed -n 's/^secs=\([^ ]*\).*/\1/p' <<<"$out")
	record "$key" "$t" "$v"
	log "  $t $key: $v ($out)"
}

# Flush counting around one workload.  For a FUSE target: fsync and
# fdatasync calls of its daemon; for ext4: flush requests issued to its
# loop device.
perf_start() {
	local t=$1 mnt=$2 img=$3 out=$4 dev
	[[ $HAVE_PERF == 1 ]] || return 0
	case $t in
	ext4)
		dev=$(stat -c '%t %T' "${LOOPDEV[$img]}")
		read -r maj min <<<"$dev"
		perf stat -x, -a -o "$out" -e block:block_rq_issue \
			--filter "dev == $(((0x$maj << 20) | 0x$min)) && rwbs ~ \"F*\"" &
		;;
	*)
		perf stat -x, -o "$out" -p "${DPID[$mnt]}" \
			-e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync &
		;;
	esac
	PERF_PID=$!
	sleep 0.5              # let perf attach
}

# perf_stop OUT: the total count into PERF_COUNT (empty without perf).
PERF_COUNT=
perf_stop() {
	local out=$1
	PERF_COUNT=
	[[ -n $PERF_PID ]] || return 0
	kill -INT "$PERF_PID"
	wait "$PERF_PID" || true
	PERF_PID=
	PERF_COUNT=$(awk -F, '/^[0-9]/ { n += $1 } END { print n + 0 }' "$out")
}

# ---- the workload list on one target ---------------------------------------

TAR=$WORK/tree.tar
log "archiving $TAR_SRC"
tar -cf "$TAR" -C / "${TAR_SRC#/}" 2>/dev/null || die "tar of $TAR_SRC failed"
TAR_ENTRIES=$(tar -tf "$TAR" | wc -l)
TAR_MIB=$(($(stat -c %s "$TAR") >> 20))

run_target() {
	local t=$1 img=$WORK/$1.img mnt=$WORK/mnt-$1 n
	log "run $RUN: $t"
	mkimage "$t" "$img"
	mount_target "$t" "$img" "$mnt"

	mkdir "$mnt/meta"
	bench create "$t" ops -S "$mnt" create "$mnt/meta" "$NFILES"
	remount_cold "$t" "$img" "$mnt"
	bench stat "$t" ops stat "$mnt/meta" "$NFILES"
	bench rename "$t" ops -S "$mnt" rename "$mnt/meta" "$NFILES"
	bench unlink "$t" ops -S "$mnt" unlink "$mnt/meta" "$NFILES"
	mkdir "$mnt/tree"
	bench mkdir "$t" ops -S "$mnt" mkdirs "$mnt/tree" "$TREE_FAN" "$TREE_DEPTH"

	mkdir "$mnt/small"
	bench small_write "$t" ops -S "$mnt" smallwrite "$mnt/small" "$NSMALL" "$SMALL_SIZE"
	remount_cold "$t" "$img" "$mnt"
	bench small_read "$t" ops smallread "$mnt/small" "$NSMALL" "$SMALL_SIZE"

	bench seq_write "$t" mib seqwrite "$mnt/big" "$SEQ_MIB" 1048576
	remount_cold "$t" "$img" "$mnt"
	bench seq_read "$t" mib seqread "$mnt/big" 1048576
	remount_cold "$t" "$img" "$mnt"
	bench rand_read "$t" ops randread "$mnt/big" "$NRAND" 4096 7
	rm -f "$mnt/big"

	"$PFSBENCH" seqwrite "$mnt/ow" "$OW_MIB" 1048576 >/dev/null
	remount_cold "$t" "$img" "$mnt"
	bench ow_seq "$t" mib overwrite "$mnt/ow" 1048576
	remount_cold "$t" "$img" "$mnt"
	bench ow_rand "$t" ops roverwrite "$mnt/ow" "$NROW" 4096 11
	rm -f "$mnt/ow"

	local pout=$WORK/perf-$t-$RUN.txt
	"$PFSBENCH" -S "$mnt" run true >/dev/null
	perf_start "$t" "$mnt" "$img" "$pout"
	bench fsync "$t" ops fsyncloop "$mnt/fsync.dat" "$NFSYNC" 4096
	perf_stop "$pout"
	n=$PERF_COUNT
	if [[ -n $n ]]; then
		record fsync_flushes "$t" "$(awk -v n="$n" -v c="$NFSYNC" 'BEGIN { printf "%.3g", n / c }')"
		log "  $t fsync_flushes: $n for $NFSYNC fsyncs"
	fi

	mkdir "$mnt/src"
	bench untar "$t" secs -S "$mnt" run tar -xf "$TAR" -C "$mnt/src"
	bench rmrf "$t" secs -S "$mnt" run rm -rf "$mnt/src"

	umount_target "$mnt"
	rmimage "$img"
}

# ---- recovery of a journal with a large in-flight transaction -------------
#
# A volume with one slot and a 256 MiB journal (a transaction may fill
# about 3/4 of it).  A file of RECOVERY_MIB MiB is written and committed;
# a mount with commit_ms=600000 overwrites all of it under data=undo in
# 32 KiB writes (larger ones move to new blocks and log no data), so one
# transaction holds its before-images, and an fsync commits it.  The
# daemon runs with PEERFS_FAULT=crash_io=N, N placed in the middle of the
# commit's in-place writes (the log of before-images is durable by then);
# then it is killed with SIGKILL and the next mount is timed, with the
# phases it logs.
#
# Placing N: the writes and flushes of the daemon before the commit are
# counted once with perf (mount, then the overwrite, then SIGKILL instead
# of the commit); a commit of B blocks first logs a header, a BEGIN and
# B/64 IMAGES records, flushes, then writes the blocks in place in runs of
# at most 64 blocks.

REC_OPTS="commit_ms=600000,cache_size=1G"

rec_prepare() {
	local img=$1 mnt=$2
	rm -f "$img"
	"$BIN/mkfs.peerfs" -q -n 1 -J 256M -s "$IMG_SIZE" -k "$img.key" "$img"
	mount_target peerfs-undo "$img" "$mnt"
	"$PFSBENCH" seqwrite "$mnt/victim" "$RECOVERY_MIB" 1048576 >/dev/null
	umount_target "$mnt"
	drop_caches
}

# Kill the daemon of MNT with SIGKILL and detach its dead mount.
rec_kill() {
	local mnt=$1 pid=$2
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	umount "$mnt" 2>/dev/null || umount -l "$mnt"
	unset "MOUNTED[$mnt]" "DPID[$mnt]"
}

REC_BASE=
rec_calibrate() {
	local img=$WORK/rec.img mnt=$WORK/mnt-rec out=$WORK/perf-rec.txt logf pid i
	rec_prepare "$img" "$mnt"
	logf=$WORK/daemon-mnt-rec.log
	mkdir -p "$mnt"
	perf stat -x, -o "$out" -e syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync \
		-- "$BIN/peerfs" "$img" "$mnt" -f -o "keyfile=$img.key,node=0,$REC_OPTS" \
		>>"$logf" 2>&1 &
	PERF_PID=$!
	for ((i = 0; i < 100; i++)); do
		pid=$(pgrep -P "$PERF_PID" -x peerfs || true)
		[[ -n $pid ]] && break
		sleep 0.05
	done
	[[ -n $pid ]] || die "calibration: no daemon under perf"
	DPID[$mnt]=$pid
	wait_mounted "$mnt" "$pid" "$logf"
	MOUNTED[$mnt]=peerfs-undo
	"$PFSBENCH" -N overwrite "$mnt/victim" 32768 >/dev/null
	rec_kill "$mnt" "$pid"
	wait "$PERF_PID" || true
	PERF_PID=
	REC_BASE=$(awk -F, '/^[0-9]/ { n += $1 } END { print n + 0 }' "$out")
	log "recovery: $REC_BASE writes and flushes before the commit"
	rm -f "$img" "$img.key"
}

run_recovery() {
	local img=$WORK/rec.img mnt=$WORK/mnt-rec logf=$WORK/daemon-mnt-rec.log
	local blocks=$((RECOVERY_MIB * 256)) recs n pid t0 t1 line scan backout undo
	log "run $RUN: recovery of $RECOVERY_MIB MiB of before-images"
	rec_prepare "$img" "$mnt"
	recs=$(((blocks + 63) / 64))
	# A little slack for heartbeats, then half-way through the in-place writes.
	n=$((REC_BASE + 4 + recs + 1 + recs / 2))
	PEERFS_FAULT="crash_io=$n,mode=keep" mount_target peerfs-undo "$img" "$mnt" "$REC_OPTS"
	pid=${DPID[$mnt]}
	"$PFSBENCH" -N overwrite "$mnt/victim" 32768 >/dev/null
	if "$PFSBENCH" -S "$mnt" run true >/dev/null 2>&1; then
		die "recovery: the commit did not crash (crash_io=$n)"
	fi
	rec_kill "$mnt" "$pid"
	drop_caches
	: >"$logf"
	t0=$(date +%s.%N)
	mount_target peerfs-undo "$img" "$mnt"
	t1=$(date +%s.%N)
	line=$(grep -E 'journal of slot 0: scan:' "$logf" || true)
	scan=$(sed -n 's/.*(\([0-9.]*\) ms).*/\1/p' <<<"$line")
	undo=$(sed -n 's/.* with \([0-9]*\) undo blocks.*/\1/p' <<<"$line")
	backout=$(grep -E 'journal of slot 0: backout:' "$logf" |
		sed -n 's/.*(\([0-9.]*\) ms).*/\1/p')
	[[ -n $scan && -n $backout && -n $undo ]] ||
		die "recovery: no scan/backout lines in the log: $(cat "$logf")"
	if ((undo < blocks * 9 / 10)); then
		die "recovery: only $undo undo blocks in flight (crash_io=$n missed the in-place writes)"
	fi
	record rec_scan peerfs-undo "$scan"
	record rec_backout peerfs-undo "$backout"
	record rec_mount peerfs-undo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
	record rec_undo peerfs-undo "$undo"
	log "  recovery: $undo undo blocks, scan $scan ms, backout $backout ms"
	umount_target "$mnt"
	rm -f "$img" "$img.key"
}

# ---- main ----------------------------------------------------------------------

read -ra TLIST <<<"$TARGETS"
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "scratch directory $WORK, $RUNS run(s), targets: ${TLIST[*]}"
for ((RUN = 1; RUN <= RUNS; RUN++)); do
	for ((k = 0; k < ${#TLIST[@]}; k++)); do
		run_target "${TLIST[$(((k + RUN - 1) % ${#TLIST[@]}))]}"
	done
done
if [[ $RECOVERY == 1 && " $TARGETS " == *" peerfs-undo "* ]]; then
	if [[ $HAVE_PERF == 1 ]]; then
		rec_calibrate
	else
		REC_BASE=16
		log "recovery: no perf to count the writes before the commit; assuming $REC_BASE"
	fi
	for ((RUN = 1; RUN <= RUNS; RUN++)); do
		run_recovery
	done
fi
ELAPSED=$(($(date +%s) - T_START))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ---------------------------------------------------------------------

# stats WORKLOAD TARGET: "median spread%" or nothing.
stats() {
	awk -F'\t' -v w="$1" -v t="$2" '$1 == w && $2 == t { print $4 }' "$RAW" | sort -g |
		awk '{ v[NR] = $1 } END {
			if (!NR) exit
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			s = m ? (v[NR] - v[1]) / 2 / m * 100 : 0
			printf "%.6g %.1f\n", m, s
		}'
}

samples() {
	awk -F'\t' -v w="$1" -v t="$2" '$1 == w && $2 == t { printf "%s%s", n++ ? "," : "", $4 }' "$RAW"
}

fmt() {   # a value with 3 significant digits, at most 2 decimals past that
	awk -v v="$1" 'BEGIN {
		a = v < 0 ? -v : v
		if (a >= 100) printf "%.0f", v; else if (a >= 10) printf "%.1f", v
		else if (a >= 1) printf "%.2f", v; else printf "%.3g", v }'
}

ratio() {
	[[ -n $1 && -n $2 ]] || { echo "-"; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

TREE_DIRS=0
for ((i = 1, p = TREE_FAN; i <= TREE_DEPTH; i++, p *= TREE_FAN)); do TREE_DIRS=$((TREE_DIRS + p)); done
declare -A WLABEL=(
	[create]="create $NFILES empty files, one directory"
	[stat]="stat $NFILES files (cold)"
	[rename]="rename $NFILES files"
	[unlink]="unlink $NFILES files"
	[mkdir]="mkdir tree ${TREE_FAN}x${TREE_FAN}x${TREE_FAN} ($TREE_DIRS dirs)"
	[small_write]="write $NSMALL files of 4 KiB"
	[small_read]="read $NSMALL files of 4 KiB (cold)"
	[seq_write]="sequential write $SEQ_MIB MiB, 1 MiB writes + fsync"
	[seq_read]="sequential read $SEQ_MIB MiB, 1 MiB reads (cold)"
	[rand_read]="random read 4 KiB x $NRAND over $SEQ_MIB MiB (cold)"
	[ow_seq]="overwrite $OW_MIB MiB file, 1 MiB writes + fsync (cold)"
	[ow_rand]="overwrite 4 KiB x $NROW random, + fsync (cold)"
	[fsync]="4 KiB append + fsync, x $NFSYNC"
	[fsync_flushes]="device flushes per fsync (see notes)"
	[untar]="untar $TAR_SRC ($TAR_ENTRIES entries, $TAR_MIB MiB)"
	[rmrf]="rm -rf of that tree"
)
declare -A WUNIT=(
	[create]="files/s" [stat]="files/s" [rename]="files/s" [unlink]="files/s"
	[mkdir]="dirs/s" [small_write]="files/s" [small_read]="files/s"
	[seq_write]="MiB/s" [seq_read]="MiB/s" [rand_read]="IOPS" [ow_seq]="MiB/s"
	[ow_rand]="IOPS" [fsync]="IOPS" [fsync_flushes]="flushes" [untar]="s" [rmrf]="s"
)
WORKLOADS=(create stat rename unlink mkdir small_write small_read seq_write seq_read
	rand_read ow_seq ow_rand fsync fsync_flushes untar rmrf)

has() { [[ " $TARGETS " == *" $1 "* ]]; }

REPORT=$WORK/report.md
{
	echo "## peerfs benchmarks, $DATE"
	echo
	echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
		"Linux $(uname -r); images of $IMG_SIZE as files on $(findmnt -n -o SOURCE,FSTYPE --target "$WORK" | tr -s ' ' ' ')" \
		"($BENCH_DIR). peerfs $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+local changes')," \
		"fuse2fs $(dpkg-query -W -f '${Version}' fuse2fs 2>/dev/null || echo '?')."
	echo "Median of $RUNS run(s), targets interleaved; ±: half the range as a percentage of the median." \
		"Mount options: defaults (peerfs commit_ms=1000, cache_size=256M; ext4 data=ordered on a loop device; fuse2fs as shipped)." \
		"Total time $((ELAPSED / 60)) min $((ELAPSED % 60)) s; load average $LOAD_START at the start," \
		"$LOAD_END at the end (other work on the machine widens the spread)."
	echo
	hdr="| workload | unit"
	sep="|---|---"
	for t in "${TLIST[@]}"; do hdr+=" | $t"; sep+="|---:"; done
	for p in peerfs-undo peerfs-ordered; do
		has "$p" || continue
		for o in ext4 fuse2fs; do
			has "$o" || continue
			hdr+=" | ${p#peerfs-}/$o"
			sep+="|---:"
		done
	done
	echo "$hdr |"
	echo "$sep|"
	for w in "${WORKLOADS[@]}"; do
		row="| ${WLABEL[$w]} | ${WUNIT[$w]}"
		declare -A MED=()
		for t in "${TLIST[@]}"; do
			read -r m s <<<"$(stats "$w" "$t")" || true
			if [[ -n ${m:-} ]]; then
				MED[$t]=$m
				row+=" | $(fmt "$m") ±$(printf '%.0f' "$s")%"
			else
				MED[$t]=
				row+=" | -"
			fi
			m= s=
		done
		for p in peerfs-undo peerfs-ordered; do
			has "$p" || continue
			for o in ext4 fuse2fs; do
				has "$o" || continue
				if [[ $w == fsync_flushes ]]; then
					row+=" | -"
				else
					row+=" | $(ratio "${MED[$p]:-}" "${MED[$o]:-}")"
				fi
			done
		done
		echo "$row |"
		unset MED
	done
	echo
	echo "Ratios are peerfs / other on the medians: above 1 is faster for the rates, slower for the times (s)."
	if has peerfs-undo && has peerfs-ordered; then
		echo
		echo "### data=undo vs data=ordered (overwrites of an existing file)"
		echo
		echo "| workload | unit | undo | ordered | undo/ordered |"
		echo "|---|---|---:|---:|---:|"
		for w in ow_seq ow_rand; do
			read -r mu su <<<"$(stats "$w" peerfs-undo)" || true
			read -r mo so <<<"$(stats "$w" peerfs-ordered)" || true
			echo "| ${WLABEL[$w]} | ${WUNIT[$w]} | $(fmt "${mu:-0}") ±$(printf '%.0f' "${su:-0}")% |" \
				"$(fmt "${mo:-0}") ±$(printf '%.0f' "${so:-0}")% | $(ratio "${mu:-}" "${mo:-}") |"
		done
	fi
	if [[ -n $(stats rec_scan peerfs-undo) ]]; then
		echo
		echo "### Journal recovery (peerfs, data=undo)"
		echo
		echo "A commit of a $RECOVERY_MIB MiB overwrite crashed half-way through its in-place writes" \
			"(PEERFS_FAULT=crash_io, mkfs -n 1 -J 256M, mount -o commit_ms=600000,cache_size=1G), the daemon killed with SIGKILL," \
			"page cache dropped, then the next mount timed.  Median of $RUNS run(s)."
		echo
		echo "| phase | median | ± | runs |"
		echo "|---|---:|---:|---|"
		for w in rec_undo rec_scan rec_backout rec_mount; do
			read -r m s <<<"$(stats "$w" peerfs-undo)"
			case $w in
			rec_undo) l="before-images in flight (4 KiB blocks)" ;;
			rec_scan) l="journal scan (ms, from the mount log)" ;;
			rec_backout) l="backout (ms, from the mount log)" ;;
			rec_mount) l="whole mount, daemon start to mounted (s)" ;;
			esac
			echo "| $l | $(fmt "$m") | $(printf '%.0f' "$s")% | $(samples "$w" peerfs-undo) |"
		done
		echo
		echo "The whole mount includes the takeover of the dead node's slot, which watches its heartbeat" \
			"for 2 x heartbeat_ms + 200 ms (1.2 s by default) before it recovers."
	fi
	echo
	echo "Notes: cold phases follow a remount and \`echo 3 > /proc/sys/vm/drop_caches\`; mutating phases" \
		"include a final sync (syncfs + fsync of a marker file, which makes a FUSE daemon commit)." \
		"Device flushes per fsync: for peerfs and fuse2fs the fsync/fdatasync calls of the daemon" \
		"on its image file, for ext4 the flush requests of its loop device (each of these becomes" \
		"at least one flush of the host disk), counted with perf."
} >"$REPORT"

for w in "${WORKLOADS[@]}" rec_undo rec_scan rec_backout rec_mount; do
	for t in "${TLIST[@]}"; do
		read -r m s <<<"$(stats "$w" "$t")" || true
		[[ -n ${m:-} ]] || continue
		u=${WUNIT[$w]:-}
		case $w in
		rec_undo) u=blocks ;; rec_scan | rec_backout) u=ms ;; rec_mount) u=s ;;
		esac
		echo "result workload=$w target=$t median=$m unit=$u spread_pct=$s runs=$RUNS samples=$(samples "$w" "$t")"
		m= s=
	done
done
echo
cat "$REPORT"
cp "$REPORT" "$RESULTS"
log "report written to $RESULTS"
