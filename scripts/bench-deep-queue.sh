#!/usr/bin/env bash
# nsqd's memory with a deep backlog of large messages: a channel without
# consumers, then 500 messages of 1 MB (125 MPUBs of 4). Prints nsqd's RSS
# before and after, and the channel's depth and backend_depth, for each
# binary given (extra nsqd flags in NSQD_FLAGS).
# Usage: scripts/bench-deep-queue.sh [NSQD...]  (default ./target/release/nsqd)
# Needs: cargo build --release --bin nsqd; python3; 600 MB free in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CLIENT=$(mktemp)
trap 'rm -f "$CLIENT"' EXIT
cat >"$CLIENT" <<'PY'
import json, socket, struct, sys, urllib.request
host, port = sys.argv[1].rsplit(":", 1)
http, pid = sys.argv[2], sys.argv[3]
def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) // 1024
def read_frame(s):
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    size, = struct.unpack(">i", head)
    data = b""
    while len(data) < size:
        data += s.recv(size - len(data))
    return data
for path in ["topic/create?topic=deep", "channel/create?topic=deep&channel=ch"]:
    urllib.request.urlopen(urllib.request.Request(f"http://{http}/{path}", method="POST")).read()
before = rss_mb()
p = socket.create_connection((host, int(port)))
p.sendall(b"  V2")
body = b"x" * 1000000
for _ in range(125):
    payload = struct.pack(">i", 4) + (struct.pack(">i", len(body)) + body) * 4
    p.sendall(b"MPUB deep\n" + struct.pack(">i", len(payload)) + payload)
    assert read_frame(p)[4:] == b"OK"
stats = json.load(urllib.request.urlopen(f"http://{http}/stats?format=json&topic=deep&channel=ch"))
ch = stats["topics"][0]["channels"][0]
print(f"RSS {before} MB before, {rss_mb()} MB with 500 MB queued"
      f" (depth {ch['depth']}, backend_depth {ch['backend_depth']})")
PY
for NSQD in "${@:-./target/release/nsqd}"; do
  D=$(mktemp -d)
  # shellcheck disable=SC2086
  "$NSQD" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 --data-path="$D" ${NSQD_FLAGS:-} 2>"$D.log" &
  PID=$!
  wait_listening "$D.log"
  echo "$NSQD: $(python3 "$CLIENT" "$A" "$H" "$PID")"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  rm -rf "$D" "$D.log"
done
