#!/usr/bin/env bash
# soak-kill.sh -- the long run of the kill test: N iterations (default
# 300) of tests/mount/crash-kill.sh (the daemon killed with SIGKILL under
# crashwl's mixed workload and fsx, recovery, crashwl verify of the
# acknowledged operations, clean unmount, fsck -n), then a summary.
#
#   tests/soak-kill.sh [N]
#
# The test runs through tests/run.sh, in ${PFS_TEST_TMP:-/tmp/peerfs-tests}
# /crash-kill, with its time limit scaled to N.  PFS_KILL_SEED=S repeats a
# run (the seed is printed).  Exit 0 only if every iteration passed.
set -euo pipefail

n=${1:-300}
if [[ ! $n =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: soak-kill.sh [ITERATIONS]" >&2
	exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
log=${PFS_TEST_TMP:-/tmp/peerfs-tests}/crash-kill/log

# The time limit of crash-kill, scaled to allow 5 s per iteration.
limit=$(sed -n 's/^#[[:space:]]*timeout:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$root/tests/mount/crash-kill.sh" | head -n1)
limit=${limit:-300}
scale=$(((n * 5 + limit - 1) / limit))
((scale >= 1)) || scale=1
t0=$(date +%s)
rc=0
PFS_KILL_ITERS=$n PFS_TIMEOUT_SCALE=$scale bash "$root/tests/run.sh" crash-kill || rc=$?
secs=$(($(date +%s) - t0))

[[ -f $log ]] || { echo "soak-kill: no log at $log" >&2; exit 1; }
started=$(grep -c '^-- iteration ' "$log" || true)
passed=$(grep -c 'crashwl verify mixed: OK' "$log" || true)
undo=$(grep -c '^-- iteration .* data=undo' "$log" || true)
ordered=$(grep -c '^-- iteration .* data=ordered' "$log" || true)
backouts=$(grep -Ec 'journal of slot 0: backout: [1-9][0-9]* transactions' "$log" || true)
twice=$(grep -c 'killed the recovering daemon' "$log" || true)
ops=$(sed -n 's/.*crashwl verify mixed: OK: .* last begun \([0-9]*\).*/\1/p' "$log" |
	awk '{ s += $1 } END { print s + 0 }')
lost=$(sed -n "s/.*after operation \([0-9]*\) (fsync'd up to [0-9]*, last begun \([0-9]*\).*/\1 \2/p" "$log" |
	awk '{ s += $2 - $1 } END { print s + 0 }')
seed=$(sed -n 's/^crash-kill: PFS_KILL_SEED=\([0-9]*\).*/\1/p' "$log" | head -n1)

echo
echo "soak-kill summary"
echo "  iterations:            $passed passed of $n ($started started; data=undo $undo, data=ordered $ordered)"
echo "  in-flight backouts:    $backouts recoveries backed out a transaction"
echo "  repeated recoveries:   $twice recovering daemons killed during their mount"
echo "  operations verified:   $ops begun, $lost of them lost at the kill (not covered by an fsync)"
echo "  seed:                  PFS_KILL_SEED=${seed:-?}"
echo "  time:                  ${secs}s"
if ((rc == 0 && passed == n)); then
	echo "  result:                PASS"
	exit 0
fi
echo "  result:                FAIL"
grep -E '^FAIL: |FAILED' "$log" | head -n 5 | sed 's/^/    /'
echo "  log: $log"
exit 1
