#!/usr/bin/env bash
# `make demo-failure`: what the scheduler does when things break — a container that keeps
# crashing (restart backoff), a failing health check (replacement), a worker killed with
# kill -9 (lost, its tasks placed elsewhere, its containers removed), a manager killed and
# restarted (same tasks, nothing duplicated). Throwaway data root; about 40 seconds.
# It prints the dashboard's address first (and waits for Enter on a terminal; DEMO_NO_PAUSE=1
# does not wait), so an audience can watch it all in the browser.
set -euo pipefail
source "$(dirname "$0")/lib.sh"      # a throwaway root, removed and checked for leftovers at exit
PY=.venv/bin/python
image_import
running() { "${MR[@]}" task ls --service "$1" --status RUNNING -q | wc -l; }

step "1. a cluster of 3 workers (heartbeat 1 s, lost after 5 s: the defaults)"
show cluster up --workers 3 --worker-memory 512m --backoff-base 0.5
# course mode: the audience watches the dashboard (docs/dashboard.md) while the demo runs
printf '\n%sOpen the dashboard to watch: %s%s\n' "$B" "$("${MR[@]}" dashboard)" "$N"
if [ -t 0 ] && [ -t 1 ] && [ -z "${DEMO_NO_PAUSE:-}" ]; then
  read -r -p "press Enter when it is open (a killed worker's tasks turn LOST, then RUNNING elsewhere) "
fi
cat > "$ROOT/crash.json" <<'JSON'
{"family": "crash", "containerDefinitions": [{"name": "main", "image": "busybox", "memory": 16,
  "command": ["sh", "-c", "sleep 0.5; echo giving up; exit 3"]}]}
JSON
cat > "$ROOT/web.json" <<'JSON'
{"family": "web", "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 32,
  "command": ["sleep", "3600"], "stopTimeout": 1,
  "healthCheck": {"command": ["CMD-SHELL", "test ! -e /tmp/sick"], "interval": 1, "retries": 2}}]}
JSON
show task-definition register "$ROOT/crash.json"
show task-definition register "$ROOT/web.json"

step "2. an essential container that exits: the task stops, the service restarts it, backing off"
show service create crash -t crash -n 1
sleep 6
"${MR[@]}" cluster events | $PY -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["subject"] == "service/crash" and "failed" in e["message"]:
        print("%4d  %s" % (e["seq"], e["message"]))'
show service rm crash

step "3. a failing health check: the task is replaced"
show service create web -t web -n 6 --wait
sleep 1.5
show task ls --service web
sick=$("${MR[@]}" task ls --service web -q | head -1)
cid=$("${MR[@]}" ps --format json | $PY -c "import json, sys; print(next(c['Id'] for c in json.load(sys.stdin) if c['Names'].endswith('$sick')))")
printf '%s$ minirun exec %s touch /tmp/sick%s\n' "$D" "${cid:0:12}" "$N"
"${MR[@]}" exec "$cid" touch /tmp/sick
until "${MR[@]}" task describe "$sick" | grep -q '"status": "STOPPED"'; do sleep 0.2; done
"${MR[@]}" task describe "$sick" | grep -E '"stop_reason"'
until [ "$(running web)" = 6 ]; do sleep 0.2; done
echo "web: $(running web) tasks running again"

step "4. kill -9 a worker"
victim=$("${MR[@]}" cluster status --format json | $PY -c 'import json, sys; print(json.load(sys.stdin)["workers"][0]["pid"])')
printf '%s$ kill -9 %s   # worker w1%s\n' "$D" "$victim" "$N"
kill -9 "$victim"
t0=$(date +%s.%N)
until [ "$("${MR[@]}" task ls --service web --format json | $PY -c 'import json, sys; print(sum(t["status"] == "RUNNING" and t["worker"] != "w1" for t in json.load(sys.stdin)))')" = 6 ]; do sleep 0.1; done
awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "6 tasks running on w2 and w3, %.1f s after the kill\n", a - b }'
show cluster status

step "5. kill -9 the manager: the workers keep their tasks; a new manager picks up from SQLite"
before=$("${MR[@]}" task ls -q | sort | md5sum)
mpid=$(cut -d' ' -f1 "$ROOT/cluster/manager.pid")
printf '%s$ kill -9 %s   # the manager%s\n' "$D" "$mpid" "$N"
kill -9 "$mpid"
sleep 1
echo "containers still running without a manager: $("${MR[@]}" ps -q | wc -l)"
show cluster up
sleep 6
after=$("${MR[@]}" task ls -q | sort | md5sum)
[ "$before" = "$after" ] && echo "the same 6 tasks, none started twice: $("${MR[@]}" ps -q | wc -l) containers"
show service update web --desired-count 8 --wait
show service ls

step "6. cluster down"
show cluster down
left=$(leftovers)
echo "cluster processes left: $(grep -c '^cluster process ' <<<"$left"), containers left: $(mr ps -a -q | wc -l)"
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
printf '\n%sdone.%s docs/scheduler.md, "Failure handling", explains each step.\n' "$G" "$N"
