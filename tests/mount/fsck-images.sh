#!/usr/bin/env bash
# fsck-images: fsck.peerfs on images with one kind of damage each, made by
# tests/tools/mkdamaged.c.  For every damage: -n reports exactly the lines
# of tests/fsck/expected/NAME.txt (the image path replaced by DEVICE),
# exits 4 and leaves the image unchanged; -y exits 1; -n then finds the
# volume clean (exit 0).  The clean image gives exit 0 and the clean
# output.  -p repairs a crashed node's leftovers (exit 1) but not a link
# count (exit 4).  Finally fsck.peerfs refuses to repair a volume that a
# node has mounted (exit 8, nothing written) and only warns with -n.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

FSCK=$(pfs_bin fsck.peerfs)
MKDAMAGED=$(pfs_tool mkdamaged)
EXPECTED=$PFS_ROOT/tests/fsck/expected
IMG=$PFS_TEST_DIR/damaged.img
KEY=$PFS_TEST_DIR/damaged.key

# fsck_run OPTION NAME: run fsck.peerfs OPTION on the image, stdout in
# NAME.out (image path replaced by DEVICE), stderr in NAME.err; sets RC.
fsck_run() {
	RC=0
	"$FSCK" "$1" -k "$KEY" "$IMG" </dev/null >"$PFS_TEST_DIR/$2.raw" \
		2>"$PFS_TEST_DIR/$2.err" || RC=$?
	sed "s#$IMG#DEVICE#g" "$PFS_TEST_DIR/$2.raw" >"$PFS_TEST_DIR/$2.out"
}

# expect_rc WANT WHAT NAME: RC must be WANT and stderr empty.
expect_rc() {
	if [[ $RC -ne $1 ]]; then
		cat "$PFS_TEST_DIR/$3.out" "$PFS_TEST_DIR/$3.err" >&2
		fail "$2: exit status $RC, expected $1"
	fi
	if [[ -s $PFS_TEST_DIR/$3.err ]]; then
		cat "$PFS_TEST_DIR/$3.err" >&2
		fail "$2: unexpected messages on stderr"
	fi
}

expect_clean() {
	fsck_run -n "$1.after"
	expect_rc 0 "$1: fsck -n after the repair" "$1.after"
	[[ $(tail -n 1 "$PFS_TEST_DIR/$1.after.out") == "DEVICE: clean" ]] ||
		fail "$1: no 'DEVICE: clean' line after the repair"
}

mapfile -t DAMAGES < <("$MKDAMAGED" -l)
((${#DAMAGES[@]} > 1)) || fail "mkdamaged lists no damages"

for d in "${DAMAGES[@]}"; do
	step "$d"
	[[ -f $EXPECTED/$d.txt ]] || fail "no expected output $EXPECTED/$d.txt"
	"$MKDAMAGED" "$IMG" "$KEY" "$d"
	before=$(md5sum <"$IMG")
	fsck_run -n "$d.check"
	if [[ $d == none ]]; then
		expect_rc 0 "$d: fsck -n" "$d.check"
	else
		expect_rc 4 "$d: fsck -n" "$d.check"
	fi
	if ! diff -u "$EXPECTED/$d.txt" "$PFS_TEST_DIR/$d.check.out" >&2; then
		fail "$d: fsck -n output differs from $EXPECTED/$d.txt"
	fi
	[[ $(md5sum <"$IMG") == "$before" ]] || fail "$d: fsck -n changed the image"
	[[ $d != none ]] || continue
	fsck_run -y "$d.repair"
	expect_rc 1 "$d: fsck -y" "$d.repair"
	grep -q '\[not fixed\]' "$PFS_TEST_DIR/$d.repair.out" &&
		fail "$d: fsck -y left a problem: $(grep '\[not fixed\]' "$PFS_TEST_DIR/$d.repair.out")"
	expect_clean "$d"
done

step "-p repairs what a crashed node left"
"$MKDAMAGED" "$IMG" "$KEY" orphan-unlinked
fsck_run -p preen-orphan
expect_rc 1 "orphan-unlinked: fsck -p" preen-orphan
expect_clean preen-orphan

step "-p leaves a wrong link count"
"$MKDAMAGED" "$IMG" "$KEY" wrong-nlink
fsck_run -p preen-nlink
expect_rc 4 "wrong-nlink: fsck -p" preen-nlink
grep -qx 'inode [0-9]*: nlink is 3, counted 1 \[not fixed\]' "$PFS_TEST_DIR/preen-nlink.out" ||
	fail "wrong-nlink: fsck -p did not report the link count as not fixed"

step "a mounted volume is not repaired"
pfs_require_peerfs
"$MKDAMAGED" "$IMG" "$KEY" bad-group-count
PFS_IMAGE=$IMG
PFS_KEY=$KEY
pfs_mount mnt
echo data >"$PFS_TEST_DIR/mnt/new-file"
for opt in -y -p; do
	fsck_run "$opt" "mounted$opt"
	[[ $RC -eq 8 ]] || fail "fsck $opt on a mounted volume: exit status $RC, expected 8"
	grep -q 'mounted' "$PFS_TEST_DIR/mounted$opt.err" ||
		fail "fsck $opt on a mounted volume: no message saying so"
done
fsck_run -n mounted-n
grep -q '^warning: slot [0-9]* is in use' "$PFS_TEST_DIR/mounted-n.out" ||
	fail "fsck -n on a mounted volume: no warning"
pfs_umount mnt
# The refused repairs wrote nothing: the damage is still there.
fsck_run -n after-mount
expect_rc 4 "fsck -n after the refused repairs" after-mount
grep -q '^group 0: free blocks count is' "$PFS_TEST_DIR/after-mount.out" ||
	fail "the damage went away although the repairs were refused"
fsck_run -y after-mount-repair
expect_rc 1 "fsck -y after unmounting" after-mount-repair
expect_clean after-mount
echo "fsck-images: all passed"
