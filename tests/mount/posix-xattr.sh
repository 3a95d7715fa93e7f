#!/usr/bin/env bash
# posix-xattr: extended attributes through setfattr/getfattr: values in
# text, hex and base64, empty values, replacing, removing, many
# attributes, attributes on directories, trusted.* as root, copies with
# cp --preserve=xattr, and (peerfs) persistence across a remount.
# timeout: 120
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_cmd setfattr getfattr
pfs_setup
pfs_mount mnt
M=$PFS_TEST_DIR/mnt

val() { getfattr --absolute-names --only-values -n "$2" "$1"; }
getfattr() { command getfattr --absolute-names "$@"; }

step "set and get"
echo data >"$M/f"
setfattr -n user.color -v blue "$M/f"
expect_eq "$(val "$M/f" user.color)" blue "user.color"
setfattr -n user.bin -v 0x00ff10fe "$M/f"
getfattr -e hex -n user.bin "$M/f" | grep -q -x 'user.bin=0x00ff10fe' || fail "hex value"
expect_eq "$(val "$M/f" user.bin | od -An -tx1 | tr -d ' \n')" 00ff10fe "raw bytes of user.bin"
setfattr -n user.b64 -v 0sAAECAwQ= "$M/f"
getfattr -e base64 -n user.b64 "$M/f" | grep -q -x 'user.b64=0sAAECAwQ=' || fail "base64 value"
setfattr -n user.empty "$M/f"
getfattr -n user.empty "$M/f" | grep -q -x 'user.empty=""' || fail "empty value"
expect_eq "$(val "$M/f" user.empty | wc -c)" 0 "length of the empty value"
expect_eq "$(cat "$M/f")" data "file content next to attributes"

step "replace and remove"
setfattr -n user.color -v "a much longer value than before" "$M/f"
expect_eq "$(val "$M/f" user.color)" "a much longer value than before" "replaced value"
setfattr -n user.color -v x "$M/f"
expect_eq "$(val "$M/f" user.color)" x "shrunk value"
setfattr -x user.color "$M/f"
# The attr tools report ENODATA as "No such attribute".
no_attr() { # CMD...: fails with ENODATA
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	if ((rc == 0)) || [[ $out != *"No such attribute"* ]]; then
		fail "'$*': status $rc, $out"
	fi
	echo "ok: $* -> ENODATA"
}
no_attr getfattr -n user.color "$M/f"
no_attr setfattr -x user.color "$M/f"
no_attr getfattr -n user.never "$M/f"

step "listing"
expect_eq "$(getfattr -d -m '^user\.' "$M/f" | grep -c '^user\.')" 3 "attributes listed"

step "many attributes"
touch "$M/many"
for i in $(seq -w 1 30); do
	setfattr -n "user.k$i" -v "value-$i-0123456789012345678901234567" "$M/many"
done
expect_eq "$(getfattr -d -m '^user\.' "$M/many" | grep -c '^user\.k')" 30 "attributes on many"
for i in $(seq -w 1 30); do
	expect_eq "$(val "$M/many" "user.k$i")" "value-$i-0123456789012345678901234567" "user.k$i"
done
for i in $(seq -w 1 2 30); do
	setfattr -x "user.k$i" "$M/many"
done
expect_eq "$(getfattr -d -m '^user\.' "$M/many" | grep -c '^user\.k')" 15 "attributes left after removing half"

step "a large value"
head -c 1500 /dev/zero | tr '\0' 'v' >big.val
touch "$M/big"
setfattr -n user.big -v "$(cat big.val)" "$M/big"
val "$M/big" user.big >big.got
cmp big.val big.got || fail "large value differs"

step "directories, symlinks, trusted.*"
mkdir "$M/d"
setfattr -n user.dir -v yes "$M/d"
expect_eq "$(val "$M/d" user.dir)" yes "attribute of a directory"
ln -s f "$M/l"
expect_errno EPERM setfattr -h -n user.x -v 1 "$M/l"
expect_eq "$(val "$M/l" user.b64 | od -An -tx1 | tr -d ' \n')" 0001020304 "attribute read through a symlink"
if [[ $EUID -eq 0 ]]; then
	setfattr -n trusted.t -v root-only "$M/f"
	expect_eq "$(val "$M/f" trusted.t)" root-only "trusted.t"
fi

step "cp --preserve=xattr, rename, hard link"
cp --preserve=xattr "$M/f" "$M/copy"
expect_eq "$(val "$M/copy" user.b64 | od -An -tx1 | tr -d ' \n')" 0001020304 "copied attribute"
mv "$M/copy" "$M/renamed"
ln "$M/renamed" "$M/hard"
expect_eq "$(val "$M/hard" user.bin | od -An -tx1 | tr -d ' \n')" 00ff10fe "attribute through a hard link"

if [[ $PFS_TEST_TARGET == peerfs ]]; then
	step "after a remount"
	(cd "$M" && getfattr -R -h -d -m - -e hex . | LC_ALL=C sort) >x.before
	pfs_remount "$M"
	(cd "$M" && getfattr -R -h -d -m - -e hex . | LC_ALL=C sort) >x.after
	diff x.before x.after || fail "attributes changed across a remount"
fi
pfs_umount "$M"
pfs_fsck
