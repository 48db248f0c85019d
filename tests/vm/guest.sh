#!/bin/bash
# Inside the VM tier's guest (tests/vm/run starts it): Debian's stock kernel, the host's root
# shared read-only over 9p, cgroup v1 off. Make the guest look like a systemd host with cgroup
# v2 only, measure how slow it is, run the chosen tests, and say how they ended.
#
#   guest.sh HOST_START_MS ARGS_FILE       (ARGS_FILE: pytest's arguments, NUL-separated)
#
# The last line it prints is "test-vm: guest pytest exit N"; the host reads it (a guest that
# panics or hangs never prints it, and the host fails).
set -uo pipefail
host_ms=$1
mapfile -d '' args < "$2" || exit 1     # read before /tmp is covered below
say() { echo "test-vm: $*"; }

# Writable places. virtme-ng lays an overlay (upper on a tmpfs) over /tmp, /var, ...; the
# runtime's own overlay mounts cannot use an overlay as their upper layer, so the tests' data
# roots (mkdtemp in /tmp) and the default data root get tmpfs of their own. Nothing reaches the
# host: its root is read-only to the guest.
# A work tree inside one of them (a CI clone in /tmp) would be hidden, and with it the package
# its .venv points at: held open here and bound back at its path once the tmpfs is on (through
# the fd: --no-canonicalize, else mount(8) resolves /proc/self/fd/9 to the path, now the tmpfs's).
repo=$PWD
exec 9<"$repo" || exit 1
mount -t tmpfs -o mode=1777 tmpfs /tmp || exit 1
mkdir -p /var/lib/minirun /run/minirun && mount -t tmpfs -o mode=0711 tmpfs /var/lib/minirun || exit 1
if [ ! -e "$repo/tests/vm/guest.sh" ]; then
    mkdir -p "$repo" && mount --no-canonicalize --bind /proc/self/fd/9 "$repo" && cd "$repo" || exit 1
fi
exec 9<&-
export TMPDIR=/tmp HOME=/root PYTHONDONTWRITEBYTECODE=1

# cgroup v2 as systemd lays it out: every process in a leaf (init.scope, and the tests in a
# service of system.slice), so that the root and the slice can lend their controllers to
# children (cgroup v2's "no internal processes" rule); the root then enables all it has.
cg=/sys/fs/cgroup
if [ "$(stat -f -c %T $cg)" != cgroup2fs ] || grep -q '^[^ ]* [^ ]* cgroup ' /proc/mounts; then
    say "the guest has cgroup v1 mounted or no cgroup2 at $cg: not the host this tier is for"
    say "guest pytest exit 1"
    exit 1
fi
mkdir -p $cg/init.scope $cg/system.slice
for pid in $(cat $cg/cgroup.procs); do
    echo "$pid" > $cg/init.scope/cgroup.procs 2>/dev/null   # kernel threads stay where they are
done
controllers=$(cat $cg/cgroup.controllers)
echo "$controllers" | sed 's/\([a-z_]*\)/+\1/g' > $cg/cgroup.subtree_control || exit 1
echo "$controllers" | sed 's/\([a-z_]*\)/+\1/g' > $cg/system.slice/cgroup.subtree_control || exit 1
mkdir -p $cg/system.slice/minirun-tests.service
echo $$ > $cg/system.slice/minirun-tests.service/cgroup.procs || exit 1
say "kernel $(uname -r), cgroup2 controllers: $(cat $cg/cgroup.subtree_control)"

# How much slower than the host this guest is, on what the tests do most: start Python and
# import the runtime (the median of 5). Tests multiply their time limits by it
# (tests/conftest.py: slow()).
PY=${PYTHON:-.venv/bin/python}
guest_ms=$(for _ in 1 2 3 4 5; do
    s=$(date +%s%N); $PY -c 'import minirun.runtime.containers' || exit 1; e=$(date +%s%N)
    echo $(( (e - s) / 1000000 ))
done | sort -n | sed -n 3p)
export MINIRUN_TEST_SLOWNESS=$(awk -v g="$guest_ms" -v h="$host_ms" 'BEGIN { f = g / (h > 0 ? h : 1); printf "%.1f", f < 1 ? 1 : f }')
say "a Python start: ${guest_ms} ms here, ${host_ms} ms on the host: slowness ${MINIRUN_TEST_SLOWNESS}"

# -p no:cacheprovider: the work tree is read-only here
$PY -m pytest -p no:cacheprovider "${args[@]}"
status=$?
say "guest pytest exit $status"
exit $status
