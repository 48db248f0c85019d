#!/usr/bin/env bash
# The main demo (`make demo`): an isolated container from the busybox tarball image, with its
# limits enforced; then a scheduler cluster that loses a worker; then everything removed. Runs in a
# throwaway data root; about 20 seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"     # a throwaway root, step/show, cleanup and the leak check

step "1. import the image built from rootfs/ (a plain tarball)"
show image import rootfs/build/busybox.tar busybox
show image ls

step "2. an isolated process: its own PID 1, hostname, root and /proc"
show run --rm -h demo busybox sh -c 'echo "pid=$$ hostname=$(hostname)"; echo "processes visible: $(ls /proc | grep -c "^[0-9]")"; cat /etc/os-release | head -1'
printf '%s(the host has %s processes)%s\n' "$D" "$(ls /proc | grep -c '^[0-9]')" "$N"

step "3. memory limit: a hog in 32 MiB is OOM-killed (exit 137)"
set +e
show run --name hog -m 32m busybox sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done'
echo "exit status: $?"
set -e
mr inspect hog | grep -E '"(Status|ExitCode|OOMKilled)"'
mr rm hog >/dev/null

step "4. pids limit: a fork bomb stops at 20 processes"
set +e
show run --rm --pids-limit 20 busybox sh -c 'for i in $(seq 100); do sleep 5 & printf "%s " $i; done'
status=$?
set -e
printf '\nexit status: %s (the shell is process 1 of 20; the kernel refused the 21st fork)\n' "$status"

step "5. cpu quota: a busy loop limited to a quarter of a CPU"
id=$(mr run -d --name spin --cpus 0.25 busybox sh -c 'while :; do :; done')
printf '%s$ minirun run -d --name spin --cpus 0.25 busybox sh -c "while :; do :; done"%s\n' "$D" "$N"
cpu() { "${MR[@]}" top --format json spin | .venv/bin/python -c 'import json, sys; print(sum(p["cpu_seconds"] for p in json.load(sys.stdin)))'; }
before=$(cpu)
sleep 2
after=$(cpu)
awk -v a="$after" -v b="$before" 'BEGIN { printf "cpu time used in 2 s of wall time: %.2f s (the quota allows 0.50 s)\n", a - b }'
mr rm -f spin >/dev/null

step "6. a detached container with limits: logs, exec, stop, rm"
show run -d --name ticker -m 64m --cpus 0.5 --pids-limit 64 busybox sh -c 'while :; do date; sleep 1; done'
sleep 2.2
show ps
show logs ticker
show exec ticker ps
show stop -t 1 ticker
show rm ticker

step "7. networking: a web server on a published port, found by name on its network"
show network create demo-net
show run -d --name web --network demo-net -p 80 busybox sh -c 'mkdir /www; echo "hello from $(hostname)" > /www/index.html; exec httpd -f -p 80 -h /www'
show port web
hostport=$("${MR[@]}" port web 80)
sleep 0.3
show run --rm --network demo-net busybox wget -qO- http://web/
note "\$ curl http://$hostport/  (from the host)"
.venv/bin/python -c "import sys, urllib.request; print(urllib.request.urlopen(f'http://{sys.argv[1]}/', timeout=5).read().decode().strip())" "$hostport"
show rm -f web
show network rm demo-net

step "8. a cluster: a manager and 3 workers, a service of 6 tasks spread over them"
show cluster up --workers 3 --worker-memory 512m
cat > "$ROOT/web.json" <<'JSON'
{"family": "web",
 "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 128, "memory": 32,
   "command": ["sh", "-c", "echo serving; exec sleep 3600"], "stopTimeout": 1}]}
JSON
show task-definition register "$ROOT/web.json"
show service create web --task-definition web --desired-count 6 --wait
show task ls
show cluster status

step "9. kill -9 a worker: after 5 s without heartbeat it is lost, its tasks run elsewhere"
victim=$(mr cluster status --format json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["workers"][1]["pid"])')
printf '%s$ kill -9 %s   # worker w2%s\n' "$D" "$victim" "$N"
kill -9 "$victim"
t0=$(date +%s.%N)
until [ "$(mr task ls --service web --format json | .venv/bin/python -c 'import json, sys; t = json.load(sys.stdin); print(sum(x["status"] == "RUNNING" and x["worker"] != "w2" for x in t))')" = 6 ]; do sleep 0.2; done
awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "6 tasks running on w1 and w3 again, %.1f s after the kill\n", a - b }'
show task ls
mr cluster events | grep -E 'LOST|leftover' | cut -c1-160
show cluster down

step "10. nothing left behind"
left=$(leftovers)
procs=$(pgrep -fc "minirun-(manager|worker).*$ROOT" || true)
echo "mounts: $(grep -c '^mount ' <<<"$left"), container cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l), cluster processes: $procs, socket: $(ls "$ROOT/cluster/manager.sock" 2>/dev/null | wc -l)"
printf '\n%sdone.%s Next: `make test`, and docs/architecture.md for how it works.\n' "$G" "$N"
