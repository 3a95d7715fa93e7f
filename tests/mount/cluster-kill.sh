#!/usr/bin/env bash
# cluster-kill: a node killed with SIGKILL leaves its locks retained.
#   1. node 0 runs with recovery=manual.  Node 1 writes in directory d1
#      (one fsync'd file, one file never committed) and is killed.  Once
#      node 0 has declared it dead, a read of d1/file on node 0 waits (its
#      lock is retained) while node 0 keeps creating, writing and reading
#      in its own directory d0.  `peerfsctl recover` with a wrong key is
#      refused and changes nothing.  `peerfsctl recover --node 1` then backs
#      node 1 out and releases its locks: the waiting read completes with
#      the fsync'd bytes, the uncommitted file does not exist.
#   2. node 1 mounts its slot again.  Node 2 joins with automatic
#      recovery; node 1 is killed in the middle of a stream of writes and
#      node 2 recovers it by itself; every fsync'd file survives.
#   3. every node unmounts cleanly and fsck.peerfs finds nothing.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3
ctl=$(pfs_bin peerfsctl)
pfs_setup -s 512M

M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1 M2=$PFS_TEST_DIR/m2
pfs_mount m0 -o node=0,recovery=manual
pfs_mount m1 -o node=1,commit_ms=600000


node_state() {
	"$ctl" status "$PFS_IMAGE" | awk -v n="$1" 'f && $1 == n { print $2 } /^node +state/ { f = 1 }'
}

step "node 1 writes and dies"
mkdir "$M0/d0" "$M0/d1"
echo "fsync'd by node 1" >"$M1/d1/file"
sync "$M1/d1/file"
echo "never committed" >"$M1/d1/uncommitted"
pfs_kill_daemon "$M1"
for ((i = 0; i < 100; i++)); do
	[[ $(node_state 1) == dead ]] && break
	sleep 0.1
done
[[ $(node_state 1) == dead ]] || fail "node 0 did not declare node 1 dead"
"$ctl" status "$PFS_IMAGE" | sed -n '/^coordinator/,$p'
"$ctl" status "$PFS_IMAGE" | grep -q 'retained' || fail "no retained lock in the status"

step "objects under retained locks wait; nothing else does"
cat "$M0/d1/file" >"$PFS_TEST_DIR/waited" 2>&1 &
reader=$!
for ((i = 0; i < 50; i++)); do
	echo "node 0 file $i" >"$M0/d0/f$i"
done
for ((i = 0; i < 50; i++)); do
	expect_eq "$(cat "$M0/d0/f$i")" "node 0 file $i" "d0/f$i while node 1 is dead"
done
_pfs_alive "$reader" || fail "the read of d1/file did not wait for node 1's retained lock"

step "peerfsctl recover with a wrong key: refused, nothing changed"
awk '$1 == "key" { k = $2; c = substr(k, 1, 1); $2 = (c == "0" ? "1" : "0") substr(k, 2) } { print }' \
	"$PFS_KEY" >wrong.key
chmod 0600 wrong.key
# slot, state and generation of every slot
slot_table() { "$ctl" status "$PFS_IMAGE" | awk '/^slot/ { f = 1; next } f && NF > 6 { print $1, $2, $3 } f && NF == 0 { exit }'; }
slots_before=$(slot_table)
rc=0
"$ctl" recover "$PFS_IMAGE" --node 1 -k wrong.key >wrong.out 2>&1 || rc=$?
cat wrong.out
((rc != 0)) || fail "peerfsctl recover with a wrong key succeeded"
grep -qi 'key' wrong.out || fail "the refusal does not name the key: $(cat wrong.out)"
expect_eq "$(node_state 1)" dead "node 1 after the refused recovery"
"$ctl" status "$PFS_IMAGE" | grep -q 'counterpart' && fail "a registration was made with a wrong key"
expect_eq "$(slot_table)" "$slots_before" "the slot table after the refused recovery"
_pfs_alive "$reader" || fail "the refused recovery released node 1's locks"

step "peerfsctl recover --node 1"
"$ctl" recover "$PFS_IMAGE" --node 1 -k "$PFS_KEY" || fail "peerfsctl recover failed"
wait "$reader" || fail "the waiting read failed: $(cat "$PFS_TEST_DIR/waited")"
expect_eq "$(cat "$PFS_TEST_DIR/waited")" "fsync'd by node 1" "the read that waited"
[[ ! -e $M0/d1/uncommitted ]] || fail "node 1's uncommitted file exists after its recovery"
[[ $(node_state 1) == "" ]] || fail "node 1 is still known to the coordinator: $(node_state 1)"

step "node 1 mounts again; node 2 joins with automatic recovery"
pfs_mount m1 -o node=1,commit_ms=600000
expect_eq "$(cat "$M1/d1/file")" "fsync'd by node 1" "node 1 reads its file after remounting"
pfs_mount m2 -o node=2
mkdir "$M1/d2"
(
	i=0
	while :; do
		echo "stream $i" >"$M1/d2/s$i"
		if ((i % 5 == 0)); then sync "$M1/d2/s$i"; echo "$i" >>"$PFS_TEST_DIR/synced"; fi
		i=$((i + 1))
	done
) 2>/dev/null &
writer=$!
sleep 1.5
pfs_kill_daemon "$M1"
kill "$writer" 2>/dev/null || true
wait "$writer" 2>/dev/null || true
log2=${_PFS_LOG[$M2]}
for ((i = 0; i < 150; i++)); do
	grep -q 'recovery of node 1: done' "$log2" && break
	sleep 0.1
done
grep 'recovery of node 1' "$log2" || fail "node 2 did not recover node 1"
n=0
while read -r i; do
	expect_eq "$(cat "$M0/d2/s$i")" "stream $i" "fsync'd s$i on node 0"
	n=$((n + 1))
done <"$PFS_TEST_DIR/synced"
echo "$n fsync'd files intact"
((n > 0)) || fail "the writer synced nothing"
pfs_manifest "$M0" full >manifest-0
pfs_manifest "$M2" full >manifest-2
cmp manifest-0 manifest-2 || fail "nodes 0 and 2 see different trees after the recovery"

step "unmount; fsck"
pfs_umount m2
pfs_umount m0
pfs_fsck
echo "cluster-kill: ok"
