# tests/lib.sh -- sourced by every mounted test (tests/mount/*.sh).
#
# Environment (tests/run.sh sets it; defaults allow running one test by
# hand, e.g. `bash tests/mount/posix-basic.sh`):
#   BUILD             build directory (default build), relative to the repo
#   PFS_TEST_TARGET   peerfs (default) or tmpfs: with tmpfs, pfs_setup and
#                     pfs_mount use a tmpfs instead and pfs_require_peerfs
#                     skips, so generic tests can be checked against tmpfs
#   PFS_TEST_DIR      the test's own directory (default
#                     ${PFS_TEST_TMP:-/tmp/peerfs-tests}/NAME); it is the
#                     working directory, and holds the image, the key file
#                     and the daemon logs
#   PFS_MOUNT_TIMEOUT seconds to wait for a mount to appear (default 30)
#   PFS_UMOUNT_TIMEOUT seconds to wait for the daemon to exit (default 60)
#
# Functions:
#   pfs_setup [mkfs options]   new image $PFS_IMAGE (-s 256M unless given)
#                              and key file $PFS_KEY
#   pfs_mount MNT [-o opts]    start the daemon in the background with -f
#                              and wait for the mount
#   pfs_umount MNT             unmount, wait for the daemon, fail unless it
#                              exited 0 with a clean log
#   pfs_remount MNT [-o opts]  pfs_umount then pfs_mount (peerfs only)
#   pfs_try_mount MNT [-o opts] run the daemon expecting it to refuse:
#                              returns its status, output in $PFS_TRY_OUT
#   pfs_kill_daemon MNT [PID...] SIGKILL the daemon, wait, detach the mount
#   pfs_fsck                   fsck.peerfs -n on the image (when built)
#   pfs_require_peerfs, pfs_require_root, pfs_require_cmd CMD...
#   pfs_tool NAME              path of a test tool built from tests/tools
#   pfs_bin NAME               path of a program of the build
#   fail MSG, skip WHY, step MSG
#   expect_errno ERRNAME CMD...  CMD must fail with that error's message
#   expect_ok CMD..., expect_fail CMD..., expect_eq GOT WANT WHAT
#   as_user UID CMD..., as_nobody CMD...
#   pfs_manifest DIR [full|content]  a sorted description of a tree
#   pfs_statfs PATH            "blocks bfree bavail frsize files ffree"

PFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$PFS_ROOT/$BUILD
PFS_TOOLS=$BUILD/tests
PFS_TEST_TARGET=${PFS_TEST_TARGET:-peerfs}
PFS_TEST_NAME=${PFS_TEST_NAME:-$(basename "$0" .sh)}
PFS_MOUNT_TIMEOUT=${PFS_MOUNT_TIMEOUT:-30}
PFS_UMOUNT_TIMEOUT=${PFS_UMOUNT_TIMEOUT:-60}
export BUILD PFS_TEST_TARGET

case $PFS_TEST_TARGET in
peerfs | tmpfs) ;;
*) echo "FAIL: PFS_TEST_TARGET must be peerfs or tmpfs, not $PFS_TEST_TARGET" >&2; exit 1 ;;
esac

if [[ -z ${PFS_TEST_DIR:-} ]]; then
	PFS_TEST_DIR=${PFS_TEST_TMP:-/tmp/peerfs-tests}/$PFS_TEST_NAME
	if findmnt -rn -o TARGET | awk -v d="$PFS_TEST_DIR" '$0 == d || index($0, d "/") == 1 { f = 1 } END { exit !f }'; then
		echo "FAIL: something is mounted under $PFS_TEST_DIR" >&2
		exit 1
	fi
	rm -rf --one-file-system "$PFS_TEST_DIR"
	mkdir -p "$PFS_TEST_DIR"
