#!/usr/bin/env bash
# `make demo-namespaces`: what a container sees and what the host sees of it, the clone flags
# that made its namespaces, and nsenter stepping inside. A throwaway data root; a few seconds.
# The lab that explains it: docs/labs/01-namespaces.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
image_import

step "1. inside: its own PID 1, hostname, processes and network"
show run --rm --network none -h demo busybox sh -c 'echo "pid=$$ hostname=$(hostname) processes=$(ls /proc | grep -c "^[0-9]") interfaces=$(ip -o link | wc -l) cgroup=$(cut -d: -f3 /proc/self/cgroup | sort -u)"'
note "(the host: pid=$$ hostname=$(hostname) processes=$(ls /proc | grep -c '^[0-9]') interfaces=$(ls /sys/class/net | wc -l))"

step "2. the syscall that made the namespaces"
if command -v strace >/dev/null; then
  printf '%s$ strace -f -e trace=clone,unshare minirun run --rm --network none busybox true%s\n' "$D" "$N"
  strace -f -qq -e trace=clone,unshare "${MR[@]}" run --rm --network none busybox true 2>&1 \
    | grep -oE 'flags=CLONE_VM\|CLONE_VFORK\|CLONE_NEW[A-Z_|]*|unshare\(CLONE_NEW[A-Z_|]*' | sed 's/$/)/'
  note "(CLONE_VM|CLONE_VFORK: cloned as posix_spawn clones, in minirun's memory, which waits for its exec;"
  note " the cgroup namespace comes later, once the child has joined its cgroup, so its group is its \"/\")"
else
  note "(install strace to see it: make prereqs)"
fi

step "3. the same process, seen from the host"
show run -d --name demo -h demo busybox sleep 300
pid=$(pid_of demo)
printf '%-8s %-22s %-22s\n' namespace "container (pid $pid)" "this shell"
for ns in pid mnt uts ipc net cgroup user time; do
  mine=$(readlink /proc/$$/ns/$ns); theirs=$(readlink /proc/$pid/ns/$ns)
  printf '%-8s %-22s %-22s %s\n' "$ns" "$theirs" "$mine" "$([ "$mine" = "$theirs" ] && echo shared || echo own)"
done
echo "$(grep NSpid /proc/$pid/status | tr '\t' ' ')   (its pid on the host, then inside)"
echo "its parent on the host: $(ps -o comm= -p $(ps -o ppid= -p $pid))  (minirun's monitor waits for it and records its exit)"

step "4. step inside with nsenter (setns on /proc/$pid/ns/*)"
printf '%s$ nsenter -t %s -u -p -m ps%s\n' "$D" "$pid" "$N"
nsenter -t "$pid" -u -p -m ps
note "namespaces are not privileges: the container's root cannot rename its host..."
show exec demo hostname renamed || true
note "...but the host's root, joining only the uts namespace, keeps its capabilities:"
printf '%s$ nsenter -t %s -u hostname renamed-from-the-host%s\n' "$D" "$pid" "$N"
nsenter -t "$pid" -u hostname renamed-from-the-host
show exec demo hostname
note "(and the host is still $(hostname))"
show rm -f demo

step "5. nothing left behind"
left=$(leftovers)
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
printf '\n%sdone.%s The lab: docs/labs/01-namespaces.md\n' "$G" "$N"
