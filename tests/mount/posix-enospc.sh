#!/usr/bin/env bash
# posix-enospc: a small volume filled up: a file until ENOSPC, then small
# files and appends fail with ENOSPC, the daemon keeps working, statfs
# stays consistent, deleting gives the space back and it can be used
# again; then the inodes run out the same way.  fsck at the end.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_setup -s 64M
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
MiB=1048576

statfs_sane() {
	local blocks bfree bavail frsize files ffree
	read -r blocks bfree bavail frsize files ffree < <(pfs_statfs "$M")
	((blocks > 0 && bfree <= blocks && bavail <= bfree && ffree <= files)) ||
		fail "statfs inconsistent: blocks $blocks bfree $bfree bavail $bavail files $files ffree $ffree"
}

read -r blocks0 _ bavail0 frsize files0 ffree0 < <(pfs_statfs "$M")
avail0=$((bavail0 * frsize))
echo "statfs: $blocks0 blocks of $frsize, $bavail0 available, $ffree0 of $files0 inodes free"
statfs_sane

mkdir "$M/small"

step "one file until ENOSPC"
rc=0
dd if=/dev/zero of="$M/fill" bs=1M status=none 2>dd.err || rc=$?
((rc != 0)) || fail "dd filled the volume without an error"
grep -q 'No space left on device' dd.err || fail "dd failed otherwise: $(cat dd.err)"
size=$(stat -c %s "$M/fill")
echo "wrote $size of $avail0 available bytes"
((size >= avail0 * 8 / 10)) || fail "only $size of $avail0 available bytes could be written"
statfs_sane
read -r _ _ bavail _ _ _ < <(pfs_statfs "$M")
slack=$((blocks0 * frsize / 50 > MiB ? blocks0 * frsize / 50 : MiB))
((bavail * frsize <= slack)) || fail "$((bavail * frsize)) bytes still available after ENOSPC"
cmp -n "$size" "$M/fill" /dev/zero || fail "content of the full file"

step "more writes fail with ENOSPC"
expect_errno ENOSPC sh -c "head -c 4M /dev/zero >>'$M/fill'"
n=0
while ((n < 5000)); do
	if ! (echo x >"$M/small/f$n") 2>small.err; then
		break
	fi
	n=$((n + 1))
done
((n < 5000)) || fail "5000 small files fit on a full volume"
grep -q 'No space left on device' small.err || fail "small file creation failed otherwise: $(cat small.err)"
echo "$n small files fit"
statfs_sane

step "the volume still works"
mountpoint -q "$M" || fail "the mount went away"
ls -l "$M" >/dev/null
stat "$M/fill" >/dev/null
sync -f "$M"

step "deleting gives the space back"
rm -rf "$M/fill" "$M/small"
sync -f "$M"
slack=$((blocks0 * frsize / 100 > 512 * 1024 ? blocks0 * frsize / 100 : 512 * 1024))
for ((i = 0; i < 50; i++)); do
	read -r _ _ bavail _ _ _ < <(pfs_statfs "$M")
	((bavail * frsize < avail0 - slack)) || break
	sleep 0.2
done
((bavail * frsize >= avail0 - slack)) || fail "available $((bavail * frsize)) after deleting, $avail0 before"
statfs_sane

step "the space is usable again"
head -c $((avail0 / 2)) /dev/urandom >data.src
cp data.src "$M/again"
sync -f "$M"
cmp data.src "$M/again" || fail "content written after ENOSPC"

step "running out of inodes"
read -r _ _ _ _ _ ffree < <(pfs_statfs "$M")
mkdir "$M/inodes"
n=0
while ((n <= ffree + 100)); do
	if ! (: >"$M/inodes/$n") 2>inodes.err; then
		break
	fi
	n=$((n + 1))
done
((n <= ffree)) || fail "created $n files with $ffree free inodes"
grep -q 'No space left on device' inodes.err || fail "file creation failed otherwise: $(cat inodes.err)"
echo "$n empty files fit ($ffree inodes were free)"
((n >= ffree - 16)) || fail "only $n of $ffree free inodes could be used"
read -r _ _ _ _ _ ffree1 < <(pfs_statfs "$M")
((ffree1 <= 16)) || fail "$ffree1 inodes free after running out"
rm -rf "$M/inodes"
sync -f "$M"
for ((i = 0; i < 50; i++)); do
	read -r _ _ _ _ _ ffree1 < <(pfs_statfs "$M")
	((ffree1 < ffree)) || break
	sleep 0.2
done
expect_eq "$ffree1" "$ffree" "free inodes after deleting"
statfs_sane
pfs_umount "$M"
pfs_fsck
pfs_mount "$M"
cmp data.src "$M/again" || fail "content after a remount"
pfs_umount "$M"
