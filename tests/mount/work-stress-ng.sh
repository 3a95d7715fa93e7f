#!/usr/bin/env bash
# work-stress-ng: a bounded selection of stress-ng's filesystem stressors,
# each for a few seconds with --verify, in a directory of the volume.  A
# stressor that fails (any non-zero status) fails the test; the others
# still run so the log shows every failure.
# timeout: 420
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_cmd stress-ng
pfs_setup -s 1G
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
T=${PFS_STRESS_SECS:-3}
STRESSORS=(
	"dir 2"
	"dentry 2 --dentries 1024"
	"filename 2"
	"hdd 2 --hdd-bytes 32M"
	"link 2"
	"rename 2"
	"symlink 2"
	"xattr 2"
	"fallocate 2 --fallocate-bytes 32M"
	"seek 2 --seek-size 32M"
	"sync-file 2 --sync-file-bytes 16M"
	"chmod 2"
	"utime 2"
	"lockf 2"
	"flock 2"
	"io 1"
)
failed=()
for s in "${STRESSORS[@]}"; do
	name=${s%% *}
	mkdir -p "$M/sng"
	step "stress-ng --$s"
	rc=0
	# shellcheck disable=SC2086 # $s is a stressor and its options
	stress-ng --$s --timeout "${T}s" --verify --temp-path "$M/sng" \
		--metrics-brief >"sng-$name.out" 2>&1 || rc=$?
	# A stressor that skips itself (unsupported operation) counts as failed.
	if ((rc == 0)) && ! grep -q -i -E '^stress-ng: (fail|error)|skipp|not implemented|unsupported' "sng-$name.out"; then
		grep -E "metrc: \[[0-9]+\] $name " "sng-$name.out" | head -n 1 || true
	else
		tail -n 20 "sng-$name.out"
		failed+=("$name($rc)")
	fi
	mountpoint -q "$M" || fail "the volume is gone after stress-ng --$name"
	rm -rf "${M:?}/sng"
done
((${#failed[@]} == 0)) || fail "stressors failed: ${failed[*]}"
[[ -z $(ls -A "$M") ]] || fail "entries left on the volume: $(ls -A "$M")"
pfs_umount "$M"
pfs_fsck
