#!/usr/bin/env bash
# mkfs-refuse: mkfs.peerfs refuses, with a message and without writing
# anything (image and key file untouched), an ext4 image and an existing
# peerfs volume unless -f is given, sizes too small for a volume, and bad
# options; -f does reformat.  The key file it writes is mode 0600, by
# default $PEERFS_KEYDIR/UUID.key, and names the volume's UUID.
# timeout: 180
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
mkfs=$(pfs_bin mkfs.peerfs)

sum() { cksum <"$1"; }

# refused WHAT CMD...: the command fails with a message, not a crash.
refused() {
	local what=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	((rc != 0)) || fail "$what: mkfs.peerfs accepted it"
	((rc < 128)) || fail "$what: mkfs.peerfs died (status $rc): $out"
	[[ -n $out ]] || fail "$what: refused without a message"
	grep -q -E 'Sanitizer|runtime error' <<<"$out" && fail "$what: $out"
	echo "ok: $what: refused ($rc): $(head -n 2 <<<"$out")"
}

# The volume UUID in the superblock, as 32 hex digits.
super_uuid() { od -An -tx1 -j64 -N16 "$1" | tr -d ' \n'; }
key_uuid() { awk '$1 == "uuid" { print $2 }' "$1" | tr -d '-' | tr 'A-F' 'a-f'; }

step "an ext4 image"
truncate -s 64M ext4.img
mkfs.ext4 -q -F ext4.img
s=$(sum ext4.img)
refused "ext4 image without -f" "$mkfs" -k e1.key ext4.img
expect_eq "$(sum ext4.img)" "$s" "ext4 image after a refused mkfs"
[[ ! -e e1.key ]] || fail "a refused mkfs left the key file e1.key"
e2fsck -fn ext4.img >/dev/null 2>&1 || fail "the ext4 image was damaged"
expect_ok "$mkfs" -f -k e2.key ext4.img
expect_eq "$(super_uuid ext4.img)" "$(key_uuid e2.key)" "UUID of the reformatted image and its key"
PFS_IMAGE=$PFS_TEST_DIR/ext4.img PFS_KEY=$PFS_TEST_DIR/e2.key
pfs_mount mnt
echo hello >mnt/file
pfs_umount mnt
pfs_fsck

step "an existing peerfs volume"
expect_ok "$mkfs" -s 128M -k p1.key p.img
PFS_IMAGE=$PFS_TEST_DIR/p.img PFS_KEY=$PFS_TEST_DIR/p1.key
pfs_mount mnt
echo old >mnt/old-file
pfs_umount mnt
s=$(sum p.img)
k=$(sum p1.key)
refused "peerfs volume without -f" "$mkfs" -s 128M -k p2.key p.img
refused "peerfs volume without -f, same key path" "$mkfs" -s 128M -k p1.key p.img
expect_eq "$(sum p.img)" "$s" "peerfs image after a refused mkfs"
expect_eq "$(sum p1.key)" "$k" "key file after a refused mkfs"
[[ ! -e p2.key ]] || fail "a refused mkfs left the key file p2.key"
expect_ok "$mkfs" -f -s 128M -k p2.key p.img
expect_eq "$(super_uuid p.img)" "$(key_uuid p2.key)" "UUID of the new volume and its key"
PFS_IMAGE=$PFS_TEST_DIR/p.img PFS_KEY=$PFS_TEST_DIR/p2.key
pfs_mount mnt
[[ ! -e mnt/old-file ]] || fail "a file of the old volume is still there after mkfs -f"
echo new >mnt/new-file
pfs_umount mnt
if pfs_try_mount mnt -o "keyfile=$PFS_TEST_DIR/p1.key"; then
	fail "the old key still mounts the reformatted volume"
fi

step "sizes too small"
refused "-s 256K" "$mkfs" -s 256K -k s.key small.img
refused "-s 0" "$mkfs" -s 0 -k s.key small.img
truncate -s 100K tiny.img
refused "a 100 KiB image" "$mkfs" -k s.key tiny.img
[[ ! -e s.key ]] || fail "a refused mkfs left the key file s.key"

step "bad options"
refused "unknown option" "$mkfs" -Z -s 128M -k b.key bad.img
refused "-n 0" "$mkfs" -n 0 -s 128M -k b.key bad.img
refused "-n 257" "$mkfs" -n 257 -s 128M -k b.key bad.img
refused "-n x" "$mkfs" -n x -s 128M -k b.key bad.img
refused "-s lots" "$mkfs" -s lots -k b.key bad.img
refused "-E nosuch=1" "$mkfs" -E nosuch=1 -s 128M -k b.key bad.img
refused "-E root_owner=abc" "$mkfs" -E root_owner=abc -s 128M -k b.key bad.img
refused "no image" "$mkfs" -s 128M -k b.key
refused "two images" "$mkfs" -s 128M -k b.key bad.img bad2.img
[[ ! -e bad.img && ! -e bad2.img ]] || fail "a refused mkfs created an image"
[[ ! -e b.key ]] || fail "a refused mkfs left the key file b.key"

step "key files"
expect_ok "$mkfs" -s 128M -k k.key k.img
expect_eq "$(stat -c %a k.key)" 600 "mode of the key file"
expect_eq "$(head -n 1 k.key)" "peerfs-key 1" "first line of the key file"
grep -q -E '^key [0-9a-fA-F]{64}$' k.key || fail "no key line in k.key"
expect_eq "$(key_uuid k.key)" "$(super_uuid k.img)" "UUID in the key file"
expect_ok env PEERFS_KEYDIR="$PFS_TEST_DIR/keys/sub" "$mkfs" -s 128M d.img
shopt -s nullglob
keys=("$PFS_TEST_DIR"/keys/sub/*.key)
shopt -u nullglob
expect_eq "${#keys[@]}" 1 "key files in \$PEERFS_KEYDIR"
name=$(basename "${keys[0]}" .key)
[[ $name =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] ||
	fail "default key file name $name is not a UUID"
expect_eq "$(tr -d '-' <<<"$name" | tr 'A-F' 'a-f')" "$(super_uuid d.img)" "UUID in the default key file name"
expect_eq "$(stat -c %a "${keys[0]}")" 600 "mode of the default key file"
expect_eq "$(stat -c %a "$PFS_TEST_DIR/keys/sub")" 700 "mode of a key directory mkfs created"
