#!/bin/sh
# Install the Debian packages detvm needs, when any is missing.
# Build: libzstd-dev libxxhash-dev libsqlite3-dev libcmocka-dev nettle-dev.
# Tests: qemu-system-x86 (differential test of the device models), gdb,
# sqlite3 (schema test).
set -e
need=""
for p in gcc make libzstd-dev libxxhash-dev libsqlite3-dev libcmocka-dev nettle-dev \
         qemu-system-x86 gdb sqlite3 bc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "deps: installing$need" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need
