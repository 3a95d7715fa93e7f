#!/usr/bin/env bash
# mkfs-options: what mkfs.peerfs's options do to the volume: -s (image
# size, primary and backup superblock), -q (silent), -L (label), -n
# (slots: the last slot mounts, one more is refused), -g and -J (geometry,
# then a volume spanning several groups holds data), -E root_owner, and
# an existing zero-filled file extended to the size.
# timeout: 180
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
mkfs=$(pfs_bin mkfs.peerfs)

u32() { od -An -tu4 -j"$2" -N4 "$1" | tr -d ' '; }
u64() { od -An -tu8 -j"$2" -N8 "$1" | tr -d ' '; }
magic() { od -An -c -j"$2" -N4 "$1" | tr -d ' '; }

step "-s and -q"
out=$("$mkfs" -q -s 200M -k a.key a.img)
expect_eq "$out" "" "output of mkfs -q"
expect_eq "$(stat -c %s a.img)" $((200 << 20)) "image size"
expect_eq "$(magic a.img 0)" PRFS "primary superblock magic"
expect_eq "$(u64 a.img 56)" $((200 << 20 >> 12)) "block count"
expect_eq "$(magic a.img $(((200 << 20) - 4096)))" PRFS "backup superblock magic"
expect_eq "$(u32 a.img $(((200 << 20) - 4096 + 264)))" 1 "backup flag of the backup superblock"

step "-L"
expect_ok "$mkfs" -q -s 128M -L test-label-1 -k l.key l.img
expect_eq "$(dd if=l.img bs=1 skip=80 count=64 status=none | tr -d '\0')" test-label-1 "label"

step "-n"
expect_ok "$mkfs" -q -s 128M -n 3 -k n.key n.img
expect_eq "$(u32 n.img 52)" 3 "slots"
PFS_IMAGE=$PFS_TEST_DIR/n.img PFS_KEY=$PFS_TEST_DIR/n.key
pfs_mount mnt -o node=2
echo slot2 >mnt/f
pfs_umount mnt
if pfs_try_mount mnt -o node=3; then
	fail "node=3 mounted a volume of 3 slots"
fi
((PFS_TRY_MOUNTED == 0)) || fail "node=3 mounted a volume of 3 slots"
pfs_fsck

step "-g and -J"
expect_ok "$mkfs" -q -s 256M -g 8192 -J 4M -k g.key g.img
expect_eq "$(u32 g.img 180)" 8192 "blocks per group"
expect_eq "$(u64 g.img 160)" 1024 "journal blocks per slot"
(($(u32 g.img 176) >= 7)) || fail "$(u32 g.img 176) groups in 256 MiB of 8192-block groups"
PFS_IMAGE=$PFS_TEST_DIR/g.img PFS_KEY=$PFS_TEST_DIR/g.key
pfs_mount mnt
head -c 100M /dev/urandom >data.src
cp data.src mnt/data
for i in $(seq 1 200); do echo "$i" >"mnt/small-$i"; done
pfs_remount mnt
cmp data.src mnt/data || fail "data across groups"
expect_eq "$(cat mnt/small-200)" 200 "a small file"
pfs_umount mnt
pfs_fsck

step "-E root_owner"
expect_ok "$mkfs" -q -s 128M -E root_owner=1234:5678 -k o.key o.img
PFS_IMAGE=$PFS_TEST_DIR/o.img PFS_KEY=$PFS_TEST_DIR/o.key
pfs_mount mnt
expect_eq "$(stat -c %u:%g:%a mnt)" 1234:5678:755 "owner and mode of the root directory"
pfs_umount mnt

step "an existing zero-filled file is extended"
truncate -s 10M z.img
expect_ok "$mkfs" -q -s 128M -k z.key z.img
expect_eq "$(stat -c %s z.img)" $((128 << 20)) "size of the extended image"
PFS_IMAGE=$PFS_TEST_DIR/z.img PFS_KEY=$PFS_TEST_DIR/z.key
pfs_mount mnt
pfs_umount mnt
pfs_fsck
