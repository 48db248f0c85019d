#!/usr/bin/env bash
# `make demo-cgroups`: the kernel enforcing a container's limits — a memory hog OOM-killed, a
# fork bomb held at its pids limit, a busy loop held to its CPU quota and then given more, live.
# A throwaway data root; about 10 seconds. The lab that explains it: docs/labs/04-cgroups.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
image_import

# the directory of a container's group in one v1 hierarchy, or in the unified (v2) tree
group() {   # CONTROLLER CONTAINER
  .venv/bin/python -c 'import sys
from minirun.runtime.cgroups import detect
print(detect().open("minirun/" + sys.argv[2]).paths[sys.argv[1]])' "$1" "$(id_of "$2")"
}
value() { cat "$(group "$1" "$2")/$3"; }   # CONTROLLER CONTAINER FILE

step "1. which cgroups this host has"
.venv/bin/python -c 'from minirun.runtime.cgroups import detect
print("  ".join(f"{c}: {v}" for c, v in detect().available().items()))'
note "(v1: one hierarchy per controller under /sys/fs/cgroup; v2: one tree. minirun picks per controller.)"

step "2. memory: a hog in 32 MiB is OOM-killed"
status=0
show run --name hog -m 32m busybox sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done' || status=$?
echo "exit status: $status (128 + SIGKILL)"
mr inspect hog | grep -E '"(ExitCode|OOMKilled)"'
if [ -e "$(group memory hog)/memory.oom_control" ]; then
  echo "$(group memory hog)/memory.oom_control: $(grep oom_kill "$(group memory hog)/memory.oom_control" | tr '\n' ' ')"
else
  echo "$(group memory hog)/memory.events: $(grep oom_kill "$(group memory hog)/memory.events")"
fi
mr rm hog >/dev/null

step "3. pids: a fork bomb held at 64 processes"
show run -d --name bomb --pids-limit 64 --cpus 0.5 busybox sh -c 'f(){ f | f & }; f & exec sleep 300'
pids=$(group pids bomb)
# wait until the kernel has refused forks and stopped having to: the bomb has burnt out
n=; while [ "$n" != "$(cat "$pids/pids.events")" ] || [ "$n" = "max 0" ]; do n=$(cat "$pids/pids.events"); sleep 0.5; done
echo "pids.current $(cat "$pids/pids.current") of pids.max $(cat "$pids/pids.max"); forks refused (pids.events): $(cut -d' ' -f2 "$pids/pids.events")"
pid=$(pid_of bomb)
echo "processes the bomb left: $(ps -o stat= --ppid "$pid" | sort | uniq -c | xargs)  (zombies: PID 1 is sleep, which never reaps them)"
echo "the host is unaffected: it can still start processes ($(/bin/echo yes)), and the bomb had at most half a CPU"
show rm -f bomb

step "4. cpu: a busy loop held to a quarter of a CPU, then given half, live"
show run -d --name spin --cpus 0.25 busybox sh -c 'while :; do :; done'
if [ -e "$(group cpuacct spin)/cpuacct.usage" ]; then
  usage_file=$(group cpuacct spin)/cpuacct.usage; usage() { cat "$usage_file"; }           # v1: ns
else
  usage_file=$(group cpu spin)/cpu.stat; usage() { awk '/usage_usec/ {print $2 * 1000}' "$usage_file"; }
fi
# CPU time per second of wall time, in ms, measured over one second
measure() {
  local a b t0 t1
  t0=$(date +%s%N); a=$(usage); sleep 1; b=$(usage); t1=$(date +%s%N)
  echo $(( (b - a) * 1000 / (t1 - t0) ))
}
echo "CPU time used: $(measure) ms per second (the quota allows 250)"
show update --cpus 0.5 spin
echo "CPU time used: $(measure) ms per second (the quota allows 500)"
show rm -f spin

step "5. nothing left behind"
left=$(leftovers)
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
printf '\n%sdone.%s The lab: docs/labs/04-cgroups.md\n' "$G" "$N"
