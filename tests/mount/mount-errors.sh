#!/usr/bin/env bash
# mount-errors: the daemon refuses, with a non-zero status and a message,
# and without writing to the image: a wrong key (another volume's, a
# changed one, a missing or malformed key file), bad options, images that
# are not peerfs volumes, a missing image; and a second mount of a busy
# slot.  The volume mounts normally afterwards and fsck finds it clean.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
mkfs=$(pfs_bin mkfs.peerfs)
pfs_setup -s 64M
MNT=$PFS_TEST_DIR/mnt

sum() { if [[ -e $1 ]]; then cksum <"$1"; else echo none; fi; }

# refused WHAT PATTERN [-o opts]: the mount is refused, the output says
# something (matching the extended regex PATTERN, case-insensitive, if
# not empty) and the image is unchanged.
refused() {
	local what=$1 pat=$2 before rc=0
	shift 2
	before=$(sum "$PFS_IMAGE")
	pfs_try_mount "$MNT" "$@" || rc=$?
	((rc != 0)) || fail "$what: peerfs accepted it"
	((rc != 124)) || fail "$what: peerfs neither mounted nor exited"
	((rc < 128)) || fail "$what: peerfs died (status $rc)"
	((PFS_TRY_MOUNTED == 0)) || fail "$what: the volume was mounted"
	[[ -n $PFS_TRY_OUT ]] || fail "$what: refused without a message"
	if grep -q -E 'Sanitizer|runtime error' <<<"$PFS_TRY_OUT"; then
		fail "$what: $PFS_TRY_OUT"
	fi
	if [[ -n $pat ]] && ! grep -q -i -E "$pat" <<<"$PFS_TRY_OUT"; then
		fail "$what: the message does not mention /$pat/: $PFS_TRY_OUT"
	fi
	expect_eq "$(sum "$PFS_IMAGE")" "$before" "$what: image checksum"
	echo "ok: $what refused"
}

step "wrong keys"
"$mkfs" -q -s 128M -k other.key other.img
refused "key of another volume" key -o "keyfile=$PFS_TEST_DIR/other.key"
awk '$1 == "key" { k = $2; c = substr(k, 1, 1); $2 = (c == "0" ? "1" : "0") substr(k, 2) } { print }' \
	"$PFS_KEY" >wrong.key
chmod 0600 wrong.key
cmp -s wrong.key "$PFS_KEY" && fail "wrong.key is the right key"
refused "changed key" key -o "keyfile=$PFS_TEST_DIR/wrong.key"
refused "missing key file" key -o "keyfile=$PFS_TEST_DIR/no-such.key"
printf 'not a key file\n' >garbage.key
chmod 0600 garbage.key
refused "malformed key file" key -o "keyfile=$PFS_TEST_DIR/garbage.key"

step "bad options"
refused "unknown option" "" -o no_such_option=1
refused "node=abc" "" -o node=abc
refused "node=999" "" -o node=999
refused "data=bogus" "" -o data=bogus
refused "commit_ms=abc" "" -o commit_ms=abc

step "images that are not peerfs volumes"
VOL=$PFS_IMAGE
PFS_IMAGE=$PFS_TEST_DIR/garbage.img
head -c 64M /dev/urandom >"$PFS_IMAGE"
refused "random bytes" ""
PFS_IMAGE=$PFS_TEST_DIR/zeros.img
truncate -s 64M "$PFS_IMAGE"
refused "zeros" ""
PFS_IMAGE=$PFS_TEST_DIR/ext4.img
truncate -s 64M "$PFS_IMAGE"
mkfs.ext4 -q -F "$PFS_IMAGE"
refused "an ext4 image" ""
PFS_IMAGE=$PFS_TEST_DIR/missing.img
refused "a missing image" ""
# A volume cut short: the superblock says more blocks than the file has.
PFS_IMAGE=$PFS_TEST_DIR/short.img
head -c 32M "$VOL" >"$PFS_IMAGE"
refused "a truncated volume" ""
PFS_IMAGE=$VOL

step "a busy slot"
pfs_mount "$MNT" -o node=0
echo first >"$MNT/f"
rc=0
pfs_try_mount "$PFS_TEST_DIR/mnt2" -o node=0 || rc=$?
((rc != 0 && rc != 124 && rc < 128)) || fail "second mount of slot 0: status $rc"
((PFS_TRY_MOUNTED == 0)) || fail "slot 0 was mounted twice"
[[ -n $PFS_TRY_OUT ]] || fail "second mount of slot 0 refused without a message"
expect_eq "$(cat "$MNT/f")" first "file on the first mount"
echo second >>"$MNT/f"
pfs_umount "$MNT"
pfs_fsck

step "a normal mount afterwards"
pfs_mount "$MNT"
expect_eq "$(cat "$MNT/f")" "first
second" "file after the refusals"
pfs_umount "$MNT"
pfs_fsck
