#!/usr/bin/env bash
# `make demo-network`: two containers on a user network find each other by name, a published
# port answers on 127.0.0.1, a container on another network cannot reach them; then everything
# is removed and lib.sh checks that no bridge, nft table, veth or netd of this root is left.
# Runs in a throwaway data root with a bridge, subnets and nft table of its own; about 5 seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"     # a throwaway root, step/show, cleanup and the leak check
image_import
TABLE=$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['table'])" "$ROOT/net/config.json")

step "1. two user networks, each a bridge of its own"
show network create front
show network create back
show network ls

step "2. a web server on front, its port 80 published on the host (127.0.0.1, a free port)"
show run -d --name web --network front -p 80 busybox sh -c 'mkdir /www; echo "hello from web ($(hostname -i))" > /www/index.html; exec httpd -f -p 80 -h /www'
show run -d --name client --network front busybox sleep 300
show run -d --name other --network back busybox sleep 300
show port web
hostport=$("${MR[@]}" port web 80)

step "3. on the same network: by name (/etc/hosts), ping and HTTP"
show exec client cat /etc/hosts
show exec client ping -c 1 -W 2 web
show exec client wget -qO- http://web/

step "4. from the host: the published port, rewritten by an nftables DNAT rule"
for _ in 1 2 3 4 5 6 7 8 9 10; do curl -sf "http://$hostport/" >/dev/null && break; sleep 0.2; done
note "\$ curl http://$hostport/"
curl -s --max-time 5 "http://$hostport/"
note "\$ nft list chain ip $TABLE output"
nft list chain ip "$TABLE" output | grep dnat | sed 's/^[[:space:]]*//'

step "5. the plumbing: a veth pair per container, its host end on the network's bridge"
web_pid=$(pid_of web)
note "\$ nsenter -t $web_pid -n ip -br addr      # inside web's network namespace"
nsenter -t "$web_pid" -n ip -br addr
bridge=$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['Bridge'])" "$ROOT/networks/front.json")
note "\$ ip -br link show master $bridge     # the host ends on front's bridge"
ip -br link show master "$bridge"

step "6. another network is walled off: no name, no route through (nft forward drop)"
set +e
show exec other ping -c 1 -W 2 web 2>&1; echo "exit status: $?"
web_ip=$("${MR[@]}" exec web hostname -i)
show exec other ping -c 1 -W 2 "$web_ip" 2>&1; echo "exit status: $?"
show exec other nc -w 2 "$web_ip" 80 </dev/null 2>&1; echo "exit status: $?"
set -e
note "(by name: back's /etc/hosts does not list web; by address: dropped between the bridges)"
note "\$ nft list chain ip $TABLE forward"
nft list chain ip "$TABLE" forward | grep drop | sed 's/^[[:space:]]*//'

step "7. remove it all: containers, networks, then the root's bridges, nft table and netd"
show rm -f web client other
show network rm front back
left=$(leftovers)
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
note "(on exit: the root's default bridge, nft table and netd go too; the check below covers them)"
printf '\n%sdone.%s The lab: docs/labs/10-networking.md; how it works: docs/networking.md.\n' "$G" "$N"