fi
PFS_TEST_DIR=$(cd "$PFS_TEST_DIR" && pwd)
export PFS_TEST_DIR
cd "$PFS_TEST_DIR" || exit 1
export PEERFS_KEYDIR=$PFS_TEST_DIR

PFS_IMAGE=$PFS_TEST_DIR/vol.img
PFS_KEY=$PFS_TEST_DIR/vol.key
PFS_SIZE=256M
PFS_ROOT_OWNER=
declare -A _PFS_PID=()     # mount point -> daemon pid
declare -A _PFS_KIND=()    # mount point -> peerfs | tmpfs
declare -A _PFS_LOG=()     # mount point -> daemon log

# ---- reporting --------------------------------------------------------

# Absolute path of $1 without entering it (it may be a dead FUSE mount).
_pfs_abspath() {
	local d b
	d=$(cd "$(dirname "$1")" && pwd) || return 1
	b=$(basename "$1")
	printf '%s/%s\n' "${d%/}" "$b"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

step() {
	echo "== [$(date +%T)] $*"
}

_pfs_on_err() {
	[[ $2 == exit* || $2 == \(exit* ]] && return 0
	echo "error: line $1: '$2' exited with status $3" >&2
}

# ---- requirements -----------------------------------------------------

pfs_require_peerfs() {
	[[ $PFS_TEST_TARGET == peerfs ]] || skip "needs peerfs (target is $PFS_TEST_TARGET)"
}

pfs_require_root() {
	[[ $EUID -eq 0 ]] || skip "needs root"
}

# A missing tool is an error, not a reason to skip: tests/deps.sh
# installs every one of them.
pfs_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || fail "command $c not found (tests/deps.sh installs it)"
	done
}

pfs_tool() {
	local t=$PFS_TOOLS/$1
	[[ -x $t ]] || fail "test tool $t is not built (make builds tests/tools/$1.c)"
	printf '%s\n' "$t"
}

# pfs_bin NAME: path of a program of the build (peerfs, mkfs.peerfs, ...).
pfs_bin() {
	local b=$BUILD/$1
	[[ -x $b ]] || fail "$b is not built"
	printf '%s\n' "$b"
}

# ---- processes --------------------------------------------------------

# Is pid alive (and not a zombie)?
_pfs_alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != Z ]]
}

# Errors a sanitizer or the C library reports in a daemon log.
_pfs_check_log() {
	local log=$1
	if grep -E -n -m 5 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|stack smashing|double free|corrupted size' "$log" >&2; then
		fail "the daemon log $log reports memory errors"
	fi
}

# ---- volumes and mounts -----------------------------------------------

