#!/usr/bin/env bash
# work-fio: fio with verification: random 4 KiB writes over 64 MiB with
# crc32c, sequential 1 MiB writes with crc32c then a separate verifying
# read pass (after a remount on peerfs), and two jobs with mixed block
# sizes at once.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_cmd fio
pfs_setup -s 512M
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
FIO=(fio --ioengine=psync --directory="$M" --verify_fatal=1 --fsync_on_close=1 --group_reporting)

step "random writes, crc32c"
"${FIO[@]}" --name=randwrite --filename=rand.dat --size=64M --bs=4k --rw=randwrite \
	--verify=crc32c --do_verify=1 --randrepeat=0 --output=fio-rand.out ||
	{ tail -n 30 fio-rand.out >&2; fail "fio randwrite/verify failed"; }
step "sequential writes, crc32c"
"${FIO[@]}" --name=seqwrite --filename=seq.dat --size=64M --bs=1M --rw=write \
	--verify=crc32c --do_verify=1 --output=fio-seq.out ||
	{ tail -n 30 fio-seq.out >&2; fail "fio sequential write/verify failed"; }
if [[ $PFS_TEST_TARGET == peerfs ]]; then
	pfs_remount "$M"
fi
step "sequential read pass"
"${FIO[@]}" --name=seqwrite --filename=seq.dat --size=64M --bs=1M --rw=write \
	--verify=crc32c --verify_only --output=fio-seqread.out ||
	{ tail -n 30 fio-seqread.out >&2; fail "fio verifying read pass failed"; }
grep -q 'READ:' fio-seqread.out || fail "the verifying pass read nothing"
step "two jobs, mixed block sizes, md5"
"${FIO[@]}" --name=mixed --numjobs=2 --size=32M --bsrange=1k-64k --rw=randwrite \
	--verify=md5 --do_verify=1 --randrepeat=0 --output=fio-mixed.out ||
	{ tail -n 30 fio-mixed.out >&2; fail "fio mixed jobs failed"; }
if grep -i -E 'verify: bad|crc32c: verify failed|md5: verify failed' fio-*.out; then
	fail "fio reported verification errors"
fi
rm -f "$M"/*.dat "$M"/mixed.*
pfs_umount "$M"
pfs_fsck
