#!/usr/bin/env bash
# tests/deps.sh -- install what building and testing peerfs needs on a
# Debian 12 machine (run as root).  Installs only what is missing, so it
# can run any number of times.
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config libfuse3-dev fuse3 libsodium-dev
	libcmocka-dev libblkid-dev
	# tests
	stress-ng fio attr acl e2fsprogs fuse2fs util-linux xz-utils
	coreutils findutils perl-base
)

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
	[[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "deps.sh: all ${#PACKAGES[@]} packages are installed"
else
	echo "deps.sh: installing ${missing[*]}"
	SUDO=()
	if [[ $EUID -ne 0 ]]; then
		command -v sudo >/dev/null || { echo "deps.sh: run as root" >&2; exit 1; }
		SUDO=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${SUDO[@]}" apt-get update -q
	"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# The FUSE device: load the module if the kernel has it as one.
if [[ ! -e /dev/fuse ]]; then
	modprobe fuse 2>/dev/null || true
	[[ -e /dev/fuse ]] || echo "deps.sh: warning: /dev/fuse does not exist; mounted tests will fail" >&2
fi