# pfs_setup [mkfs options]: a new volume in the test directory.
pfs_setup() {
	local args=("$@") have_size=0 i
	PFS_SIZE=256M
	PFS_ROOT_OWNER=
	for ((i = 0; i < ${#args[@]}; i++)); do
		case ${args[i]} in
		-s) PFS_SIZE=${args[i + 1]:-}; have_size=1 ;;
		-E)
			case ${args[i + 1]:-} in
			root_owner=*) PFS_ROOT_OWNER=${args[i + 1]#root_owner=} ;;
			esac
			;;
		esac
	done
	((have_size)) || args=(-s "$PFS_SIZE" "${args[@]}")
	if [[ $PFS_TEST_TARGET == tmpfs ]]; then
		echo "+ (tmpfs target: no image; size $PFS_SIZE${PFS_ROOT_OWNER:+, root owner $PFS_ROOT_OWNER})"
		return 0
	fi
	local mkfs
	mkfs=$(pfs_bin mkfs.peerfs)
	rm -f "$PFS_IMAGE" "$PFS_KEY"
	echo "+ mkfs.peerfs -k $PFS_KEY ${args[*]} $PFS_IMAGE"
	"$mkfs" -k "$PFS_KEY" "${args[@]}" "$PFS_IMAGE" || fail "mkfs.peerfs failed (status $?)"
	[[ -f $PFS_KEY ]] || fail "mkfs.peerfs wrote no key file $PFS_KEY"
}

_pfs_parse_mount_args() {
	_pfs_opts=
	while (($#)); do
		case $1 in
		-o)
			[[ $# -ge 2 ]] || fail "pfs_mount: -o needs an argument"
			_pfs_opts=${_pfs_opts:+$_pfs_opts,}$2
			shift 2
			;;
		*) fail "pfs_mount: unknown argument $1" ;;
		esac
	done
}

# The daemon's command line for mount point $1 with options $_pfs_opts.
_pfs_daemon_cmd() {
	local opts=$_pfs_opts
	[[ ,$opts, == *,keyfile=* ]] || opts=keyfile=$PFS_KEY${opts:+,$opts}
	_pfs_cmd=("$(pfs_bin peerfs)" "$PFS_IMAGE" "$1" -f -o "$opts")
}

# pfs_mount MNT [-o opts]
pfs_mount() {
	[[ $# -ge 1 ]] || fail "pfs_mount: no mount point"
	local mnt=$1
	shift
	_pfs_parse_mount_args "$@"
	mkdir -p "$mnt"
	mnt=$(_pfs_abspath "$mnt")
	[[ -z ${_PFS_KIND[$mnt]:-} ]] || fail "pfs_mount: $mnt is already mounted"
	if mountpoint -q "$mnt"; then
		fail "pfs_mount: something is already mounted on $mnt"
	fi

	if [[ $PFS_TEST_TARGET == tmpfs ]]; then
		local topts="size=$PFS_SIZE,mode=0755" o
		if [[ -n $PFS_ROOT_OWNER ]]; then
			topts+=",uid=${PFS_ROOT_OWNER%%:*},gid=${PFS_ROOT_OWNER##*:}"
		fi
		# Of the daemon's options only ro means something to tmpfs.
		local IFS=,
		for o in $_pfs_opts; do
			[[ $o == ro ]] && topts+=,ro
		done
		unset IFS
		echo "+ mount -t tmpfs -o $topts pfs-tmpfs $mnt"
		mount -t tmpfs -o "$topts" pfs-tmpfs "$mnt" || fail "mounting tmpfs on $mnt failed"
		_PFS_KIND[$mnt]=tmpfs
		return 0
	fi

	[[ -e /dev/fuse ]] || fail "/dev/fuse does not exist"
	_pfs_daemon_cmd "$mnt"
	local log pid
	log=$PFS_TEST_DIR/peerfs.$(basename "$mnt").log
	echo "+ ${_pfs_cmd[*]}"
	echo "=== $(date +%T) ${_pfs_cmd[*]}" >>"$log"
	"${_pfs_cmd[@]}" >>"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid ${_pfs_cmd[0]}" >>"$PFS_TEST_DIR/.pfs-pids"
	_PFS_PID[$mnt]=$pid
	_PFS_KIND[$mnt]=peerfs
	_PFS_LOG[$mnt]=$log
	local deadline=$((SECONDS + PFS_MOUNT_TIMEOUT))
	until mountpoint -q "$mnt"; do
		if ! _pfs_alive "$pid"; then
			local rc=0
			wait "$pid" || rc=$?
			unset "_PFS_PID[$mnt]" "_PFS_KIND[$mnt]"
			tail -n 30 "$log" >&2
			fail "peerfs exited with status $rc before $mnt was mounted"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$log" >&2
			fail "$mnt not mounted after ${PFS_MOUNT_TIMEOUT}s"
		fi
		sleep 0.05
	done
}

# pfs_umount MNT
pfs_umount() {
	[[ $# -eq 1 ]] || fail "pfs_umount: one mount point"
	local mnt
	mnt=$(_pfs_abspath "$1") || fail "pfs_umount: no directory $1"
	local kind=${_PFS_KIND[$mnt]:-} i
	[[ -n $kind ]] || fail "pfs_umount: $mnt was not mounted by pfs_mount"

	if [[ $kind == tmpfs ]]; then
		for ((i = 0; ; i++)); do
			umount "$mnt" 2>"$PFS_TEST_DIR/.umount.err" && break
			((i < 20)) || { cat "$PFS_TEST_DIR/.umount.err" >&2; fail "cannot unmount $mnt"; }
			sleep 0.5
		done
		unset "_PFS_KIND[$mnt]"
		return 0
	fi

	local pid=${_PFS_PID[$mnt]} log=${_PFS_LOG[$mnt]}
	echo "+ fusermount3 -u $mnt"
	for ((i = 0; ; i++)); do
		fusermount3 -u "$mnt" 2>"$PFS_TEST_DIR/.umount.err" && break
		((i < 20)) || { cat "$PFS_TEST_DIR/.umount.err" >&2; fail "cannot unmount $mnt"; }
		sleep 0.5
	done
	unset "_PFS_KIND[$mnt]"
	local deadline=$((SECONDS + PFS_UMOUNT_TIMEOUT))
	while _pfs_alive "$pid"; do
		if ((SECONDS >= deadline)); then
			kill -KILL "$pid" 2>/dev/null
			tail -n 30 "$log" >&2
			fail "peerfs (pid $pid) still running ${PFS_UMOUNT_TIMEOUT}s after unmounting $mnt"
		fi
		sleep 0.05
	done
	local rc=0
	wait "$pid" || rc=$?
	unset "_PFS_PID[$mnt]"
	if ((rc != 0)); then
		tail -n 30 "$log" >&2
		fail "peerfs for $mnt exited with status $rc"
	fi
	_pfs_check_log "$log"
}

# pfs_remount MNT [-o opts]; peerfs only (a tmpfs would come back empty).
pfs_remount() {
	local mnt=$1
	shift
	[[ $PFS_TEST_TARGET == peerfs ]] ||
		fail "pfs_remount on $PFS_TEST_TARGET loses the content; remount only when PFS_TEST_TARGET is peerfs"
	pfs_umount "$mnt"
	pfs_mount "$mnt" "$@"
}

# pfs_try_mount MNT [-o opts]: run the daemon in the foreground for a mount
# that should be refused.  Returns the daemon's status (124: still running
# after 30 s; it is then unmounted); its output is in $PFS_TRY_OUT.  If the
# mount appeared, it is taken down again and PFS_TRY_MOUNTED=1.
pfs_try_mount() {
	local mnt=$1
	shift
	_pfs_parse_mount_args "$@"
	mkdir -p "$mnt"
	mnt=$(_pfs_abspath "$mnt")
	_pfs_daemon_cmd "$mnt"
	local out=$PFS_TEST_DIR/.try-mount.out pid rc=0
	echo "+ ${_pfs_cmd[*]}"
	"${_pfs_cmd[@]}" >"$out" 2>&1 </dev/null &
	pid=$!
	echo "$pid ${_pfs_cmd[0]}" >>"$PFS_TEST_DIR/.pfs-pids"
	PFS_TRY_MOUNTED=0
	local deadline=$((SECONDS + 30))
	while _pfs_alive "$pid"; do
		if mountpoint -q "$mnt"; then
			PFS_TRY_MOUNTED=1
			fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
		fi
		if ((SECONDS >= deadline)); then
			kill -TERM "$pid" 2>/dev/null
			sleep 1
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep 0.05
	done
	wait "$pid" || rc=$?
	((SECONDS < deadline)) || rc=124
	mountpoint -q "$mnt" && { PFS_TRY_MOUNTED=1; fusermount3 -uz "$mnt" 2>/dev/null; }
	PFS_TRY_OUT=$(cat "$out")
	echo "  status $rc, output: $PFS_TRY_OUT"
	return "$rc"
}

# pfs_kill_daemon MNT [PID...]: SIGKILL the daemon of MNT (mounted by
# pfs_mount), wait for it to exit and detach its dead mount.  A daemon
# thread inside a kernel entry invalidation can wait, uninterruptibly, for
# a directory lock held by a process whose request the daemon had already
# taken (that process waits, uninterruptibly too, for an answer the dead
# daemon will never send); the daemon then cannot finish exiting until
# its FUSE connection is aborted.  After 5 s the threads' kernel stacks
# are printed, the connection is aborted (through fusectl, else umount -f)
# and the given processes (those using MNT) are killed.  Sets
# PFS_KILL_STUCK=1 then.
pfs_kill_daemon() {
	local mnt pid i t st stuck
	mnt=$(_pfs_abspath "$1")
	shift
	pid=${_PFS_PID[$mnt]}
	PFS_KILL_STUCK=0
	local conn
	conn=$(findmnt -rn -o MAJ:MIN --mountpoint "$mnt" | head -n 1)
	conn=/sys/fs/fuse/connections/${conn#*:}/abort
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; ; i++)); do
		stuck=0
		for t in /proc/"$pid"/task/*/stat; do
			st=$(cat "$t" 2>/dev/null) || continue
			st=${st##*) }
			[[ ${st:0:1} == Z ]] || stuck=1
		done
		((stuck)) || break
		if ((i == 50)); then
			PFS_KILL_STUCK=1
			echo "+ peerfs pid $pid still exiting 5 s after SIGKILL; its threads:"
			for t in /proc/"$pid"/task/*; do
				echo "  thread ${t##*/}: $(cut -d' ' -f3 "$t/stat" 2>/dev/null) $(cat "$t/wchan" 2>/dev/null)"
				head -n 4 "$t/stack" 2>/dev/null | sed 's/^/    /'
			done
			if [[ -w $conn ]]; then
				echo "+ aborting its FUSE connection (${conn%/abort})"
				echo 1 >"$conn"
			else
				echo "+ umount -f $mnt (aborts its FUSE connection; fusectl is not mounted)"
				umount -f "$mnt" 2>&1 || true
			fi
			(($#)) && { echo "+ killing the processes using $mnt: $*"; kill -KILL "$@" 2>/dev/null || true; }
		fi
		((i < 600)) || fail "peerfs pid $pid did not exit within 60 s of SIGKILL"
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
	fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	unset "_PFS_PID[$mnt]" "_PFS_KIND[$mnt]"
}

# pfs_fsck: a read-only check of the (unmounted) image.
pfs_fsck() {
	[[ $PFS_TEST_TARGET == peerfs ]] || return 0
	local fsck=$BUILD/fsck.peerfs
	if [[ ! -x $fsck ]]; then
		echo "+ ($fsck not built: no fsck)"
		return 0
	fi
	local m
	for m in "${!_PFS_KIND[@]}"; do
		[[ ${_PFS_KIND[$m]} != peerfs ]] || fail "pfs_fsck: $m is still mounted"
	done
	echo "+ fsck.peerfs -n -k $PFS_KEY $PFS_IMAGE"
	local rc=0
	"$fsck" -n -k "$PFS_KEY" "$PFS_IMAGE" >"$PFS_TEST_DIR/fsck.out" 2>&1 || rc=$?
	if ((rc != 0)); then
		tail -n 40 "$PFS_TEST_DIR/fsck.out" >&2
		fail "fsck.peerfs found problems (status $rc)"
	fi
	_pfs_check_log "$PFS_TEST_DIR/fsck.out"
	echo "  fsck clean"
}

# ---- assertions -------------------------------------------------------

_pfs_strerror() {
	perl -MErrno -e 'my $f = Errno->can($ARGV[0]) or exit 1; $! = $f->(); print "$!"' "$1" ||
		fail "unknown errno name $1"
}

# expect_errno ERRNAME CMD...: CMD fails and reports the error's message
# (as the tools of coreutils, attr, acl and util-linux do).
expect_errno() {
	local want=$1 msg out rc=0
	shift
	msg=$(_pfs_strerror "$want")
	out=$("$@" 2>&1) || rc=$?
	((rc != 0)) || fail "expected $want from '$*', but it succeeded${out:+: $out}"
	[[ $out == *"$msg"* ]] || fail "expected $want ($msg) from '$*', got status $rc: $out"
	echo "ok: $* -> $want"
}

expect_ok() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	((rc == 0)) || fail "'$*' failed with status $rc: $out"
	echo "ok: $*"
}

expect_fail() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	((rc != 0)) || fail "'$*' succeeded, expected a failure${out:+: $out}"
	echo "ok: $* -> fails ($rc)"
}

# expect_eq GOT WANT WHAT
expect_eq() {
	[[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

as_user() {
	local uid=$1
	shift
	setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"
}

as_nobody() {
	as_user 65534 "$@"
}

# pfs_statfs PATH: blocks bfree bavail frsize files ffree
pfs_statfs() {
	stat -f -c '%b %f %a %S %c %d' "$1"
}

# pfs_manifest DIR [full|content]: one line per entry, sorted, plus the md5
# of each regular file and the extended attributes.
#   full     type, mode, owner, size, links, mtime and ctime in ns, inode
#            number, link target: for comparing a tree with itself later
#   content  type, mode, owner, size (not of directories), link target,
#            and hard links grouped by their first name: for comparing
#            two trees on different filesystems
pfs_manifest() {
	local dir=$1 mode=${2:-full}
	(
		cd "$dir" || exit 1
		export LC_ALL=C
		if [[ $mode == full ]]; then
			find . -mindepth 1 -printf '%p\t%y\t%m\t%U:%G\t%s\t%n\t%T@\t%C@\t%i\t%l\n' | sort
		else
			find . -mindepth 1 -printf '%p\t%y\t%m\t%U:%G\t%s\t%n\t%i\t%l\n' | sort |
				awk -F '\t' 'BEGIN { OFS = "\t" }
					{ if ($2 == "d") $5 = "-"
					  if ($2 != "d" && $6 > 1) {
						if (!($7 in first)) first[$7] = $1
						$7 = "link:" first[$7]
					  } else $7 = "-"
					  print }'
		fi
		find . -type f -print0 | sort -z | xargs -0 -r md5sum
		getfattr -R -h -d -m - -e hex . 2>/dev/null |
			awk '/^# file: / { f = substr($0, 9); next } /=/ { print "xattr\t" f "\t" $0 }' | sort
	)
}

set -E
trap '_pfs_on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR

# On exit: take down whatever is still mounted, stop daemons, and show
# the end of the daemon logs if the test failed.
_pfs_on_exit() {
	local rc=$? m pid i
	set +e
	trap - ERR
	for m in "${!_PFS_KIND[@]}"; do
		# The daemon may have gone, taking its mount with it.
		findmnt -rn --mountpoint "$m" >/dev/null || continue
		echo "+ cleanup: unmounting $m"
		if [[ ${_PFS_KIND[$m]} == tmpfs ]]; then
			umount "$m" 2>/dev/null || umount -l "$m"
		else
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"
		fi
	done
	for m in "${!_PFS_PID[@]}"; do
		pid=${_PFS_PID[$m]}
		i=0
		while ((i++ < 100)) && _pfs_alive "$pid"; do
			sleep 0.1
		done
		if _pfs_alive "$pid"; then
			echo "+ cleanup: killing peerfs pid $pid"
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	if ((rc != 0 && rc != 77)); then
		local log
		for log in "$PFS_TEST_DIR"/peerfs.*.log; do
			[[ -f $log ]] || continue
			echo "--- last lines of $log" >&2
			tail -n 20 "$log" >&2
		done
	fi
	exit "$rc"
}
trap _pfs_on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
