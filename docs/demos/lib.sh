# Shared by the demo scripts in this directory (sourced, not run). Each demo gets a throwaway
# data root and the busybox image in it, prints its steps, and on exit removes every container
# it made, its network (bridges, nft table, helper) and the root, then checks that nothing of it
# is left on the host: no mount, no cgroup, no monitor process, no bridge, nft table, veth or
# network helper (netd). It exits non-zero if something is.
#
#   source "$(dirname "$0")/lib.sh"
#   step "1. something";  show run --rm busybox true;  mr ps -a
#
# Run from the repository's top directory (the scripts cd there). TMPDIR chooses where the root
# goes (the tests use it to look for leftovers).

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/minirun-demo.XXXXXX")
MR=(.venv/bin/minirun --root "$ROOT")
# a bridge, subnets and nft table of this root's own, removed at the end (docs/networking.md)
.venv/bin/python -c "import sys; from pathlib import Path; from minirun.net.settings import private; private(Path(sys.argv[1]), 'mrdemo')" "$ROOT"
if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= D= N=; fi
SEEN="$ROOT.ids"   # ids of every container this demo made (a file: $(mr ...) is a subshell)

# minirun on the demo's root, quietly noting which containers exist
mr() {
  local status=0
  "${MR[@]}" "$@" || status=$?
  _note_containers
  return $status
}
_note_containers() {
  [ -d "$ROOT/containers" ] && ls "$ROOT/containers" >>"$SEEN"
  return 0
}
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
show() { printf '%s$ minirun %s%s\n' "$D" "$*" "$N"; mr "$@"; }
note() { printf '%s%s%s\n' "$D" "$*" "$N"; }

# A detached container's host pid and full id
pid_of() { "${MR[@]}" inspect "$1" | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["State"]["Pid"])'; }
id_of() { "${MR[@]}" inspect "$1" | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["Id"])'; }

# What this demo left on the host: mounts under its root, cgroups of its containers,
# monitor processes of its containers. Prints one line per leftover.
leftovers() {
  grep -F "$ROOT" /proc/self/mountinfo | awk '{print "mount " $5}'
  local id
  for id in $(sort -u "$SEEN" 2>/dev/null); do
    ls -d /sys/fs/cgroup/*/minirun/"$id" 2>/dev/null | sed 's/^/cgroup /'
  done
  pgrep -f "minirun-monitor.*$ROOT" | sed 's/^/monitor pid /'
  pgrep -f "minirun-(manager|worker).*$ROOT" | sed 's/^/cluster process pid /'
  return 0
}

# After teardown: the host ends of the veths of this demo's containers (mr + 12 hex of the id
# + the interface number, minirun/net/container.py) and this root's netd process.
network_leftovers() {
  local id
  for id in $(sort -u "$SEEN" 2>/dev/null); do
    ls -d /sys/class/net/"mr${id:0:12}"[0-9] 2>/dev/null | sed 's|^/sys/class/net/|veth |'
  done
  pgrep -f "minirun.net.netd --root $ROOT\$" | sed 's/^/netd pid /'
  return 0
}

image_import() { mr image import rootfs/build/busybox.tar busybox >/dev/null; }

_cleanup() {
  local status=$? ids left
  _note_containers
  if [ -d "$ROOT/cluster" ]; then "${MR[@]}" cluster down --timeout 5 >/dev/null 2>&1 || true; fi
  ids=$("${MR[@]}" ps -a -q 2>/dev/null || true)
  [ -n "$ids" ] && "${MR[@]}" rm -f $ids >/dev/null 2>&1
  local table bridges
  table=$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['table'])" "$ROOT/net/config.json" 2>/dev/null || true)
  bridges=$(cat "$ROOT"/networks/*.json 2>/dev/null | .venv/bin/python -c "import json, sys; [print(json.loads(l)['Bridge']) for l in sys.stdin if l.strip()]" || true)
  .venv/bin/python -c "import sys; from pathlib import Path; from minirun.net.container import teardown; teardown(Path(sys.argv[1]))" "$ROOT" || true
  left=$(leftovers)
  nft list table ip "$table" >/dev/null 2>&1 && left+=$'\n'"nft table ip $table"
  for b in $bridges; do [ -e "/sys/class/net/$b" ] && left+=$'\n'"bridge $b"; done
  left+=$'\n'$(network_leftovers)
  left=$(sed '/^$/d' <<<"$left")
  rm -rf "$ROOT" "$SEEN" || true     # a busy mount point stays: reported below
  if [ -n "$left" ]; then
    printf 'minirun demo: left behind on the host:\n%s\n' "$left" >&2
    exit 1
  fi
  exit $status
}
trap _cleanup EXIT
