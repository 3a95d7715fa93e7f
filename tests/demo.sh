#!/usr/bin/env bash
# peerfs demo on the embedded default: format an image, mount it, run a
# workload, crash the node in the middle of a write, and watch the undo
# journal back out the half-done transaction at the next mount.
set -euo pipefail

BUILD=${BUILD:-build}
BIN=$(cd "$BUILD" && pwd)
DIR=${DEMO_DIR:-/tmp/peerfs-demo}
IMG=$DIR/volume.img
MNT=$DIR/mnt
LOG=$DIR/node0.log
export PEERFS_KEYDIR=$DIR/keys

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
	[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

mount_node() {
	"$BIN/peerfs" "$IMG" "$MNT" -f -o node=0,commit_ms=200 >>"$LOG" 2>&1 &
	PID=$!
	for _ in $(seq 100); do mountpoint -q "$MNT" && return 0; sleep 0.05; done
	echo "mount failed:"; cat "$LOG"; exit 1
}

rm -rf "$DIR"
mkdir -p "$MNT"

say "format a 512 MiB volume"
"$BIN/mkfs.peerfs" -s 512M -L demo "$IMG"

say "mount it as node 0"
mount_node
df -h "$MNT"

say "workload: a source tree, a file made durable with fsync"
tar -C /usr/include -cf - . 2>/dev/null | tar -C "$MNT" -xf - --no-same-owner
mkdir "$MNT/data"
head -c 8M /dev/urandom >"$DIR/precious.bin"
cp "$DIR/precious.bin" "$MNT/data/precious.bin"
sync -f "$MNT/data/precious.bin"
want=$(md5sum <"$DIR/precious.bin")
echo "files: $(find "$MNT" -type f | wc -l), precious.bin md5 ${want%% *}"
"$BIN/peerfsctl" status "$IMG"

say "crash: kill -9 the node while it overwrites a 96 MiB file"
head -c 96M /dev/urandom >"$DIR/victim.orig"
cp "$DIR/victim.orig" "$MNT/data/victim.bin"
sync -f "$MNT/data/victim.bin"
# The kill must land while a commit is in flight for the journal to have
# something to back out; retry a few times if it lands between commits.
for attempt in 1 2 3 4 5 6; do
	( dd if=/dev/zero of="$MNT/data/victim.bin" bs=1M count=96 conv=notrunc status=none 2>/dev/null || true ) &
	WRITER=$!
	sleep "0.$((RANDOM % 6 + 4))"
	kill -9 "$PID"
	wait "$WRITER" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	PID=
	umount -l "$MNT" 2>/dev/null || true
	echo "attempt $attempt: node 0 killed; its slot still says mounted:"
	"$BIN/peerfsctl" status "$IMG" | sed -n '4p'

	say "remount: the undo journal backs out the transaction in flight"
	: >"$LOG"
	mount_node
	grep -E "journal|taking the slot|mounted" "$LOG" || true
	grep -q "[1-9][0-9]* in flight" "$LOG" && break
	cp "$DIR/victim.orig" "$MNT/data/victim.bin"
	sync -f "$MNT/data/victim.bin"
	echo "(the kill landed between commits; again)"
done

say "check: the fsync'd file is intact, every write request all-or-nothing"
got=$(md5sum <"$MNT/data/precious.bin")
echo "precious.bin md5 ${got%% *} (want ${want%% *})"
[ "${got%% *}" = "${want%% *}" ] || { echo "precious.bin damaged"; exit 1; }
# Each 1 MiB request either landed whole (zeros) or not at all.
"$BIN/tests/chunkcheck" "$DIR/victim.orig" "$MNT/data/victim.bin" 1048576
echo "files: $(find "$MNT" -type f | wc -l)"
fusermount3 -u "$MNT"
wait "$PID" 2>/dev/null || true
PID=

if [ -x "$BIN/fsck.peerfs" ]; then
	say "fsck.peerfs -n"
	"$BIN/fsck.peerfs" -n "$IMG"
fi
say "done (volume left in $DIR)"
