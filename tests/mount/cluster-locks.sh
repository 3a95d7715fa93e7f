#!/usr/bin/env bash
# cluster-locks: flock and fcntl byte-range locks are cluster-wide.
#   1. flock: an EX lock on node 0 makes flock -n on node 1 fail with
#      EWOULDBLOCK; a blocking flock on node 1 proceeds once the holder
#      exits.
#   2. fcntl: write locks on disjoint ranges coexist on two nodes,
#      overlapping ones conflict, F_GETLK on node 1 reports node 0's lock
#      (type, start, length, pid); the lock goes when its process is
#      killed with SIGKILL.
#   3. F_SETLKW interrupted by a signal fails with EINTR.
#   4. two processes on two nodes waiting for each other's ranges: one of
#      them gets EDEADLK, the other then gets its lock.
#   5. a node killed with SIGKILL while its processes hold locks
#      (peerfsctl status lists them): while it is dead they stay and a
#      waiter on node 0 waits; once it is recovered (node 0 runs
#      recovery=manual: peerfsctl recover) they are gone and the waiter
#      gets its lock.
#   6. a node stopped with SIGTERM while one of its processes waits for a
#      lock exits (the wait ends).
#   7. unmount, fsck.
# timeout: 120
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3
lt=$(pfs_tool locktool)
ctl=$(pfs_bin peerfsctl)
pfs_setup

M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1
fast=heartbeat_ms=100,dead_ms=1000
pfs_mount m0 -o node=0,recovery=manual,$fast
pfs_mount m1 -o node=1,$fast
T=$PFS_TEST_DIR/sync
mkdir -p "$T"

# start_lt NAME FILE CMD...: locktool in the background, output in NAME.out
declare -A LT=()
start_lt() {
	local name=$1
	shift
	"$lt" "$@" >"$PFS_TEST_DIR/$name.out" 2>&1 &
	LT[$name]=$!
}
# wait_out NAME TEXT: until NAME.out holds TEXT (10 s at most)
wait_out() {
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q -- "$2" "$PFS_TEST_DIR/$1.out" && return 0
		sleep 0.05
	done
	fail "$1 did not print '$2': $(cat "$PFS_TEST_DIR/$1.out")"
}
out() { cat "$PFS_TEST_DIR/$1.out"; }
stop_lt() {
	kill -"${2:-TERM}" "${LT[$1]}" 2>/dev/null || true
	wait "${LT[$1]}" 2>/dev/null || true
}

step "flock: EX on node 0 blocks node 1"
echo data >"$M0/f"
start_lt fholder "$M0/f" flock:ex hold
wait_out fholder holding
expect_eq "$("$lt" "$M1/f" flock:ex:nb)" "flock:ex:nb EAGAIN" "flock -n EX on node 1 (EWOULDBLOCK)"
expect_eq "$("$lt" "$M1/f" flock:sh:nb)" "flock:sh:nb EAGAIN" "flock -n SH on node 1"
start_lt fwaiter "$M1/f" flock:ex
sleep 0.5
[[ -z $(out fwaiter) ]] || fail "a blocking flock on node 1 did not wait: $(out fwaiter)"
stop_lt fholder
wait "${LT[fwaiter]}"
expect_eq "$(out fwaiter)" "flock:ex ok" "the blocking flock on node 1 after node 0's holder exited"
start_lt fsh0 "$M0/f" flock:sh hold
wait_out fsh0 holding
expect_eq "$("$lt" "$M1/f" flock:sh:nb)" "flock:sh:nb ok" "SH flock on two nodes"
stop_lt fsh0

step "fcntl: ranges across nodes, F_GETLK, release at SIGKILL"
start_lt pholder "$M0/f" setlk:w:0:100 hold
wait_out pholder holding
expect_eq "$(out pholder | head -n1)" "setlk:w:0:100 ok" "node 0 write-locks 0..99"
expect_eq "$("$lt" "$M1/f" setlk:w:200:100)" "setlk:w:200:100 ok" "disjoint write lock on node 1"
expect_eq "$("$lt" "$M1/f" setlk:w:50:10)" "setlk:w:50:10 EAGAIN" "overlapping write lock on node 1"
expect_eq "$("$lt" "$M1/f" setlk:r:99:1)" "setlk:r:99:1 EAGAIN" "overlapping read lock on node 1"
expect_eq "$("$lt" "$M1/f" getlk:w:50:10)" "getlk:w:50:10 -> w 0 100 pid ${LT[pholder]}" \
	"F_GETLK on node 1"
expect_eq "$("$lt" "$M1/f" getlk:r:100:5)" "getlk:r:100:5 -> unlck" "F_GETLK next to the range"
stop_lt pholder KILL
expect_eq "$("$lt" "$M1/f" setlk:w:50:10)" "setlk:w:50:10 ok" "node 1 locks once the holder was killed"

step "F_SETLKW interrupted by a signal"
start_lt iholder "$M0/f" setlk:w:0:0 hold
wait_out iholder holding
expect_eq "$("$lt" "$M1/f" alarm:1 setlkw:w:10:10)" "setlkw:w:10:10 EINTR" \
	"F_SETLKW on node 1 interrupted by SIGALRM"
