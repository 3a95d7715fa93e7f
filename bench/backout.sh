#!/usr/bin/env bash
# bench/backout.sh -- the backout engine (recovery/backout.c) on synthetic
# dead journals (bench/bobench.c): recovery time against workers (1, 2,
# 4, 8), time until the first and the median dead transaction is durable
# with and without time slices, and two dead nodes backed out one after
# the other or in one run; each on an image in memory (tmpfs, /dev/shm)
# and on disk (BENCH_DIR, default /var/tmp).
#
#   make bench                        (runs it after the other benchmarks)
#   BUILD=build bash bench/backout.sh
#
# Environment: UNDO (before-images of the many-transaction node, default
# 65536 = 256 MiB), TXS (its dead transactions, default 64), RUNS (default
# 5, the median is printed), BENCH_DIR, QUICK=1 (4096 blocks, 1 run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
BOBENCH=$BUILD/bench/bobench
[[ -x $BOBENCH ]] || { echo "backout.sh: build first (make)" >&2; exit 1; }
UNDO=${UNDO:-65536} TXS=${TXS:-64} RUNS=${RUNS:-5}
if [[ ${QUICK:-0} == 1 ]]; then UNDO=4096 RUNS=1; fi
BENCH_DIR=${BENCH_DIR:-/var/tmp}

MEM=$(mktemp -d /dev/shm/bobench.XXXXXX)
DISK=$(mktemp -d "$BENCH_DIR/bobench.XXXXXX")
trap 'rm -rf "$MEM" "$DISK"' EXIT

echo "# backout engine: $(nproc) CPUs, UNDO=$UNDO TXS=$TXS RUNS=$RUNS ($(date -u +%F))"
for where in memory disk; do
	dir=$MEM
	[[ $where == disk ]] && dir=$DISK
	echo "## $where ($(df --output=fstype "$dir" | tail -n 1 | tr -d ' ') $dir)"
	"$BOBENCH" -u "$UNDO" -t "$TXS" -r "$RUNS" "$dir/vol.img"
	rm -f "$dir/vol.img"
done
