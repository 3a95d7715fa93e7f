#!/usr/bin/env bash
# work-untar: a real tree (/usr/include) through tar: extract onto the
# volume, compare with diff -r and a manifest of types, modes, owners,
# sizes and hard links, archive it again from the volume, extract an
# xz-compressed archive too; on peerfs compare again after a remount;
# remove everything and check the space comes back.
# timeout: 600
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_cmd tar xz diff
SRC=/usr/include
[[ -d $SRC ]] || fail "$SRC does not exist"
pfs_setup -s 1G
pfs_mount mnt
M=$PFS_TEST_DIR/mnt

step "archiving $SRC ($(du -sh "$SRC" | cut -f1), $(find "$SRC" | wc -l) entries)"
tar -C "$(dirname "$SRC")" -cf src.tar "$(basename "$SRC")"
tar -C "$SRC/.." -cf - "$(basename "$SRC")/linux" | xz -T2 -1 >linux.tar.xz
read -r _ bfree0 _ frsize _ _ < <(pfs_statfs "$M")

step "extracting"
tar -C "$M" -xpf src.tar
mkdir "$M/xz"
tar -C "$M/xz" -xJpf linux.tar.xz

check() {
	step "diff -r"
	diff -r --no-dereference "$SRC" "$M/include" >diff.out || { head -n 20 diff.out >&2; fail "trees differ"; }
	diff -r --no-dereference "$SRC/linux" "$M/xz/include/linux" >diff.out ||
		{ head -n 20 diff.out >&2; fail "xz-extracted tree differs"; }
	step "manifest"
	pfs_manifest "$SRC" content >manifest.src
	pfs_manifest "$M/include" content >manifest.mnt
	diff manifest.src manifest.mnt >diff.out || { head -n 20 diff.out >&2; fail "manifests differ"; }
	step "archiving from the volume"
	tar -C "$M" -cf out.tar include
	diff <(tar -tvf src.tar | LC_ALL=C sort -k6) <(tar -tvf out.tar | LC_ALL=C sort -k6) >diff.out ||
		{ head -n 20 diff.out >&2; fail "archive made from the volume lists differently"; }
}
check
if [[ $PFS_TEST_TARGET == peerfs ]]; then
	pfs_manifest "$M" full >full.before
	step "after a remount"
	pfs_remount "$M"
	pfs_manifest "$M" full >full.after
	diff full.before full.after >diff.out || { head -n 20 diff.out >&2; fail "tree changed across a remount"; }
	check
fi

step "removing everything"
rm -rf "${M:?}/include" "${M:?}/xz"
[[ -z $(ls -A "$M") ]] || fail "entries left: $(ls -A "$M")"
sync -f "$M"
read -r _ bfree1 _ _ _ _ < <(pfs_statfs "$M")
for ((i = 0; i < 50 && bfree1 * frsize < bfree0 * frsize - 1048576; i++)); do
	sleep 0.2
	read -r _ bfree1 _ _ _ _ < <(pfs_statfs "$M")
done
((bfree1 * frsize >= bfree0 * frsize - 1048576)) ||
	fail "free space $((bfree0 * frsize)) before, $((bfree1 * frsize)) after removing everything"
pfs_umount "$M"
pfs_fsck
