#!/usr/bin/env bash
# cluster-basic: three nodes mount one volume at three mount points and
# see one coherent namespace.
#   - a write on one node is read on the others as soon as it returned,
#     appends and truncates included; attributes (chmod, chown, utimes)
#     changed on one node are seen on the others;
#   - cross-node rename and hard link: nlink and names agree everywhere;
#   - every node creates, renames and unlinks entries in one shared
#     directory at once: the directory ends with exactly the expected
#     names on every node, and each file holds what its writer wrote;
#   - xattrs set on one node are read on another;
#   - every node unmounts cleanly and fsck.peerfs finds nothing.
# timeout: 600
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

pfs_require_peerfs
pfs_require_root
pfs_setup -s 512M

N=3
for ((n = 0; n < N; n++)); do
	pfs_mount "m$n" -o "node=$n"
done
M0=$PFS_TEST_DIR/m0 M1=$PFS_TEST_DIR/m1 M2=$PFS_TEST_DIR/m2

step "a write on one node, read on the others"
echo "from node 0" >"$M0/f"
expect_eq "$(cat "$M1/f")" "from node 0" "node 1 reads node 0's write"
expect_eq "$(cat "$M2/f")" "from node 0" "node 2 reads node 0's write"
echo "appended by node 1" >>"$M1/f"
expect_eq "$(cat "$M0/f")" "$(printf 'from node 0\nappended by node 1')" "node 0 reads node 1's append"
expect_eq "$(stat -c %s "$M2/f")" 31 "size on node 2"
head -c 1000000 /dev/urandom >"$PFS_TEST_DIR/rand"
cp "$PFS_TEST_DIR/rand" "$M2/big"
cmp "$PFS_TEST_DIR/rand" "$M0/big" || fail "node 0 reads node 2's 1 MB file differently"
truncate -s 4096 "$M0/big"
expect_eq "$(stat -c %s "$M1/big")" 4096 "size after node 0's truncate, on node 1"
cmp <(head -c 4096 "$PFS_TEST_DIR/rand") "$M1/big" || fail "truncated content on node 1"

step "overwrite in place from alternating nodes"
for ((i = 0; i < 30; i++)); do
	n=$((i % N))
	printf 'round %02d node %d\n' "$i" "$n" | dd of="$PFS_TEST_DIR/m$n/f" conv=notrunc status=none
	r=$(((i + 1) % N))
	expect_eq "$(head -n 1 "$PFS_TEST_DIR/m$r/f")" "$(printf 'round %02d node %d' "$i" "$n")" \
		"round $i: node $r reads node $n's overwrite"
done

step "attributes"
chmod 640 "$M1/f"
chown 123:456 "$M1/f"
touch -d '2001-02-03 04:05:06' "$M1/f"
expect_eq "$(stat -c '%a %u %g %Y' "$M0/f")" "640 123 456 $(date -d '2001-02-03 04:05:06' +%s)" "attributes on node 0"
expect_eq "$(stat -c '%a %u %g' "$M2/f")" "640 123 456" "attributes on node 2"

step "cross-node rename and hard link"
mkdir "$M0/a" "$M0/b"
echo payload >"$M0/a/file"
mv "$M1/a/file" "$M1/b/moved"
[[ ! -e $M2/a/file ]] || fail "node 2 still sees a/file after node 1 moved it"
expect_eq "$(cat "$M2/b/moved")" payload "node 2 reads the moved file"
ln "$M2/b/moved" "$M2/a/link"
expect_eq "$(stat -c %h "$M0/b/moved")" 2 "nlink on node 0 after node 2's link"
expect_eq "$(stat -c %i "$M0/a/link")" "$(stat -c %i "$M1/b/moved")" "one inode on nodes 0 and 1"
rm "$M0/b/moved"
expect_eq "$(stat -c %h "$M1/a/link")" 1 "nlink on node 1 after node 0's unlink"
mv "$M2/a" "$M2/b/a-moved"
expect_eq "$(cat "$M0/b/a-moved/link")" payload "node 0 follows node 2's directory move"
rmdir "$M1/b/a-moved" 2>/dev/null && fail "rmdir of a non-empty directory succeeded"
rm "$M1/b/a-moved/link"
rmdir "$M0/b/a-moved"
[[ ! -e $M2/b/a-moved ]] || fail "node 2 still sees the removed directory"

step "xattrs"
setfattr -n user.color -v blue "$M0/f" 2>/dev/null || pfs_require_cmd setfattr
expect_eq "$(getfattr --only-values -n user.color "$M2/f")" blue "xattr on node 2"
setfattr -x user.color "$M1/f"
getfattr -n user.color "$M0/f" >/dev/null 2>&1 && fail "node 0 still sees a removed xattr"

step "every node creates, renames and unlinks in one shared directory at once"
D=shared
mkdir "$M0/$D"
W=60
worker() {
	local n=$1 m=$PFS_TEST_DIR/m$1 i
	for ((i = 0; i < W; i++)); do
		echo "node $n file $i" >"$m/$D/tmp-$n-$i"
		mv "$m/$D/tmp-$n-$i" "$m/$D/f-$n-$i"
		if ((i % 3 == 0)); then
			rm "$m/$D/f-$n-$i"
		fi
		mkdir "$m/$D/d-$n-$i"
		if ((i % 2 == 0)); then
			rmdir "$m/$D/d-$n-$i"
		fi
	done
}
pids=()
for ((n = 0; n < N; n++)); do
	worker "$n" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a worker failed"
done
expected=$(for ((n = 0; n < N; n++)); do
	for ((i = 0; i < W; i++)); do
		((i % 3 == 0)) || echo "f-$n-$i"
		((i % 2 == 0)) || echo "d-$n-$i"
	done
done | sort)
for ((n = 0; n < N; n++)); do
	got=$(ls "$PFS_TEST_DIR/m$n/$D" | sort)
	[[ $got == "$expected" ]] || {
		diff <(echo "$expected") <(echo "$got") | head -n 10 >&2
		fail "node $n: the shared directory differs from the expected names"
	}
done
for ((n = 0; n < N; n++)); do
	r=$(((n + 1) % N))
	for ((i = 1; i < W; i += 7)); do
		((i % 3 == 0)) && continue
		expect_eq "$(cat "$PFS_TEST_DIR/m$r/$D/f-$n-$i")" "node $n file $i" "f-$n-$i read on node $r"
	done
done

step "the same tree from every node"
for ((n = 0; n < N; n++)); do
	pfs_manifest "$PFS_TEST_DIR/m$n" full >"manifest-$n"
done
cmp manifest-0 manifest-1 || fail "nodes 0 and 1 see different trees"
cmp manifest-0 manifest-2 || fail "nodes 0 and 2 see different trees"

step "unmount every node; fsck"
for ((n = 0; n < N; n++)); do
	pfs_umount "m$n"
done
pfs_fsck
echo "cluster-basic: ok"
