#!/usr/bin/env bash
# tests/run.sh -- run the mounted tests (tests/mount/*.sh).
#
#   [BUILD=build] [PFS_TEST_TARGET=peerfs|tmpfs] tests/run.sh [PATTERN...]
#
# PATTERNs are shell globs matched against test names (the file name
# without .sh), e.g. 'posix-*'; without any, every test runs.  Each test
# runs alone in a fresh directory ${PFS_TEST_TMP:-/tmp/peerfs-tests}/NAME
# with its output in NAME/log, under a time limit: 300 s, or N from a
# "# timeout: N" line near the top of the test, times PFS_TIMEOUT_SCALE
# (default 1).  Exit status 77 means skipped.  Runs sharing a directory
# take turns (a lock in it).  Afterwards anything still
# mounted under the directory is unmounted and daemons the test started
# are stopped.  The directories of tests that did not fail keep only their
# logs unless PFS_KEEP=1.  The last line printed is
# "N passed, N failed, N skipped"; the exit status is 1 if a test failed
# or none was selected.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
PFS_TEST_TARGET=${PFS_TEST_TARGET:-peerfs}
BASE=${PFS_TEST_TMP:-/tmp/peerfs-tests}
SCALE=${PFS_TIMEOUT_SCALE:-1}
export BUILD PFS_TEST_TARGET

# Unmount everything under $1 (deepest first) and stop the daemons a test
# recorded in $1/.pfs-pids (only if the pid still runs the same program).
cleanup_dir() {
	local dir=$1 m pid exe left=0
	[[ -d $dir ]] || return 0
	while read -r m; do
		[[ -n $m ]] || continue
		left=1
		echo "run.sh: unmounting leftover $m" >>"$dir/log"
		case $(findmnt -rn -o FSTYPE --mountpoint "$m" | head -n1) in
		fuse*) fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" ;;
		*) umount "$m" 2>/dev/null || umount -l "$m" ;;
		esac
	done < <(findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r)
	if [[ -f $dir/.pfs-pids ]]; then
		while read -r pid exe; do
			[[ $pid =~ ^[0-9]+$ ]] || continue
			[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] || continue
			left=1
			echo "run.sh: stopping leftover daemon $pid ($exe)" >>"$dir/log"
			kill -TERM "$pid" 2>/dev/null
			for _ in 1 2 3 4 5 6 7 8 9 10; do
				[[ -d /proc/$pid ]] || break
				sleep 0.2
			done
			kill -KILL "$pid" 2>/dev/null
		done <"$dir/.pfs-pids"
	fi
	return "$left"
}

# Time limit of a test: "# timeout: N" in its first 20 lines, or 300.
test_timeout() {
	local t
	t=$(head -n 20 "$1" | sed -n 's/^#[[:space:]]*timeout:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n1)
	t=${t:-300}
	awk -v t="$t" -v s="$SCALE" 'BEGIN { printf "%d\n", t * s + 0.5 }'
}

tests=()
for f in "$ROOT"/tests/mount/*.sh; do
	[[ -f $f ]] || continue
	name=$(basename "$f" .sh)
	if (($#)); then
		match=0
		for pat in "$@"; do
			# shellcheck disable=SC2053
			if [[ $name == $pat || $name.sh == $pat ]]; then
				match=1
				break
			fi
		done
		((match)) || continue
	fi
	tests+=("$f")
done

if ((${#tests[@]} == 0)); then
	echo "run.sh: no test matches${*:+ $*}" >&2
	echo "0 passed, 0 failed, 0 skipped"
	exit 1
fi

[[ $EUID -eq 0 ]] || echo "run.sh: warning: not root; mounting will fail" >&2
if [[ $PFS_TEST_TARGET == peerfs && ! -x $BUILD/peerfs ]]; then
	echo "run.sh: warning: $BUILD/peerfs is not built" >&2
fi
mkdir -p "$BASE" || exit 1
chmod 0755 "$BASE"
# One run at a time per base directory: a second run would unmount and
# delete the first one's tests.
exec 9>"$BASE/.run.lock"
if ! flock -n 9; then
	echo "run.sh: another run is using $BASE; waiting for it (PFS_TEST_TMP selects another directory)" >&2
	flock 9
fi

echo "run.sh: ${#tests[@]} tests, target $PFS_TEST_TARGET, build $BUILD, directories under $BASE"
passed=0 failed=0 skipped=0 failed_names=() t_all=$(date +%s)
for f in "${tests[@]}"; do
	name=$(basename "$f" .sh)
	dir=$BASE/$name
	cleanup_dir "$dir"
	rm -rf --one-file-system "$dir"
	if [[ -e $dir ]]; then
		echo "FAIL $name (0s) cannot remove the old $dir"
		failed=$((failed + 1))
		failed_names+=("$name")
		continue
	fi
	mkdir -p "$dir"
	chmod 0755 "$dir"
	limit=$(test_timeout "$f")
	t0=$(date +%s)
	(
		cd "$dir" || exit 1
		export PFS_TEST_DIR=$dir PFS_TEST_NAME=$name
		exec timeout -k 20 "$limit" bash "$f" 9>&-
	) >"$dir/log" 2>&1 </dev/null
	rc=$?
	secs=$(($(date +%s) - t0))
	if ! cleanup_dir "$dir"; then
		echo "run.sh: $name left mounts or daemons behind" >>"$dir/log"
	fi
	case $rc in
	0)
		echo "PASS $name (${secs}s)"
		passed=$((passed + 1))
		;;
	77)
		why=$(grep '^SKIP: ' "$dir/log" | tail -n1 | sed 's/^SKIP: //')
		echo "SKIP $name (${why:-no reason given})"
		skipped=$((skipped + 1))
		;;
	*)
		note=
		((rc == 124 || rc == 137)) && note=", timed out after ${limit}s"
		echo "FAIL $name (${secs}s${note})"
		echo "---- last 40 lines of $dir/log (status $rc)"
		tail -n 40 "$dir/log" | sed 's/^/    /'
		echo "----"
		failed=$((failed + 1))
		failed_names+=("$name")
		;;
	esac
	# Keep only the logs of tests that did not fail.
	if [[ $rc == 0 || $rc == 77 ]] && [[ ${PFS_KEEP:-0} != 1 ]]; then
		find "$dir" -mindepth 1 -maxdepth 1 ! -name log ! -name '*.log' ! -name '*.out' \
			-exec rm -rf --one-file-system {} +
	fi
done

echo "run.sh: total $(($(date +%s) - t_all))s${failed_names[*]:+; failed: ${failed_names[*]}}"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
