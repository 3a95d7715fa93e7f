#!/usr/bin/env bash
# crash-tamper: a journal that was tampered with, moved, replayed or read
# with the wrong key is never applied.
#
# A dirty journal comes from a crash (PEERFS_FAULT, mode keep) in the
# commit of a 400 KiB overwrite (data=undo: about 100 before-images, so
# the in-flight transaction is BEGIN + two IMAGES records), found by
# trying crash points back from the end of a counted run.  Untouched, that
# volume mounts, backs the transaction out (the file holds its old bytes
# again) and passes fsck.  Then, each on a fresh copy:
#   a. one byte flipped inside a record followed by a valid one (in the
#      ciphertext of the first IMAGES record, in its last block, and in
#      the authenticated header of BEGIN): the mount is refused with a
#      message about authentication or tampering, and the image is
#      unchanged, byte for byte, inside and outside the journal area;
#   b. slot 0's in-flight records copied into slot 1's journal (at the
#      same offsets; at slot 1's log end; and there with slot, generation
#      and lsn rewritten to slot 1's), then node=1 mounted: refused, or
#      mounted with the records ignored: the group area is unchanged;
#   c. slot 0's journal saved after a crash, recovered, crashed again and
#      the saved older generation written back (and, separately, written
#      back over the recovered clean journal): refused as a replayed or
#      foreign journal, the image unchanged;
#   d. the key file of another volume, and a key file with the volume's
#      UUID but another key: refused with a message naming the key, the
#      image unchanged;
#   e. garbage after the last record (random blocks; and a plausible
#      record header followed by garbage, as a torn write leaves): the
#      mount succeeds, recovery backs out the transaction (the second
#      case logs "torn"), the file holds its old bytes, fsck is clean.
# timeout: 600
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3 dd sha256sum cmp od awk head
peerfs=$(pfs_bin peerfs)
mkfs=$(pfs_bin mkfs.peerfs)
fsck=$(pfs_bin fsck.peerfs)
jnlinfo=$(pfs_tool jnlinfo)

MNT=$PFS_TEST_DIR/m
mkdir -p "$MNT"
BS=4096

