#!/usr/bin/env bash
# cluster-soak: nodes killed with SIGKILL again and again under multi-node
# load, recovered by their peers, restarted.
#
# Each round mounts 2, 3 or 4 nodes (in turn; nodes beyond that are
# unmounted cleanly), and each node runs crashwl's mixed workload for a
# few seconds in a directory of its own (every acknowledged operation and
# fsync logged), while one survivor lists and reads the other nodes'
# directories (lock traffic between the nodes).  A random node is killed
# with SIGKILL at a random moment; a survivor declares it dead and
# recovers it as its counterpart.  The killed node mounts again, either
# 0 to 2.5 s after the kill (it waits while it is dead, or takes its own
# silent slot over) or once its recovery is done.  Then:
#   - the killed node's directory passes crashwl verify (every fsync'd
#     operation present, nothing half done), read on another node;
#   - every survivor's directory holds exactly its completed workload;
#   - the previous round's directories still verify;
#   - every node lists the same tree (names, sizes, contents).
# At the end every node unmounts cleanly and fsck finds nothing.
#
# PFS_SOAK_KILLS rounds (default 5, under a minute); PFS_SOAK_SEED fixes
# the seed (printed).  The long run: `make soak-cluster` (300 kills).
# timeout: 180
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3
crashwl=$(pfs_tool crashwl)

kills=${PFS_SOAK_KILLS:-5}
[[ $kills =~ ^[1-9][0-9]*$ ]] || fail "PFS_SOAK_KILLS must be a positive number"
seed=${PFS_SOAK_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 ))}
echo "cluster-soak: PFS_SOAK_SEED=$seed PFS_SOAK_KILLS=$kills"
RANDOM=$seed
PFS_MOUNT_TIMEOUT=90
pfs_setup -s 1G -n 4 -J 32M

HB=heartbeat_ms=200,dead_ms=1500
WORK=$PFS_TEST_DIR/work
mkdir -p "$WORK"
mnt() { echo "$PFS_TEST_DIR/m$1"; }
mounted() { [[ -n ${_PFS_KIND[$(mnt "$1")]:-} ]]; }
mount_node() { pfs_mount "m$1" -o "node=$1,commit_ms=$(((RANDOM % 3 == 0) ? 5 : 50 + RANDOM % 300)),$HB"; }

kill_node() {          # kill_node N [PID...]: processes using its mount
	local n=$1
	shift
	pfs_kill_daemon "$(mnt "$n")" "$@"
	((PFS_KILL_STUCK == 0)) || stuck=$((stuck + 1))
}

recoveries() {         # recoveries NODE: "recovery of node N: done" lines so far
	cat "$PFS_TEST_DIR"/peerfs.m*.log 2>/dev/null | grep -c "recovery of node $1: done" || true
}
declare -A LOGPOS=()
mark_logs() {          # remember where every daemon log ends
	local f
	for f in "$PFS_TEST_DIR"/peerfs.m*.log; do LOGPOS[$f]=$(wc -l <"$f"); done
}
new_log_lines() {      # what the daemons logged since mark_logs
	local f
	for f in "$PFS_TEST_DIR"/peerfs.m*.log; do tail -n +"$((${LOGPOS[$f]:-0} + 1))" "$f"; done
}

declare -a WPID=()
RPID=
_soak_cleanup() {
	local p
	for p in "${WPID[@]}" $RPID; do
		[[ -n $p ]] && _pfs_alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	return 0
}
trap '_src=$?; set +e; _soak_cleanup; (exit $_src); _pfs_on_exit' EXIT

