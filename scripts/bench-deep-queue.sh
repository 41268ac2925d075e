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
import json, sys, urllib.request
from nsq_client import connect, mpub, rss_mb
addr, http, pid = sys.argv[1:4]
for path in ["topic/create?topic=deep", "channel/create?topic=deep&channel=ch"]:
    urllib.request.urlopen(urllib.request.Request(f"http://{http}/{path}", method="POST")).read()
before = rss_mb(pid)
p = connect(addr)
for _ in range(125):
    mpub(p, b"deep", [b"x" * 1000000] * 4)
stats = json.load(urllib.request.urlopen(f"http://{http}/stats?format=json&topic=deep&channel=ch"))
ch = stats["topics"][0]["channels"][0]
print(f"RSS {before} MB before, {rss_mb(pid)} MB with 500 MB queued"
      f" (depth {ch['depth']}, backend_depth {ch['backend_depth']})")
PY
run_client "$CLIENT" "$@"
