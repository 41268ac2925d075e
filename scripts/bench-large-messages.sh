#!/usr/bin/env bash
# nsqd's memory with large messages in flight: 200 messages of 1 MB are
# published (50 MPUBs of 4), then a consumer sends RDY 200 and reads
# nothing. Prints nsqd's RSS before and 2 s after, for each binary given.
# Usage: scripts/bench-large-messages.sh [NSQD...]  (default ./target/release/nsqd)
# Needs: cargo build --release --bin nsqd; python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CLIENT=$(mktemp)
trap 'rm -f "$CLIENT"' EXIT
cat >"$CLIENT" <<'PY'
import sys, time
from nsq_client import connect, mpub, read_frame, rss_mb
addr, pid = sys.argv[1], sys.argv[3]
before = rss_mb(pid)
c = connect(addr)
c.sendall(b"SUB big ch\n")  # the channel exists before the backlog
read_frame(c)
c.close()
p = connect(addr)
for _ in range(50):
    mpub(p, b"big", [b"x" * 1000000] * 4)
c = connect(addr)
c.sendall(b"SUB big ch\nRDY 200\n")
read_frame(c)
time.sleep(2)
print(f"RSS {before} MB before, {rss_mb(pid)} MB with a consumer at RDY 200 not reading")
PY
run_client "$CLIENT" "$@"
