#!/usr/bin/env bash
# bench/cluster.sh -- multi-node benchmarks of peerfs on one host
# (coord=local), run by `make bench` after bench/run.sh or alone:
#   - aggregate create rate with 1, 2 and 4 nodes, each node creating
#     files in a directory of its own (FILES per node, 4 KiB each);
#   - lock ping-pong: two nodes alternately appending 4 KiB to one file
#     (ROUNDS appends), the rate and the time per hand-over;
#   - first access to a file last written by another node (stat + read),
#     against the same access on the writing node;
#   - fcntl lock + unlock pairs (LOCKS of them per process): one node,
#     then two nodes at once on other bytes of the same file, against
#     coord=none (the kernel's node-local locks).
# Prints a markdown table.  Environment: BUILD (build), DIR (/var/tmp/
# peerfs-bench-cluster), FILES (2000), ROUNDS (200), LOCKS (20000).
set -euo pipefail

BUILD=${BUILD:-build}
BIN=$(cd "$BUILD" && pwd)
DIR=${DIR:-/var/tmp/peerfs-bench-cluster}
FILES=${FILES:-2000}
ROUNDS=${ROUNDS:-200}
LOCKS=${LOCKS:-20000}
IMG=$DIR/vol.img
export PEERFS_KEYDIR=$DIR

declare -a PIDS=()
cleanup() {
	local m
	for m in "$DIR"/n*; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT

now() { date +%s.%N; }

mount_nodes() {
	local n
	for ((n = 0; n < $1; n++)); do
		mkdir -p "$DIR/n$n"
		"$BIN/peerfs" "$IMG" "$DIR/n$n" -f -o "node=$n,keyfile=$DIR/vol.key" >>"$DIR/n$n.log" 2>&1 &
		PIDS+=($!)
	done
	for ((n = 0; n < $1; n++)); do
		for _ in $(seq 200); do mountpoint -q "$DIR/n$n" && break; sleep 0.05; done
		mountpoint -q "$DIR/n$n" || { cat "$DIR/n$n.log"; exit 1; }
	done
}

umount_nodes() {
	local n
	for ((n = 0; n < $1; n++)); do fusermount3 -u "$DIR/n$n"; done
	wait
	PIDS=()
}

fresh() {
	rm -rf "$DIR"
	mkdir -p "$DIR"
	"$BIN/mkfs.peerfs" -s 2G -n 8 -k "$DIR/vol.key" "$IMG" >/dev/null
}

PFSBENCH=$BIN/bench/pfsbench
mkdir -p "$BIN/bench"
[[ -x $PFSBENCH ]] || cc -O2 -Wall -Wextra -Werror -std=gnu11 -o "$PFSBENCH" "$(dirname "$0")/pfsbench.c"

creator() {
	local d=$1
	mkdir "$d"
	"$PFSBENCH" smallwrite "$d" "$FILES" 4096 >/dev/null
	sync -f "$d"
}

echo "| workload | nodes | result |"
echo "|---|---:|---:|"
for nodes in 1 2 4; do
	fresh
	mount_nodes "$nodes"
	t0=$(now)
	workers=()
	for ((n = 0; n < nodes; n++)); do
		creator "$DIR/n$n/dir$n" &
		workers+=($!)
	done
	for w in "${workers[@]}"; do wait "$w"; done
	t1=$(now)
	rate=$(echo "$nodes * $FILES / ($t1 - $t0)" | bc -l)
	printf '| create %d files of 4 KiB per node, own directory | %d | %.0f files/s |\n' "$FILES" "$nodes" "$rate"
	umount_nodes "$nodes"
done

fresh
mount_nodes 2
: >"$DIR/n0/pingpong"
head -c 4096 /dev/urandom >"$DIR/blob"
t0=$(now)
for ((i = 0; i < ROUNDS; i++)); do
	cat "$DIR/blob" >>"$DIR/n$((i % 2))/pingpong"
done
t1=$(now)
printf '| ping-pong: 4 KiB appends alternating between nodes | 2 | %.0f appends/s (%.2f ms per hand-over) |\n' \
	"$(echo "$ROUNDS / ($t1 - $t0)" | bc -l)" "$(echo "($t1 - $t0) * 1000 / $ROUNDS" | bc -l)"
size=$(stat -c %s "$DIR/n1/pingpong")
[[ $size == $((ROUNDS * 4096)) ]] || echo "ping-pong: size $size, expected $((ROUNDS * 4096))" >&2

# First access on the other node vs. on the writing node.
other=0 same=0
for ((i = 0; i < 50; i++)); do
	echo "data $i" >"$DIR/n0/fa$i"
	t0=$(now); cat "$DIR/n0/fa$i" >/dev/null; t1=$(now)
	same=$(echo "$same + $t1 - $t0" | bc -l)
	echo "data $i" >"$DIR/n0/fb$i"
	t0=$(now); cat "$DIR/n1/fb$i" >/dev/null; t1=$(now)
	other=$(echo "$other + $t1 - $t0" | bc -l)
done
printf '| first read of a file just written by the other node (incl. process start) | 2 | %.2f ms (same node: %.2f ms) |\n' \
	"$(echo "$other * 1000 / 50" | bc -l)" "$(echo "$same * 1000 / 50" | bc -l)"
umount_nodes 2

# Advisory locks: lock + unlock pairs through the coordinator's table.
lockrate() {    # lockrate FILE OFF: pairs per second
	"$PFSBENCH" locks "$1" "$LOCKS" "$2" | awk '{ split($1, s, "="); split($2, o, "="); printf "%.0f", o[2] / s[2] }'
}
fresh
mount_nodes 2
: >"$DIR/n0/locks"
printf '| fcntl lock + unlock pairs, one node | 1 | %s pairs/s |\n' "$(lockrate "$DIR/n0/locks" 0)"
t0=$(now)
lockrate "$DIR/n0/locks" 0 >"$DIR/lr0" &
w0=$!
lockrate "$DIR/n1/locks" 1 >"$DIR/lr1" &
w1=$!
wait "$w0" "$w1"
printf '| fcntl lock + unlock pairs, two nodes at once (other bytes of one file) | 2 | %s + %s pairs/s |\n' \
	"$(cat "$DIR/lr0")" "$(cat "$DIR/lr1")"
umount_nodes 2
mkdir -p "$DIR/n0"
"$BIN/peerfs" "$IMG" "$DIR/n0" -f -o "node=0,coord=none,keyfile=$DIR/vol.key" >>"$DIR/n0.log" 2>&1 &
for _ in $(seq 200); do mountpoint -q "$DIR/n0" && break; sleep 0.05; done
printf '| fcntl lock + unlock pairs, coord=none (kernel-local locks) | 1 | %s pairs/s |\n' "$(lockrate "$DIR/n0/locks" 0)"
umount_nodes 1
