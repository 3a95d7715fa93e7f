#!/usr/bin/env bash
# conc-meta: processes creating, linking, moving and removing entries in
# one directory at once while another process lists it: entries nobody
# touches appear exactly once in every listing, and the final tree, link
# counts and renames racing onto one name come out as expected.
# timeout: 300
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_setup
pfs_mount mnt
M=$PFS_TEST_DIR/mnt
D=$M/shared
E=$M/other
mkdir "$D" "$E"
W=4 N=120 STABLE=200
for ((i = 0; i < STABLE; i++)); do
	: >"$D/stable-$i"
done

worker() {
	local w=$1 i
	for ((i = 0; i < N; i++)); do
		echo "$w $i" >"$D/f-$w-$i"
		mkdir "$D/d-$w-$i"
		mv "$D/f-$w-$i" "$D/d-$w-$i/f"
		ln "$D/d-$w-$i/f" "$D/l-$w-$i"
		ln -s "d-$w-$i/f" "$D/s-$w-$i"
		if ((i % 2 == 0)); then
			rm -r "$D/d-$w-$i"
			rm "$D/l-$w-$i" "$D/s-$w-$i"
		elif ((i % 3 == 0)); then
			mv "$D/d-$w-$i" "$E/d-$w-$i"
		fi
		# Renames racing onto one name.
		echo "$w" >"$D/tmp-$w"
		mv -T "$D/tmp-$w" "$D/target"
	done
}

lister() {
	local n=0 dups
	while [[ ! -e $PFS_TEST_DIR/stop ]]; do
		ls -f "$D" >listing
		dups=$(grep '^stable-' listing | sort | uniq -d | head -n 3)
		[[ -z $dups ]] || { echo "listing $n: duplicated: $dups" >&2; return 1; }
		[[ $(grep -c '^stable-' listing) == "$STABLE" ]] ||
			{ echo "listing $n: $(grep -c '^stable-' listing) stable entries" >&2; return 1; }
		n=$((n + 1))
	done
	echo "lister: $n listings"
}

step "$W workers x $N rounds with a concurrent lister"
rm -f "$PFS_TEST_DIR/stop"
lister &
lp=$!
pids=()
for ((w = 0; w < W; w++)); do
	worker "$w" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
	wait "$p" || rc=1
done
touch "$PFS_TEST_DIR/stop"
wait "$lp" || fail "the lister saw a stable entry missing or duplicated"
((rc == 0)) || fail "a worker failed"

check_tree() {
	local want got
	want=$(
		for ((i = 0; i < STABLE; i++)); do echo "stable-$i"; done
		for ((w = 0; w < W; w++)); do
			for ((i = 1; i < N; i += 2)); do
				((i % 3 == 0)) || echo "d-$w-$i"
				echo "l-$w-$i"
				echo "s-$w-$i"
			done
		done
		echo target
	)
	got=$(ls "$D")
	diff <(sort <<<"$want") <(sort <<<"$got") >tree.diff || { head -n 20 tree.diff >&2; fail "entries of $D"; }
	want=$(for ((w = 0; w < W; w++)); do
		for ((i = 3; i < N; i += 6)); do echo "d-$w-$i"; done
	done)
	diff <(sort <<<"$want") <(ls "$E" | sort) >tree.diff || { head -n 20 tree.diff >&2; fail "entries of $E"; }
	local ndirs_d ndirs_e
	ndirs_d=$(find "$D" -mindepth 1 -maxdepth 1 -type d | wc -l)
	ndirs_e=$(find "$E" -mindepth 1 -maxdepth 1 -type d | wc -l)
	expect_eq "$(stat -c %h "$D")" $((2 + ndirs_d)) "link count of $D"
	expect_eq "$(stat -c %h "$E")" $((2 + ndirs_e)) "link count of $E"
	for ((w = 0; w < W; w++)); do
		for ((i = 1; i < N; i += 2)); do
			expect_eq "$(cat "$D/l-$w-$i")" "$w $i" "content of l-$w-$i"
			expect_eq "$(stat -c %h "$D/l-$w-$i")" 2 "link count of l-$w-$i"
			((i % 3 == 0)) || expect_eq "$(cat "$D/s-$w-$i")" "$w $i" "content through s-$w-$i"
		done
	done
	[[ $(cat "$D/target") =~ ^[0-9]+$ ]] || fail "content of target: $(cat "$D/target")"
	expect_eq "$(stat -c %h "$D/target")" 1 "link count of target"
	[[ -z $(find "$D" -maxdepth 1 -name 'tmp-*' -print -quit) ]] || fail "tmp-* left behind"
}

step "checking the tree"
check_tree
if [[ $PFS_TEST_TARGET == peerfs ]]; then
	step "after a remount"
	pfs_remount "$M"
	check_tree
fi
pfs_umount "$M"
pfs_fsck
