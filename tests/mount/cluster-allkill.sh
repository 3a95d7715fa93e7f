#!/usr/bin/env bash
# cluster-allkill: every node killed at once, then one node mounts.
#   Three nodes each run crashwl's mixed workload (creates, writes,
#   renames, links, xattrs, fsyncs; every acknowledged operation logged)
#   in a directory of their own (commits every 5 or 30 ms, so kills land
#   inside commits too); all three daemons are killed with
#   SIGKILL at the same moment.
#   round 1: the coordinator's state survives (its processes died, the
#     host did not): the one node that mounts takes its own slot over,
#     declares the two others dead and recovers each as its counterpart,
#     all before its mount appears;
#   round 2: the coordinator's state is lost too (the memory segment is
#     removed, as a power loss of the host would): the mount recovers the
#     two slots left mounted, unknown to the coordinator, before serving.
#   After each round every directory passes crashwl verify (every fsync'd
#   operation present, nothing half done), the directories of round 1
#   still do after round 2, the nodes see one tree, and fsck finds nothing.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_require_cmd fusermount3
ctl=$(pfs_bin peerfsctl)
crashwl=$(pfs_tool crashwl)
pfs_setup -s 768M -n 4 -J 32M

HB=heartbeat_ms=200,dead_ms=1500
seed=${PFS_KILL_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 ))}
echo "cluster-allkill: PFS_KILL_SEED=$seed"
RANDOM=$seed
uuid=$("$ctl" status "$PFS_IMAGE" | awk '/^volume/ { print $2; exit }' | tr -d -)
[[ $uuid =~ ^[0-9a-f]{32}$ ]] || fail "no volume UUID in the status"
segment=/dev/shm/peerfs-$uuid

declare -a WPID=()
declare -a STUCK=()
kill_all() {
	local n pids=()
	for n in 0 1 2; do pids+=("${_PFS_PID[$PFS_TEST_DIR/m$n]}"); done
	kill -KILL "${pids[@]}"
	for n in 0 1 2; do
		pfs_kill_daemon "$PFS_TEST_DIR/m$n" "${WPID[n]}"
		STUCK[n]=$PFS_KILL_STUCK
	done
}

verify_dir() {        # verify_dir MNT ROUND NODE
	local out=verify.$2.$3.out
	if ! "$crashwl" verify -m undo mixed "$1/r$2-n$3" "wl.$2.$3.log" >"$out" 2>&1; then
		cat "$out"
		fail "round $2: node $3's directory does not verify (PFS_KILL_SEED=$seed)"
	fi
	echo "round $2 node $3: $(tail -n 1 "$out")"
}

for round in 1 2; do
	step "round $round: three nodes under load, all killed at once"
	for n in 0 1 2; do
		[[ -n ${_PFS_KIND[$PFS_TEST_DIR/m$n]:-} ]] || pfs_mount "m$n" -o "node=$n,commit_ms=$((n == 0 ? 5 : 30)),$HB"
	done
	for n in 0 1 2; do
		mkdir "$PFS_TEST_DIR/m$n/r$round-n$n"
		"$crashwl" -q -N 0 -s $((seed * 10 + round * 3 + n)) mixed "$PFS_TEST_DIR/m$n/r$round-n$n" \
			"wl.$round.$n.log" >"wl.$round.$n.out" 2>&1 &
		WPID[n]=$!
	done
	delay=$((1000 + RANDOM % 1500))
	sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
	for n in 0 1 2; do
		_pfs_alive "${WPID[n]}" || { cat "wl.$round.$n.out"; fail "node $n's workload ended before the kill"; }
	done
	kill_all
	for n in 0 1 2; do
		rc=0
		wait "${WPID[n]}" || rc=$?
		((rc == 3 || (rc == 137 && STUCK[n]))) || { cat "wl.$round.$n.out"; fail "node $n's workload exited with $rc (3 expected)"; }
	done
	echo "killed every node after ${delay} ms"

	if ((round == 2)); then
		[[ -e $segment ]] || fail "no coordinator segment $segment"
		rm -f "$segment"
		echo "removed the coordinator's state ($segment)"
	fi
	x=$((round == 1 ? 1 : 2))
	log=$PFS_TEST_DIR/peerfs.m$x.log
	lines=$(wc -l <"$log")
	pfs_mount "m$x" -o "node=$x,$HB"
	tail -n +"$((lines + 1))" "$log" | grep -E 'dead|recover|journal of slot|left mounted' || true
	for n in 0 1 2; do
		((n == x)) && continue
		if ((round == 1)); then
			pat="recovery of node $n: done"
		else
			pat="slot $n: recovered in"
		fi
		tail -n +"$((lines + 1))" "$log" |
			awk -v p="$pat" 'index($0, p) { d = NR } / mounted / { m = NR } END { exit !(d && m && d < m) }' ||
			fail "round $round: node $x did not recover node $n before serving"
	done
	for n in 0 1 2; do
		verify_dir "$PFS_TEST_DIR/m$x" "$round" "$n"
	done
	if ((round == 2)); then
		for n in 0 1 2; do
			"$crashwl" verify -q -m undo mixed "$PFS_TEST_DIR/m$x/r1-n$n" "wl.1.$n.log" ||
				fail "round 1's directory of node $n no longer verifies"
		done
	fi
done

step "the other nodes mount: one tree"
for n in 0 1; do pfs_mount "m$n" -o "node=$n,$HB"; done
for n in 0 1 2; do pfs_manifest "$PFS_TEST_DIR/m$n" full >"manifest-$n"; done
cmp manifest-0 manifest-1 || fail "nodes 0 and 1 see different trees"
cmp manifest-0 manifest-2 || fail "nodes 0 and 2 see different trees"

step "unmount; fsck"
for n in 0 1 2; do pfs_umount "m$n"; done
pfs_fsck
echo "cluster-allkill: ok"
