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
import socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1)
pid = sys.argv[2]
def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) // 1024
def connect():
    s = socket.create_connection((host, int(port)))
    s.sendall(b"  V2")
    return s
def read_frame(s):
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    size, = struct.unpack(">i", head)
    data = b""
    while len(data) < size:
        data += s.recv(size - len(data))
    return data
before = rss_mb()
c = connect()
c.sendall(b"SUB big ch\n")  # the channel exists before the backlog
read_frame(c)
c.close()
p = connect()
body = b"x" * 1000000
for _ in range(50):
    payload = struct.pack(">i", 4) + (struct.pack(">i", len(body)) + body) * 4
    p.sendall(b"MPUB big\n" + struct.pack(">i", len(payload)) + payload)
    assert read_frame(p)[4:] == b"OK"
c = connect()
c.sendall(b"SUB big ch\nRDY 200\n")
read_frame(c)
time.sleep(2)
print(f"RSS {before} MB before, {rss_mb()} MB with a consumer at RDY 200 not reading")
PY
for NSQD in "${@:-./target/release/nsqd}"; do
  D=$(mktemp -d)
  "$NSQD" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 --data-path="$D" 2>"$D.log" &
  PID=$!
  wait_listening "$D.log"
  echo "$NSQD: $(python3 "$CLIENT" "$A" "$PID")"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  rm -rf "$D" "$D.log"
done