stop_lt iholder

step "deadlock between two nodes"
start_lt dA "$M0/f" setlk:w:0:1 touch:"$T/a" waitfile:"$T/b" setlkw:w:1:1
start_lt dB "$M1/f" setlk:w:1:1 touch:"$T/b" waitfile:"$T/a" sleep:0.3 setlkw:w:0:1
wait "${LT[dA]}" "${LT[dB]}"
n=$(cat "$PFS_TEST_DIR/dA.out" "$PFS_TEST_DIR/dB.out" | grep -c EDEADLK || true)
ok=$(cat "$PFS_TEST_DIR/dA.out" "$PFS_TEST_DIR/dB.out" | grep -c '^setlkw:.* ok$' || true)
[[ $n == 1 && $ok == 1 ]] || fail "expected one EDEADLK and one grant: $(out dA) / $(out dB)"

step "a node killed while holding locks: they go at its recovery"
start_lt kholder "$M1/f" flock:ex setlk:r:0:0 hold
wait_out kholder holding
expect_eq "$("$lt" "$M0/f" getlk:w:5:1)" "getlk:w:5:1 -> r 0 0 pid ${LT[kholder]}" \
	"node 0 sees node 1's read lock"
expect_eq "$("$lt" "$M0/f" flock:ex:nb)" "flock:ex:nb EAGAIN" "node 0 and node 1's flock"
ino=$(stat -c %i "$M0/f")
"$ctl" status "$PFS_IMAGE" | sed -n '/^advisory locks/,$p' >status
cat status
grep -Eq "^  inode $ino +node 1 +pid ${LT[kholder]} +flock +write +0-EOF" status ||
	fail "peerfsctl status does not list node 1's flock"
grep -Eq "^  inode $ino +node 1 +pid ${LT[kholder]} +fcntl +read +0-EOF" status ||
	fail "peerfsctl status does not list node 1's fcntl lock"
start_lt kwaiter "$M0/f" setlkw:w:0:0
sleep 0.3
kill -KILL "${_PFS_PID[$M1]}"
wait "${_PFS_PID[$M1]}" 2>/dev/null || true
fusermount3 -uz "$M1" 2>/dev/null || umount -l "$M1"
unset "_PFS_PID[$M1]" "_PFS_KIND[$M1]"
node_state() {
	"$ctl" status "$PFS_IMAGE" | awk -v n="$1" 'f && $1 == n { print $2 } /^node +state/ { f = 1 }'
}
for ((i = 0; i < 200; i++)); do
	[[ $(node_state 1) == dead ]] && break
	sleep 0.05
done
[[ $(node_state 1) == dead ]] || fail "node 0 did not declare node 1 dead"
# dead but not recovered: its locks are kept
expect_eq "$("$lt" "$M0/f" getlk:w:5:1)" "getlk:w:5:1 -> r 0 0 pid ${LT[kholder]}" \
	"node 1's lock while it is dead"
expect_eq "$("$lt" "$M0/f" flock:ex:nb)" "flock:ex:nb EAGAIN" "node 1's flock while it is dead"
[[ -z $(out kwaiter) ]] || fail "a waiter on node 0 got the dead node's range: $(out kwaiter)"
"$ctl" recover "$PFS_IMAGE" --node 1 -k "$PFS_KEY" || fail "peerfsctl recover failed"
wait "${LT[kwaiter]}"
expect_eq "$(out kwaiter)" "setlkw:w:0:0 ok" "the waiter on node 0 after node 1's recovery"
expect_eq "$("$lt" "$M0/f" getlk:w:5:1)" "getlk:w:5:1 -> unlck" "node 1's lock after its recovery"
expect_eq "$("$lt" "$M0/f" flock:ex:nb setlk:w:0:0)" "flock:ex:nb ok
setlk:w:0:0 ok" "node 0 locks after node 1's recovery"
stop_lt kholder KILL

step "SIGTERM of a node whose process waits for a lock"
pfs_mount m1 -o node=1,$fast
start_lt tholder "$M0/f" setlk:w:0:0 hold
wait_out tholder holding
start_lt twaiter "$M1/f" setlkw:w:0:0
sleep 0.5
d1=${_PFS_PID[$M1]}
kill -TERM "$d1"
for ((i = 0; i < 100; i++)); do
	_pfs_alive "$d1" || break
	sleep 0.1
done
_pfs_alive "$d1" && fail "node 1's daemon still runs 10 s after SIGTERM (a lock waiter holds it up)"
wait "$d1" 2>/dev/null || true
unset "_PFS_PID[$M1]" "_PFS_KIND[$M1]"
wait "${LT[twaiter]}" || true
grep -q "ok" "$PFS_TEST_DIR/twaiter.out" && fail "the waiter on node 1 got the lock: $(out twaiter)"
fusermount3 -uz "$M1" 2>/dev/null || true
stop_lt tholder

step "unmount; fsck"
pfs_umount m0
pfs_fsck
echo "cluster-locks: ok"
