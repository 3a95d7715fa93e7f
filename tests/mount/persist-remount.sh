#!/usr/bin/env bash
# persist-remount: a tree with data of many sizes, symlinks of many
# lengths, hard links, extended attributes, a sparse file, special files,
# odd modes, owners and times, and a large directory survives unmount and
# mount exactly (full manifest: metadata with inode numbers and ns times,
# md5 of every file, xattrs); then again after changes and a remount
# with data=ordered.  fsck after each unmount.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_cmd setfattr getfattr
pfs_setup -s 512M
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
T=$M/tree

# A symlink target of exactly N bytes, in components of at most 200.
target_of() {
	local n=$1 s=
	while ((${#s} < n)); do
		s+=$(printf '%0200d' 0 | tr 0 "${2:-c}")/
	done
	printf '%s' "${s:0:n}"
}

step "building the tree"
mkdir -p "$T/a/b/c" "$T/empty" "$T/big-dir" "$T/$(printf 'd%.0s' {1..255})"
for s in 0 1 100 4095 4096 4097 65536 1048583; do
	head -c "$s" /dev/urandom >"$T/a/size-$s"
done
head -c 20M /dev/urandom >"$T/a/b/c/large"
printf 'small\n' >"$T/small"
ln -s small "$T/link-short"
for n in 95 96 97 1000 4095; do
	ln -s "$(target_of "$n")" "$T/link-$n"
done
ln -s a/b "$T/link-dir"
ln -s /nonexistent/target "$T/link-dangling"
echo linked >"$T/a/h1"
ln "$T/a/h1" "$T/a/b/h2"
ln "$T/a/h1" "$T/h3"
setfattr -n user.one -v 1 "$T/small"
setfattr -n user.bin -v 0x0001ff "$T/a/size-100"
setfattr -n user.dir -v d "$T/a"
truncate -s 64M "$T/sparse"
printf middle | dd of="$T/sparse" bs=1 seek=$((40 << 20)) conv=notrunc status=none
printf end | dd of="$T/sparse" bs=1 seek=$(((64 << 20) - 3)) conv=notrunc status=none
mkfifo "$T/fifo"
if [[ $EUID -eq 0 ]]; then
	mknod "$T/cdev" c 1 3
	mknod "$T/bdev" b 7 200
	chown 1234:5678 "$T/a/size-4096"
	chown -h 42:43 "$T/link-short"
fi
chmod 4755 "$T/a/size-1"
chmod 0 "$T/a/size-0"
chmod 1777 "$T/empty"
chmod 0700 "$T/a/b"
touch -d '2001-02-03 04:05:06.123456789' "$T/a/size-4095"
touch -h -d '1999-12-31 23:59:59.5' "$T/link-dir"
for ((i = 0; i < 3000; i++)); do
	: >"$T/big-dir/entry-with-a-longer-name-$i"
done
# Outside the tree: a sparse file past 4 GiB, checked by its own means.
truncate -s 5G "$M/huge"
printf 'at 4G' | dd of="$M/huge" bs=1 seek=$((4 << 30)) conv=notrunc status=none

check_huge() {
	expect_eq "$(stat -c %s "$M/huge")" $((5 << 30)) "size of huge"
	(($(stat -c %b "$M/huge") <= 64)) || fail "huge holds $(stat -c %b "$M/huge") blocks"
	expect_eq "$(dd if="$M/huge" bs=1 skip=$((4 << 30)) count=5 status=none)" "at 4G" "data of huge"
}
check_huge
pfs_manifest "$T" full >manifest.1
echo "manifest: $(wc -l <manifest.1) lines"

step "unmount, fsck, mount"
pfs_umount "$M"
pfs_fsck
pfs_mount "$M"
pfs_manifest "$T" full >manifest.2
diff manifest.1 manifest.2 >diff.out || { head -n 30 diff.out >&2; fail "the tree changed across a remount"; }
check_huge
(($(stat -c %b "$T/sparse") <= 64)) || fail "sparse holds $(stat -c %b "$T/sparse") blocks after a remount"

step "changes, then a remount with data=ordered"
head -c 12345 /dev/urandom >>"$T/a/b/c/large"
truncate -s 1000 "$T/a/size-65536"
rm "$T/h3"
mv "$T/a/b" "$T/a/moved"
setfattr -x user.one "$T/small"
setfattr -n user.new -v "$(printf 'v%.0s' {1..300})" "$T/a/size-1"
for ((i = 0; i < 3000; i += 2)); do
	rm "$T/big-dir/entry-with-a-longer-name-$i"
done
head -c 3M /dev/urandom >"$T/new-file"
chmod 0640 "$T/small"
rm "$T/link-1000"
rmdir "$T/empty"
pfs_manifest "$T" full >manifest.3
pfs_remount "$M" -o data=ordered
pfs_manifest "$T" full >manifest.4
diff manifest.3 manifest.4 >diff.out || { head -n 30 diff.out >&2; fail "the changed tree differs after a remount"; }
check_huge

step "a third mount with commit_ms=50"
pfs_remount "$M" -o commit_ms=50
pfs_manifest "$T" full >manifest.5
diff manifest.3 manifest.5 >diff.out || { head -n 30 diff.out >&2; fail "the tree differs on the third mount"; }

# One transaction (commit_ms=600000) that caches blocks it allocated: a
# write over committed blocks 0-1 and new blocks 2-5 caches all of them;
# a later partial write of new block 3 must go to that cached copy, not
# around it (file.c F5).  The same writes on a local file give the bytes
# expected after a remount.
step "overwrites mixing committed and newly allocated blocks in one transaction"
pfs_remount "$M" -o commit_ms=600000
mixed_writes() {
	dd if=mix.0 of="$1" bs=8192 count=1 conv=notrunc,fsync status=none
	dd if=mix.1 of="$1" bs=24576 count=1 conv=notrunc status=none
	dd if=mix.2 of="$1" bs=16384 count=1 seek=4096 oflag=seek_bytes conv=notrunc status=none
	dd if=mix.3 of="$1" bs=1667 count=1 seek=14717 oflag=seek_bytes conv=notrunc status=none
	dd if=mix.3 of="$1" bs=100 count=1 seek=20000 oflag=seek_bytes conv=notrunc status=none
}
for i in 0 1 2 3; do head -c 24576 /dev/urandom >mix.$i; done
mixed_writes mixed.expected
mixed_writes "$M/mixed"
cmp "$M/mixed" mixed.expected || fail "mixed overwrites read back wrong before the commit"
pfs_remount "$M"
cmp "$M/mixed" mixed.expected || fail "mixed overwrites lost across a remount"
pfs_umount "$M"
pfs_fsck
