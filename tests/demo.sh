#!/usr/bin/env bash
# peerfs demo on the embedded default: format an image, mount it as two
# nodes, crash node 1 in the middle of a write, and watch node 0 detect
# the death, become node 1's counterpart, back out its half-done
# transaction and release its locks, while node 0 keeps working.
set -euo pipefail

BUILD=${BUILD:-build}
BIN=$(cd "$BUILD" && pwd)
DIR=${DEMO_DIR:-/tmp/peerfs-demo}
IMG=$DIR/volume.img
MNT0=$DIR/node0 MNT1=$DIR/node1
LOG0=$DIR/node0.log LOG1=$DIR/node1.log
export PEERFS_KEYDIR=$DIR/keys
PID0= PID1=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	for m in "$MNT1" "$MNT0"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in $PID1 $PID0; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# mount_node N: node N at $DIR/nodeN; its pid in PID<N>.
mount_node() {
	local n=$1 mnt=$DIR/node$1
	"$BIN/peerfs" "$IMG" "$mnt" -f -o "node=$n,commit_ms=200" >>"$DIR/node$n.log" 2>&1 &
	eval "PID$n=$!"
	for _ in $(seq 100); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
	echo "mount failed:"; cat "$DIR/node$n.log"; exit 1
}

rm -rf "$DIR"
mkdir -p "$MNT0" "$MNT1"

say "format a 512 MiB volume"
"$BIN/mkfs.peerfs" -s 512M -L demo "$IMG"

say "mount it as node 0 and node 1 (two daemons, one volume)"
mount_node 0
mount_node 1
df -h "$MNT0"

say "workload: node 0 unpacks a source tree; node 1 writes a file made durable with fsync"
tar -C /usr/include -cf - . 2>/dev/null | tar -C "$MNT0" -xf - --no-same-owner
mkdir "$MNT1/data"
head -c 8M /dev/urandom >"$DIR/precious.bin"
cp "$DIR/precious.bin" "$MNT1/data/precious.bin"
sync -f "$MNT1/data/precious.bin"
want=$(md5sum <"$DIR/precious.bin")
echo "node 0 sees node 1's file: $(md5sum <"$MNT0/data/precious.bin" | cut -c1-32) (want ${want%% *})"
echo "files: $(find "$MNT0" -type f | wc -l)"

say "crash: kill -9 node 1 while it overwrites a 96 MiB file"
head -c 96M /dev/urandom >"$DIR/victim.orig"
cp "$DIR/victim.orig" "$MNT1/data/victim.bin"
sync -f "$MNT1/data/victim.bin"
# The kill must land while a commit is in flight for the journal to have
# something to back out; retry a few times if it lands between commits.
for attempt in 1 2 3 4 5 6; do
	lines=$(wc -l <"$LOG0")
	# 32 KiB writes are overwritten in place with their before-images
	# logged (writes of 64 KiB and more would move to new blocks).
	( dd if=/dev/zero of="$MNT1/data/victim.bin" bs=32K count=3072 conv=notrunc status=none 2>/dev/null || true ) &
	WRITER=$!
	sleep "0.$((RANDOM % 6 + 4))"
	kill -9 "$PID1"
	t_kill=$(date +%s.%N)
	wait "$WRITER" 2>/dev/null || true
	wait "$PID1" 2>/dev/null || true
	PID1=
	umount -l "$MNT1" 2>/dev/null || true
	echo "attempt $attempt: node 1 killed; node 0 keeps working meanwhile:"
	mkdir -p "$MNT0/while-node1-is-dead" && echo ok >"$MNT0/while-node1-is-dead/$attempt" &&
		echo "  node 0 created while-node1-is-dead/$attempt"
	"$BIN/peerfsctl" status "$IMG" | sed -n '/^coordinator/,/^locks/p'

	say "node 0 detects the death and recovers node 1 as its counterpart"
	for _ in $(seq 200); do
		tail -n +"$((lines + 1))" "$LOG0" | grep -q "recovery of node 1: done" && break
		sleep 0.05
	done
	t_done=$(date +%s.%N)
	tail -n +"$((lines + 1))" "$LOG0" | grep -E "dead|recovery|journal of slot 1|released" || true
	printf 'from the kill to the last lock released: %.2f s\n' "$(echo "$t_done - $t_kill" | bc)"
	tail -n +"$((lines + 1))" "$LOG0" | grep -q "[1-9][0-9]* in flight" && break
	echo "(the kill landed between commits; again)"
	mount_node 1
	cp "$DIR/victim.orig" "$MNT1/data/victim.bin"
	sync -f "$MNT1/data/victim.bin"
done

say "check on node 0: the fsync'd file is intact, every write request all-or-nothing"
got=$(md5sum <"$MNT0/data/precious.bin")
echo "precious.bin md5 ${got%% *} (want ${want%% *})"
[ "${got%% *}" = "${want%% *}" ] || { echo "precious.bin damaged"; exit 1; }
# Each 32 KiB request either landed whole (zeros) or not at all.
"$BIN/tests/chunkcheck" "$DIR/victim.orig" "$MNT0/data/victim.bin" 32768

say "node 1 comes back: its slot is free again"
mount_node 1
echo "node 1 sees $(find "$MNT1" -type f | wc -l) files, node 0 $(find "$MNT0" -type f | wc -l)"
"$BIN/peerfsctl" status "$IMG" | sed -n '/^coordinator/,$p'
fusermount3 -u "$MNT1"
wait "$PID1" 2>/dev/null || true
fusermount3 -u "$MNT0"
wait "$PID0" 2>/dev/null || true
PID0= PID1=

if [ -x "$BIN/fsck.peerfs" ]; then
	say "fsck.peerfs -n"
	"$BIN/fsck.peerfs" -n "$IMG"
fi
say "done (volume left in $DIR)"
