#!/usr/bin/env bash
# posix-acl: POSIX ACLs: setfacl/getfacl round trip, a named-user entry
# granting user nobody access, the mask, removal, and default ACLs
# inherited by new files and directories (and kept across a remount on
# peerfs).
# timeout: 120
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_root
pfs_require_cmd setfacl getfacl setpriv
pfs_setup
pfs_mount mnt -o allow_other
M=$PFS_TEST_DIR/mnt
chmod 0755 "$PFS_TEST_DIR"

acl_has() { # FILE LINE: getfacl FILE lists exactly LINE
	getfacl -cp "$1" 2>/dev/null | grep -q -x -F -e "$2" || {
		getfacl -p "$1" >&2
		fail "ACL of $1 lacks '$2'"
	}
}

step "a named-user entry grants access"
echo secret >"$M/f"
chmod 0600 "$M/f"
expect_errno EACCES as_nobody cat "$M/f"
setfacl -m u:nobody:r "$M/f"
acl_has "$M/f" "user:nobody:r--"
acl_has "$M/f" "mask::r--"
expect_eq "$(as_nobody cat "$M/f")" secret "content read by nobody through the ACL"
expect_errno EACCES as_nobody sh -c "echo x >>'$M/f'"
expect_eq "$(stat -c %a "$M/f")" 640 "mode bits show the mask in the group class"
[[ $(ls -l "$M/f") == -rw-r-----+* ]] || fail "ls does not show an ACL: $(ls -l "$M/f")"

step "the mask limits named entries"
chmod g-r "$M/f"
acl_has "$M/f" "mask::---"
expect_errno EACCES as_nobody cat "$M/f"
chmod g+r "$M/f"
expect_ok as_nobody cat "$M/f"

step "round trip of a full ACL"
setfacl -m u:1234:rw,g:4321:r,g::r,o::- "$M/f"
getfacl -cp "$M/f" >acl.a
touch "$M/g"
setfacl --set-file=acl.a "$M/g"
getfacl -cp "$M/g" >acl.b
diff acl.a acl.b || fail "ACL differs after setfacl --set-file"

step "removing entries"
setfacl -x u:nobody "$M/f"
expect_errno EACCES as_nobody cat "$M/f"
setfacl -b "$M/f"
[[ $(getfacl -cp "$M/f" | grep -c '^user:[^:]') == 0 ]] || fail "named entries left after setfacl -b"
[[ $(ls -l "$M/f") != *+\ * ]] || fail "ls still shows an ACL after setfacl -b"

step "an ACL on a directory"
mkdir "$M/p"
chmod 0700 "$M/p"
touch "$M/p/inside"
expect_errno EACCES as_nobody ls "$M/p"
setfacl -m u:nobody:rx "$M/p"
expect_ok as_nobody ls "$M/p"

step "default ACLs are inherited"
mkdir "$M/d"
setfacl -d -m u:nobody:rwx "$M/d"
acl_has "$M/d" "default:user:nobody:rwx"
touch "$M/d/new"
mkdir "$M/d/sub"
getfacl -p "$M/d/new" | grep -q -E '^user:nobody:rwx[[:space:]]+#effective:rw-$' ||
	{ getfacl -p "$M/d/new" >&2; fail "new file did not inherit user:nobody with mask rw-"; }
acl_has "$M/d/sub" "user:nobody:rwx"
acl_has "$M/d/sub" "default:user:nobody:rwx"
expect_ok as_nobody sh -c "echo via-default >'$M/d/new'"
expect_eq "$(cat "$M/d/new")" via-default "content written through an inherited ACL"
expect_ok as_nobody touch "$M/d/sub/bynobody"

if [[ $PFS_TEST_TARGET == peerfs ]]; then
	step "ACLs after a remount"
	getfacl -Rcp "$M" >acl.before
	pfs_remount "$M" -o allow_other
	getfacl -Rcp "$M" >acl.after
	diff acl.before acl.after || fail "ACLs changed across a remount"
	expect_ok as_nobody cat "$M/d/new"
fi
pfs_umount "$M"
pfs_fsck
