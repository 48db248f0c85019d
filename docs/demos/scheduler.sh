#!/usr/bin/env bash
# `make demo-scheduler`: placement and services on a real 4-worker cluster — spread over zones,
# binpack, distinctInstance and a PENDING task explained, scaling, a rolling deployment, live
# vertical scaling. Throwaway data root; about 20 seconds; everything removed at the end.
set -euo pipefail
source "$(dirname "$0")/lib.sh"      # a throwaway root, removed and checked for leftovers at exit
image_import

step "1. four workers in two zones"
show cluster up --workers 2 --worker-memory 1g --attribute zone=a
show cluster add-worker --count 2 --memory 1g --attribute zone=b
cat > "$ROOT/web.json" <<'JSON'
{"family": "web", "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 64,
  "memory": 64, "command": ["sleep", "3600"], "stopTimeout": 1}]}
JSON
show task-definition register "$ROOT/web.json"

step "2. spread over the zones first, then over the workers of each zone"
show service create web -t web -n 6 --placement-strategy 'spread(attribute:zone),spread(instanceId)' --wait
show cluster status

step "3. binpack(memory): fill the fullest worker before the next"
show task run web --count 3 --placement-strategy 'binpack(memory)' --group batch
sleep 0.5
show task ls

step "4. distinctInstance: one per worker; the fifth fits nowhere and says why"
"${MR[@]}" task run web --count 5 --placement-constraint distinctInstance --group one-each > "$ROOT/ids"
sleep 0.5
show task ls --status PENDING
show explain "$(tail -1 "$ROOT/ids")"
"${MR[@]}" task stop $(cat "$ROOT/ids") > /dev/null

step "5. memberOf: only zone b"
show task run web --placement-constraint 'memberOf(attribute:zone == b)' --group zone-b
sleep 0.3
"${MR[@]}" task ls --format json | .venv/bin/python -c '
import json, sys
for t in json.load(sys.stdin):
    if t["group"] == "zone-b":
        print(t["id"], "runs on", t["worker"])'

step "6. scale the service to 10, then a rolling deployment of a new revision"
show service update web --desired-count 10 --wait
sed 's/"sleep", "3600"/"sleep", "7200"/' "$ROOT/web.json" > "$ROOT/web2.json"
show task-definition register "$ROOT/web2.json"
show service update web --task-definition web:2 --wait
show service ls
"${MR[@]}" cluster events | grep -E '"service/web"' | tail -4 | cut -c1-170

step "7. cluster down"
show cluster down
left=$(leftovers)
echo "cluster processes left: $(grep -c '^cluster process ' <<<"$left"), containers left: $(mr ps -a -q | wc -l)"
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
printf '\n%sdone.%s docs/scheduler.md explains placement, services and failures.\n' "$G" "$N"
