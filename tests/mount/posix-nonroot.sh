#!/usr/bin/env bash
# posix-nonroot: permission checks as user nobody (65534) on a volume
# mounted with allow_other: what an unprivileged user may and may not do
# to files of root and of other users.
# timeout: 120
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_root
pfs_require_cmd setpriv setfattr
pfs_setup
pfs_mount mnt -o allow_other
M=$PFS_TEST_DIR/mnt
chmod 0755 "$PFS_TEST_DIR"

step "files of root and of uid 1234"
mkdir "$M/closed" && chmod 0755 "$M/closed"
echo secret >"$M/secret" && chmod 0600 "$M/secret"
echo public >"$M/public" && chmod 0644 "$M/public"
mkdir "$M/private" && chmod 0700 "$M/private"
echo inner >"$M/private/inner"
mkdir "$M/tmp" && chmod 1777 "$M/tmp"
echo theirs >"$M/tmp/theirs" && chown 1234:1234 "$M/tmp/theirs"
mkdir "$M/open" && chmod 0777 "$M/open"
echo shared >"$M/open/rootfile" && chmod 0666 "$M/open/rootfile"
mkdir "$M/sgid" && chgrp 1234 "$M/sgid" && chmod 2777 "$M/sgid"
echo world >"$M/world" && chmod 0666 "$M/world"

step "allowed as nobody"
expect_ok as_nobody cat "$M/public"
expect_ok as_nobody ls "$M/closed"
expect_ok as_nobody touch "$M/tmp/mine"
expect_eq "$(stat -c %u:%g "$M/tmp/mine")" 65534:65534 "owner of a file nobody created"
expect_ok as_nobody chmod 0600 "$M/tmp/mine"
expect_eq "$(stat -c %a "$M/tmp/mine")" 600 "mode after chmod by the owner"
expect_ok as_nobody touch -d @1000000000 "$M/tmp/mine"
expect_eq "$(stat -c %Y "$M/tmp/mine")" 1000000000 "mtime set by the owner"
expect_ok as_nobody mv "$M/tmp/mine" "$M/tmp/mine2"
expect_ok as_nobody sh -c "echo more >>'$M/open/rootfile'"
expect_eq "$(cat "$M/open/rootfile")" "shared
more" "content of a 0666 file after append by nobody"
expect_ok as_nobody touch "$M/open/rootfile"
expect_ok as_nobody mkdir "$M/open/nd"
expect_ok as_nobody rmdir "$M/open/nd"
expect_ok as_nobody rm "$M/tmp/mine2"
expect_ok as_nobody rm -f "$M/open/rootfile"
# A set-group-ID directory passes its group on, and the bit to subdirectories.
expect_ok as_nobody touch "$M/sgid/f"
expect_ok as_nobody mkdir "$M/sgid/d"
expect_eq "$(stat -c %g "$M/sgid/f")" 1234 "group of a file in a setgid directory"
expect_eq "$(stat -c %g "$M/sgid/d")" 1234 "group of a directory in a setgid directory"
[[ $(stat -c %A "$M/sgid/d") == d?????s* ]] || fail "setgid bit not inherited: $(stat -c %A "$M/sgid/d")"

step "refused as nobody"
expect_errno EACCES as_nobody touch "$M/closed/new"
expect_errno EACCES as_nobody mkdir "$M/closed/newdir"
expect_errno EACCES as_nobody ln -s target "$M/closed/link"
expect_errno EACCES as_nobody cat "$M/secret"
expect_errno EACCES as_nobody sh -c "echo x >'$M/public'"
expect_errno EACCES as_nobody truncate -s 0 "$M/public"
expect_errno EACCES as_nobody ls "$M/private"
expect_errno EACCES as_nobody cat "$M/private/inner"
expect_errno EACCES as_nobody touch "$M/public"
expect_errno EACCES as_nobody setfattr -n user.x -v 1 "$M/public"
expect_errno EACCES as_nobody mv "$M/public" "$M/closed/moved"
expect_errno EPERM as_nobody chmod 0777 "$M/public"
expect_errno EPERM as_nobody chown 65534 "$M/public"
expect_errno EPERM as_nobody chgrp 65534 "$M/public"
# Write permission allows setting the times to now, not to other values.
expect_ok as_nobody touch "$M/world"
expect_errno EPERM as_nobody touch -d @0 "$M/world"
expect_errno EPERM as_nobody rm -f "$M/tmp/theirs"
expect_errno EPERM as_nobody mv "$M/tmp/theirs" "$M/tmp/stolen"
expect_errno EPERM as_nobody chmod 0777 "$M/tmp/theirs"

step "nothing changed"
expect_eq "$(cat "$M/public")" public "content of public"
expect_eq "$(stat -c %a:%u:%g "$M/public")" 644:0:0 "mode and owner of public"
expect_eq "$(cat "$M/tmp/theirs")" theirs "content of theirs"
expect_eq "$(stat -c %a:%u:%g "$M/tmp/theirs")" 644:1234:1234 "mode and owner of theirs"
[[ ! -e $M/closed/new && ! -e $M/closed/newdir && ! -e $M/tmp/stolen ]] || fail "a refused operation left an entry"

pfs_umount "$M"
pfs_fsck