prev=() prev_round=0
ops=0 inflight=0 waited=0 takeover=0 stuck=0
t0=$SECONDS
for ((round = 1; round <= kills; round++)); do
	k=$((2 + (round - 1) % 3))                      # 2, 3, 4 nodes
	for ((n = k; n < 4; n++)); do
		if mounted "$n"; then pfs_umount "m$n" >/dev/null; fi
	done
	for ((n = 0; n < k; n++)); do
		mounted "$n" || mount_node "$n" >/dev/null
	done
	v=$((RANDOM % k))
	delay=$((300 + RANDOM % 2700))
	at_once=$((RANDOM % 3 == 0))
	restart_ms=$((RANDOM % 2500))
	for ((n = 0; n < k; n++)); do
		d=$(mnt "$n")/r$round-n$n
		mkdir "$d"
		"$crashwl" -q -N 0 -t 4 -s $((seed * 1000 + round * 4 + n)) mixed "$d" \
			"$WORK/wl.$round.$n.log" >"$WORK/wl.$round.$n.out" 2>&1 &
		WPID[n]=$!
	done
	r=$(((v + 1) % k))
	(
		while :; do
			for ((n = 0; n < k; n++)); do
				((n == r)) && continue
				ls -l "$(mnt "$r")/r$round-n$n" >/dev/null 2>&1 || true
				cat "$(mnt "$r")/r$round-n$n"/* >/dev/null 2>&1 || true
			done
			sleep 0.1
		done
	) &
	RPID=$!
	sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
	_pfs_alive "${WPID[v]}" || { cat "$WORK/wl.$round.$v.out"; fail "round $round: node $v's workload ended before the kill"; }
	before=$(recoveries "$v")
	mark_logs
	kill_node "$v" "${WPID[v]}"
	t_kill=$SECONDS
	rc=0
	wait "${WPID[v]}" || rc=$?
	# 137: killed by pfs_kill_daemon (its log is whole all the same).
	((rc == 3 || (rc == 137 && PFS_KILL_STUCK))) || { cat "$WORK/wl.$round.$v.out"; fail "round $round: node $v's workload exited with $rc after the kill (3 expected)"; }
	WPID[v]=

	if ((!at_once)); then
		for ((i = 0; i < 300; i++)); do
			(($(recoveries "$v") > before)) && break
			sleep 0.1
		done
		(($(recoveries "$v") > before)) || fail "round $round: no survivor recovered node $v"
	fi
	log=$PFS_TEST_DIR/peerfs.m$v.log
	lines=$(wc -l <"$log")
	# At once: 0 to 2.5 s after the kill, while its peers may be
	# declaring it dead or recovering it.
	((at_once)) && sleep "$((restart_ms / 1000)).$(printf %03d $((restart_ms % 1000)))"
	mount_node "$v" >/dev/null
	how="after its recovery"
	if ((at_once)); then
		if tail -n +"$((lines + 1))" "$log" | grep -q 'released by its recovery'; then
			how="${restart_ms} ms after the kill, waited for its recovery"
			waited=$((waited + 1))
		elif (($(recoveries "$v") > before)); then
			how="${restart_ms} ms after the kill, after its recovery"
		else
			how="${restart_ms} ms after the kill, took its own slot over"
			takeover=$((takeover + 1))
		fi
	fi
	kill "$RPID" 2>/dev/null || true
	wait "$RPID" 2>/dev/null || true
	RPID=
	for ((n = 0; n < k; n++)); do
		((n == v)) && continue
		rc=0
		wait "${WPID[n]}" || rc=$?
		WPID[n]=
		((rc == 0)) || { cat "$WORK/wl.$round.$n.out"; fail "round $round: survivor $n's workload failed ($rc)"; }
	done
	rec=$(new_log_lines | grep -E "recovery of node $v: done|journal of slot $v: (scan|backout)" || true)
	grep -Eq "journal of slot $v: backout: [1-9]" <<<"$rec" && inflight=$((inflight + 1))

	# Verify on a node other than the one that wrote.
	for ((n = 0; n < k; n++)); do
		on=$(mnt $(((n + 1) % k)))
		args=(-m undo)
		((n == v)) || args+=(-c)
		if ! "$crashwl" verify "${args[@]}" mixed "$on/r$round-n$n" "$WORK/wl.$round.$n.log" >"$WORK/verify.out" 2>&1; then
			cat "$WORK/verify.out"
			echo "$rec"
			fail "round $round: node $n's directory does not verify on $on (PFS_SOAK_SEED=$seed)"
		fi
		if ((n == v)); then
			got=$(sed -n 's/.*last begun \([0-9]*\).*/\1/p' "$WORK/verify.out")
			ops=$((ops + ${got:-0}))
		fi
	done
	for p in "${prev[@]}"; do
		pn=${p##*-n}
		"$crashwl" verify -q -m undo mixed "$(mnt 0)/r$prev_round-n$pn" "$WORK/wl.$prev_round.$pn.log" ||
			fail "round $round: round $prev_round's directory of node $pn no longer verifies"
		rm -rf "$(mnt 0)/r$prev_round-n$pn"
	done
	prev=()
	for ((n = 0; n < k; n++)); do prev+=("r$round-n$n"); done
	prev_round=$round
	for ((n = 0; n < k; n++)); do
		pfs_manifest "$(mnt "$n")" content >"$WORK/manifest.$n"
		cmp -s "$WORK/manifest.0" "$WORK/manifest.$n" ||
			fail "round $round: nodes 0 and $n see different trees (PFS_SOAK_SEED=$seed)"
	done
	echo "round $round: $k nodes, node $v killed after ${delay} ms, back $how ($((SECONDS - t_kill)) s); verified; $(grep -o "backout: [0-9]* transactions, [0-9]* blocks" <<<"$rec" | tail -n 1)"
done

for ((n = 0; n < 4; n++)); do
	if mounted "$n"; then pfs_umount "m$n" >/dev/null; fi
done
pfs_fsck
echo "cluster-soak summary: $kills kills passed ($inflight with a transaction in flight backed out; early restarts: $waited waited for their recovery, $takeover took their own slot over; $stuck killed daemons stuck until their workload was killed); $ops operations of killed nodes verified; $((SECONDS - t0)) s; PFS_SOAK_SEED=$seed"
echo "cluster-soak: ok"
