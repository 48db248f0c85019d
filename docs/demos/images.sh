#!/usr/bin/env bash
# `make demo-images`: a three-layer image built from a Containerfile, a second image sharing
# two of its layers, a whiteout seen from inside a container and on the host, and save -> load
# giving back the same image id. Throwaway data root; a few seconds; everything removed.
# The lab: docs/labs/07-images-and-builds.md
set -euo pipefail
source "$(dirname "$0")/lib.sh"
image_import
ctx="$ROOT/ctx"; mkdir "$ctx"
layers() { ls "$ROOT/images/layers" | wc -l; }
image_id() { "${MR[@]}" image inspect "$1" | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["Id"])'; }

step "1. a three-layer image: busybox, a COPY, a RUN that deletes /bin/vi"
printf '#!/bin/sh\necho "hello from $(hostname), layer by layer"\n' > "$ctx/hello.sh"
cat > "$ctx/Containerfile" <<'EOF'
FROM busybox
COPY hello.sh /app/
RUN chmod +x /app/hello.sh && rm /bin/vi
CMD ["/app/hello.sh"]
EOF
cat "$ctx/Containerfile"
show build -t app:1 "$ctx" 2>&1 | grep -E '^(STEP|Successfully)'
show run --rm --hostname demo app:1
mr image inspect app:1 | .venv/bin/python -c '
import json, sys
for i, layer in enumerate(json.load(sys.stdin)[0]["RootFS"]["Layers"], 1):
    print(f"  layer {i}: {layer[:19]}...")'
echo "layers in the store: $(layers)"

step "2. a second image from the same first steps: its first two layers are app:1's"
cat > "$ctx/Containerfile.tools" <<'EOF'
FROM busybox
COPY hello.sh /app/
RUN echo "vi is still here" > /app/note
EOF
show build -t tools:1 -f "$ctx/Containerfile.tools" "$ctx" 2>&1 | grep -E '^(STEP|-->|Successfully)' | grep -v ' tools:1$'
echo "layers in the store: $(layers) (3 + 3 listed, 2 shared)"
show image df -v
note "(<none> are the build's intermediate steps: its cache)"

step "3. the whiteout: gone in app:1, there in tools:1 (same lower layers)"
show run --rm app:1 ls /bin/vi 2>&1 || true
show run --rm tools:1 ls /bin/vi
top=$(mr image inspect app:1 | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][2][7:])')
note "on the host, app:1's top layer holds overlayfs' whiteout, a 0/0 character device:"
stat -c '  %n: %F %t:%T' "$ROOT/images/layers/$top/diff/bin/vi" | sed "s#$ROOT#ROOT#"

step "4. save -> rm -> load: the same image id"
before=$(image_id app:1)
show image save -o "$ROOT/app.tar" app:1 2>/dev/null
echo "  $(du -h "$ROOT/app.tar" | cut -f1)  app.tar: $(tar tf "$ROOT/app.tar" | grep -c 'blobs/sha256/.') blobs"
show image rm app:1
show image load -i "$ROOT/app.tar" 2>/dev/null
after=$(image_id app:1)
echo "before: ${before:7:12}  after: ${after:7:12}"
[ "$before" = "$after" ] && echo "same id: every layer was rebuilt byte for byte"
show run --rm --hostname demo app:1

step "5. nothing left behind"
left=$(leftovers)
echo "mounts: $(grep -c '^mount ' <<<"$left"), cgroups: $(grep -c '^cgroup ' <<<"$left"), containers: $(mr ps -a -q | wc -l)"
printf '\n%sdone.%s The lab: docs/labs/07-images-and-builds.md\n' "$G" "$N"