is_mounted() {
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

FPID=
trap '_trc=$?; [[ -n $FPID ]] && kill -KILL "$FPID" 2>/dev/null; is_mounted "$MNT" && fusermount3 -uz "$MNT"; (exit $_trc); _pfs_on_exit' EXIT

# ---- helpers ----------------------------------------------------------

# geometry IMG: G_journal_start, G_journal_blocks, G_max_slots,
# G_group_start, G_block_count.
geometry() {
	local line
	line=$("$jnlinfo" "$1" | awk '$1 == "volume"')
	[[ -n $line ]] || fail "jnlinfo cannot read $1"
	eval "$(awk '{ for (i = 2; i <= NF; i++) print "G_" $i }' <<<"$line")"
}

# jfield IMG SLOT TYPE KEY [N]: field KEY of the Nth (default 1st) line of
# TYPE in jnlinfo's report of SLOT.
jfield() {
	"$jnlinfo" -k "$PFS_KEY" -s "$2" "$1" |
		awk -v t="$3" -v k="$4" -v n="${5:-1}" \
			'$1 == t && ++c == n { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }'
}

# Checksums: the whole image, outside the journal areas, the group area.
sum_all() { sha256sum <"$1" | cut -d' ' -f1; }
sum_outside_journal() {
	local je=$((G_journal_start + G_max_slots * G_journal_blocks))
	{
		dd if="$1" bs=$BS count="$G_journal_start" status=none
		dd if="$1" bs=$BS skip="$je" status=none
	} | sha256sum | cut -d' ' -f1
}
sum_groups() {
	dd if="$1" bs=$BS skip="$G_group_start" count=$((G_block_count - 1 - G_group_start)) status=none |
		sha256sum | cut -d' ' -f1
}

# flip IMG BYTE_OFFSET: change one byte.
flip() {
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "\\x$(printf %02x $((b ^ 0x5a)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# put_le IMG BYTE_OFFSET NBYTES VALUE: a little-endian integer.
put_le() {
	local s= i
	for ((i = 0; i < $3; i++)); do
		s+=$(printf '\\x%02x' $((($4 >> (8 * i)) & 255)))
	done
	printf "$s" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# copy_blocks SRC SRCBLK DST DSTBLK COUNT
copy_blocks() {
	dd if="$1" of="$3" bs=$BS skip="$2" seek="$4" count="$5" conv=notrunc status=none
}

# fault_run IMG FAULT OPTS CMD...: mount IMG with PEERFS_FAULT=FAULT, run
# CMD (its failure is expected after the crash), then take the daemon down.
fault_run() {
	local img=$1 fault=$2 opts=$3 deadline=$((SECONDS + 30))
	shift 3
	PEERFS_FAULT=$fault "$peerfs" "$img" "$MNT" -f -o "keyfile=$PFS_KEY,$opts" \
		>"$PFS_TEST_DIR/fault.log" 2>&1 </dev/null &
	FPID=$!
	echo "$FPID $peerfs" >>"$PFS_TEST_DIR/.pfs-pids"
	until is_mounted "$MNT"; do
		if ! _pfs_alive "$FPID"; then
			wait "$FPID" || true
			FPID=
			return 0
		fi
		((SECONDS < deadline)) || fail "fault run: not mounted after 30s"
		sleep 0.02
	done
	"$@" >/dev/null 2>&1 || true
	if grep -q 'simulated crash' "$PFS_TEST_DIR/fault.log"; then
		kill -KILL "$FPID" 2>/dev/null || true
		wait "$FPID" 2>/dev/null || true
		fusermount3 -uz "$MNT" 2>/dev/null || true
		! is_mounted "$MNT" || umount -l "$MNT"
	else
		fusermount3 -u "$MNT"
		while _pfs_alive "$FPID"; do sleep 0.02; done
		wait "$FPID" 2>/dev/null || true
	fi
	FPID=
}

# In writes of 40 KiB: overwrites of 64 KiB or more would move to new
# blocks instead of logging before-images (fs/file.c F6).
overwrite_big() {
	dd if="$PFS_TEST_DIR/new.bin" of="$MNT/w/big" bs=40K count=10 conv=notrunc,fsync status=none
}

# make_dirty SRC DST: DST is SRC after a crash in the commit of
# overwrite_big that leaves one transaction in flight with at least two
# IMAGES records.
make_dirty() {
	local src=$1 dst=$2 total p
	cp --sparse=always "$src" "$dst"
	rm -f "$PFS_TEST_DIR/count"
	PEERFS_IO_COUNT_FILE=$PFS_TEST_DIR/count fault_run "$dst" "" "node=0,$OPTS" overwrite_big
	total=$(sed -n 's/.* wf=\([0-9]*\) .*/\1/p' "$PFS_TEST_DIR/count")
	[[ $total =~ ^[0-9]+$ ]] || fail "no I/O count"
	for ((p = total; p > 0 && p > total - 80; p--)); do
		cp --sparse=always "$src" "$dst"
		fault_run "$dst" "crash_io=$p,mode=keep,seed=$p" "node=0,$OPTS" overwrite_big
		grep -q 'simulated crash' "$PFS_TEST_DIR/fault.log" || continue
		if [[ $(jfield "$dst" 0 inflight n) == 1 ]] &&
			(($("$jnlinfo" -k "$PFS_KEY" -s 0 "$dst" | grep -c 'type=IMAGES') >= 2)); then
			echo "  crash point $p of $total leaves a transaction in flight:"
			"$jnlinfo" -k "$PFS_KEY" -s 0 "$dst" | grep -E '^(rec|end|inflight)' | sed 's/^/    /'
			return 0
		fi
	done
	fail "no crash point of the last 80 leaves two IMAGES records in flight"
}

# refused IMG WHAT PATTERN [node]: mounting IMG must fail with a message
# matching PATTERN and change nothing.
refused() {
	local img=$1 what=$2 pat=$3 node=${4:-0} all outside rc=0
	all=$(sum_all "$img")
	outside=$(sum_outside_journal "$img")
	PFS_IMAGE=$img pfs_try_mount "$MNT" -o "node=$node,$OPTS" || rc=$?
	((rc != 0)) || fail "$what: the mount was not refused"
	((PFS_TRY_MOUNTED == 0)) || fail "$what: the volume was mounted"
	grep -Eiq -- "$pat" <<<"$PFS_TRY_OUT" || fail "$what: no message matching /$pat/"
	[[ $(sum_outside_journal "$img") == "$outside" ]] || fail "$what: the refused mount wrote outside the journal"
	[[ $(sum_all "$img") == "$all" ]] || fail "$what: the refused mount wrote to the journal"
	echo "ok: $what: refused, image unchanged"
}

# recovers IMG WHAT [PATTERN]: mounting IMG backs out the transaction
# (log matching PATTERN too), big holds its old bytes, fsck is clean.
recovers() {
	local img=$1 what=$2 pat=${3:-} log=$PFS_TEST_DIR/peerfs.m.log lines=0
	[[ -f $log ]] && lines=$(wc -l <"$log")
	PFS_IMAGE=$img pfs_mount "$MNT" -o "node=0,$OPTS"
	local out
	out=$(tail -n +$((lines + 1)) "$log")
	grep -q 'journal of slot 0: backout: 1 transactions' <<<"$out" ||
		fail "$what: recovery did not back out one transaction: $out"
	[[ -z $pat ]] || grep -Eq -- "$pat" <<<"$out" || fail "$what: no log line matching /$pat/"
	cmp "$MNT/w/big" "$PFS_TEST_DIR/old.bin" || fail "$what: big does not hold its old bytes after recovery"
	PFS_IMAGE=$img pfs_umount "$MNT"
	"$fsck" -n -k "$PFS_KEY" "$img" >"$PFS_TEST_DIR/fsck.out" 2>&1 ||
		{ cat "$PFS_TEST_DIR/fsck.out"; fail "$what: fsck.peerfs -n is not clean"; }
	echo "ok: $what: recovered, old bytes back, fsck clean"
}

OPTS=heartbeat_ms=10,dead_ms=20,data=undo,commit_ms=600000

# ---- the volumes --------------------------------------------------------

step "base volume: slot 1 used once, a 512 KiB file in slot 0's last commit"
pfs_setup -s 64M -n 2 -J 4M
head -c 512K /dev/urandom >"$PFS_TEST_DIR/old.bin"
head -c 400K /dev/urandom >"$PFS_TEST_DIR/new.bin"
pfs_mount "$MNT" -o node=1
pfs_umount "$MNT"
pfs_mount "$MNT" -o node=0
mkdir "$MNT/w"
cp "$PFS_TEST_DIR/old.bin" "$MNT/w/big"
pfs_umount "$MNT"
BASE=$PFS_TEST_DIR/base.img
cp --sparse=always "$PFS_IMAGE" "$BASE"
geometry "$BASE"
echo "  journal_start=$G_journal_start journal_blocks=$G_journal_blocks slots=$G_max_slots group_start=$G_group_start"
J0=$G_journal_start
J1=$((G_journal_start + G_journal_blocks))

step "a dirty journal"
DIRTY=$PFS_TEST_DIR/dirty.img
make_dirty "$BASE" "$DIRTY"
T=$PFS_TEST_DIR/t.img

step "control: the untouched dirty journal recovers"
cp --sparse=always "$DIRTY" "$T"
recovers "$T" "control"
# The transaction's new bytes are in place: applying its images changes
# the group area (what b and e would see if records were applied).
[[ $(sum_groups "$T") != $(sum_groups "$DIRTY") ]] ||
	fail "control: the backout changed nothing in the group area"

# ---- a. flipped bytes ---------------------------------------------------

step "a. a flipped byte in a record followed by a valid one"
b_begin=$(jfield "$DIRTY" 0 rec block 1)
b_img=$(jfield "$DIRTY" 0 rec block 2)
n_img=$(jfield "$DIRTY" 0 rec nblocks 2)
[[ $(jfield "$DIRTY" 0 rec type 2) == IMAGES && $(jfield "$DIRTY" 0 rec type 3) == IMAGES ]] ||
	fail "unexpected record layout"
cp --sparse=always "$DIRTY" "$T"
flip "$T" $((b_img * BS + 2000))
refused "$T" "a1 (ciphertext of the first IMAGES record)" 'authenticat|tamper'
cp --sparse=always "$DIRTY" "$T"
flip "$T" $(((b_img + n_img - 1) * BS + 100))
refused "$T" "a2 (last block of the first IMAGES record)" 'authenticat|tamper'
cp --sparse=always "$DIRTY" "$T"
flip "$T" $((b_begin * BS + 24))
refused "$T" "a3 (txseq in the authenticated header of BEGIN)" 'authenticat|tamper'

# ---- b. records moved to another slot -----------------------------------

step "b. slot 0's records in slot 1's journal, mounted as node=1"
# in_slot1 WHAT IMG: node=1 either refuses IMG (changing nothing) or mounts
# it without applying anything: the group area stays as it was.
in_slot1() {
	local what=$1 img=$2 groups rc=0 log=$PFS_TEST_DIR/peerfs.m.log lines=0
	groups=$(sum_groups "$img")
	[[ -f $log ]] && lines=$(wc -l <"$log")
	local all
	all=$(sum_all "$img")
	# coord=none: a mount in a cluster would also recover slot 0 (left
	# mounted, unknown to the coordinator) and change the group area
	# legitimately; here only slot 1's own journal is under test.
	PFS_IMAGE=$img pfs_try_mount "$MNT" -o "node=1,coord=none,$OPTS" || rc=$?
	if ((PFS_TRY_MOUNTED)); then
		grep -q 'journal of slot 1: backout' <<<"$PFS_TRY_OUT" &&
			fail "$what: slot 1's recovery backed out something: $PFS_TRY_OUT"
		[[ $(sum_groups "$img") == "$groups" ]] || fail "$what: the group area changed"
		echo "ok: $what: mounted, the records were ignored, the group area is unchanged"
	else
		[[ $(sum_all "$img") == "$all" ]] || fail "$what: the refused mount changed the image"
		grep -Eiq 'authenticat|tamper|foreign|journal' <<<"$PFS_TRY_OUT" ||
			fail "$what: refused without a clear message: $PFS_TRY_OUT"
		echo "ok: $what: refused, image unchanged"
	fi
}
first=$(jfield "$DIRTY" 0 rec block 1)
end0=$(jfield "$DIRTY" 0 end block)
nrec=$((end0 - first))
cp --sparse=always "$DIRTY" "$T"
copy_blocks "$DIRTY" "$first" "$T" $((first - J0 + J1)) "$nrec"
in_slot1 "b1 (same offsets)" "$T"

end1=$(jfield "$DIRTY" 1 end block)
end1_lsn=$(jfield "$DIRTY" 1 end lsn)
gen1=$(jfield "$DIRTY" 1 header generation 1)
[[ -n $end1 && -n $gen1 ]] || fail "slot 1 has no journal to extend"
area=$((G_journal_blocks - 2))
((end1 + nrec <= J1 + G_journal_blocks)) || fail "slot 1's log end is too close to the end of its area"
cp --sparse=always "$DIRTY" "$T"
copy_blocks "$DIRTY" "$first" "$T" "$end1" "$nrec"
in_slot1 "b2 (at the end of slot 1's log)" "$T"

cp --sparse=always "$DIRTY" "$T"
copy_blocks "$DIRTY" "$first" "$T" "$end1" "$nrec"
# Each record's header rewritten to be plausible in slot 1.
lsn=$end1_lsn
for ((k = 1; ; k++)); do
	rb=$(jfield "$DIRTY" 0 rec block "$k")
	[[ -n $rb ]] || break
	nb=$(jfield "$DIRTY" 0 rec nblocks "$k")
	at=$((end1 + rb - first))
	put_le "$T" $((at * BS + 8)) 8 "$lsn"
	put_le "$T" $((at * BS + 16)) 8 "$gen1"
	put_le "$T" $((at * BS + 32)) 4 1
	lsn=$((lsn + nb))
done
in_slot1 "b3 (rewritten as slot 1's records)" "$T"

# ---- c. replayed generation ---------------------------------------------

step "c. an older generation of slot 0's journal written back"
OLDJ=$PFS_TEST_DIR/slot0-old.jnl
dd if="$DIRTY" of="$OLDJ" bs=$BS skip="$J0" count="$G_journal_blocks" status=none
gen_old=$(jfield "$DIRTY" 0 slot generation)
R=$PFS_TEST_DIR/recovered.img
cp --sparse=always "$DIRTY" "$R"
recovers "$R" "c: recovery before the replay"
cp --sparse=always "$R" "$T"
dd if="$OLDJ" of="$T" bs=$BS seek="$J0" conv=notrunc status=none
refused "$T" "c1 (generation $gen_old over the recovered clean journal)" 'replayed|foreign|authenticat'
R2=$PFS_TEST_DIR/dirty2.img
make_dirty "$R" "$R2"
gen_new=$(jfield "$R2" 0 slot generation)
((gen_new > gen_old)) || fail "the second crash did not advance the generation ($gen_old, $gen_new)"
cp --sparse=always "$R2" "$T"
dd if="$OLDJ" of="$T" bs=$BS seek="$J0" conv=notrunc status=none
refused "$T" "c2 (generation $gen_old over the dirty journal of generation $gen_new)" 'replayed|foreign|authenticat'
cp --sparse=always "$R2" "$T"
recovers "$T" "c: control, the second dirty journal itself"

# ---- d. wrong keys --------------------------------------------------------

step "d. wrong key files"
"$mkfs" -q -s 16M -k "$PFS_TEST_DIR/other.key" "$PFS_TEST_DIR/other.img"
cp --sparse=always "$DIRTY" "$T"
saved_key=$PFS_KEY
PFS_KEY=$PFS_TEST_DIR/other.key refused "$T" "d1 (the key file of another volume)" 'key file .* is for volume'
uuid=$(awk '$1 == "uuid" { print $2 }' "$saved_key")
[[ -n $uuid ]] || fail "no uuid in $saved_key"
{
	echo "peerfs-key 1"
	echo "uuid $uuid"
	echo "key $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
} >"$PFS_TEST_DIR/wrong.key"
chmod 600 "$PFS_TEST_DIR/wrong.key"
PFS_KEY=$PFS_TEST_DIR/wrong.key refused "$T" "d2 (right UUID, another key)" 'wrong key'
PFS_KEY=$saved_key

# ---- e. garbage after the last record ----------------------------------

step "e. garbage after the last record"
cp --sparse=always "$DIRTY" "$T"
head -c $((3 * BS)) /dev/urandom | dd of="$T" bs=$BS seek="$end0" conv=notrunc status=none
recovers "$T" "e1 (random blocks)"
cp --sparse=always "$DIRTY" "$T"
# A plausible header (BEGIN's, at the end lsn) over garbage: a torn record.
end0_lsn=$(jfield "$DIRTY" 0 end lsn)
head -c $BS /dev/urandom | dd of="$T" bs=$BS seek="$end0" conv=notrunc status=none
dd if="$DIRTY" of="$T" bs=1 skip=$((first * BS)) seek=$((end0 * BS)) count=72 conv=notrunc status=none
put_le "$T" $((end0 * BS + 8)) 8 "$end0_lsn"
[[ $("$jnlinfo" -k "$PFS_KEY" -s 0 "$T" | awk '$1 == "end"' | grep -c 'reason=torn') == 1 ]] ||
	fail "the crafted record is not read as a torn one"
recovers "$T" "e2 (a plausible header over garbage)" 'torn'
echo "crash-tamper: all cases passed"
