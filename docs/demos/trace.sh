#!/usr/bin/env bash
# `make demo-trace`: where a container's start-up time goes. The waterfall of one start, then
# each native step's median over a few starts, plain and with more mounts, side by side, then
# the waterfall of an exec (setns into a running container, each namespace a row).
# A throwaway data root; a few seconds. The lab that explains it: docs/labs/06-startup-trace.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
image_import

step "1. one start-up, from the interpreter's start to the container's removal"
show trace run busybox echo hello

RUNS=5
traces() {   # OUT RUN-ARGS...: RUNS traced starts, their JSON one after the other in OUT
  local out=$1 i; shift
  for i in $(seq $RUNS); do "${MR[@]}" trace run --format json "$@"; done >"$out"
}

step "2. each row's median over $RUNS starts: plain, and with more mounts"
mkdir -p "$ROOT/vol"
note "plain:        minirun trace run busybox true"
note "more mounts:  minirun trace run --read-only --tmpfs /a --tmpfs /b -v ROOT/vol:/data busybox true"
traces "$ROOT/plain.json" busybox true
traces "$ROOT/more.json" --read-only --tmpfs /a --tmpfs /b -v "$ROOT/vol:/data" busybox true
.venv/bin/python - "$ROOT/plain.json" "$ROOT/more.json" <<'PY'
import json, statistics, sys

def runs(path):
    """The traces in a file of JSON documents written one after the other."""
    text, decoder, at, out = open(path).read(), json.JSONDecoder(), 0, []
    while text[at:].strip():
        doc, at = decoder.raw_decode(text, len(text) - len(text[at:].lstrip()))
        out.append(doc)
    return out

def medians(path):
    """{row: median ms}, rows in the order of the waterfall; a repeated name gets "(2nd)"."""
    rows = {}
    for run in runs(path):
        seen = {}
        for s in run["spans"]:
            if s["name"] == "(between phases)":
                continue
            seen[s["name"]] = seen.get(s["name"], 0) + 1
            key = (s["source"], s["name"] + (" (2nd)" if seen[s["name"]] == 2 else ""))
            rows.setdefault(key, []).append(s["duration_ms"])
        rows.setdefault(("", "total"), []).append(run["total_ms"])
    return {k: statistics.median(v) for k, v in rows.items()}

plain, more = medians(sys.argv[1]), medians(sys.argv[2])
print(f"{'source':7} {'row':34} {'plain ms':>9} {'mounts ms':>10}")
for source in ("native", "python", ""):
    for (src, name), ms in plain.items():
        if src == source:
            print(f"{src:7} {name:34} {ms:9.2f} {more.get((src, name), float('nan')):10.2f}")
PY
note "(native rows: the child's steps between clone and execve, in order; python rows: the parent's phases)"

step "3. exec joins instead of creating: setns into each namespace, no mounts, no pivot_root"
mr run -d --name joined --network none busybox sleep 600 >/dev/null
show trace exec --detail joined true
mr rm -f joined >/dev/null

step "4. nothing left behind"
left=$(leftovers)
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
printf '\n%sdone.%s The lab: docs/labs/06-startup-trace.md\n' "$G" "$N"
