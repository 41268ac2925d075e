#!/usr/bin/env bash
# nsqd's memory while one slow consumer holds many messages that it took
# far apart: a fast consumer drains the channel, a slow one (RDY 1000)
# finishes its oldest message every 10 ms, so each message it holds was
# published about 8 s after the one before it, in a different read buffer.
# Prints nsqd's RSS at the end of publishing, for each binary given.
# Usage: scripts/bench-slow-consumer.sh [NSQD...]  (default ./target/release/nsqd)
# Needs: cargo build --release --bin nsqd --bin nsq-bench; python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
B=./target/release/nsq-bench
SLOW=$(mktemp)
trap 'rm -f "$SLOW"' EXIT
cat >"$SLOW" <<'PY'
import collections, select, socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"  V2SUB slow ch\nRDY 1000\n")
buf, held, got = b"", collections.deque(), 0
end = time.time() + float(sys.argv[2])
next_fin = time.time()
while time.time() < end:
    if select.select([s], [], [], 0.002)[0]:
        data = s.recv(1 << 20)
        if not data:
            break
        buf += data
        while len(buf) >= 8:
            size, kind = struct.unpack(">ii", buf[:8])
            if len(buf) < 4 + size:
                break
            frame, buf = buf[8:4 + size], buf[4 + size:]
            if kind == 0 and frame == b"_heartbeat_":
                s.sendall(b"NOP\n")
            elif kind == 2:
                held.append(frame[10:26])
                got += 1
    now = time.time()
    while held and now >= next_fin:
        s.sendall(b"FIN " + held.popleft() + b"\n")
        next_fin += 0.01
    if not held:
        next_fin = now
print(f"slow consumer: {got} received, {len(held)} held", file=sys.stderr)
PY
for NSQD in "${@:-./target/release/nsqd}"; do
  D=$(mktemp -d)
  "$NSQD" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 --data-path="$D" 2>"$D.log" &
  PID=$!
  wait_listening "$D.log"
  $B sub --nsqd-tcp-address="$A" --topic slow --channel ch --runfor 100ms --rdy 0 \
    --connections 1 >/dev/null 2>&1
  $B sub --nsqd-tcp-address="$A" --topic slow --channel ch --runfor 22s --connections 1 \
    >/dev/null 2>&1 &
  FAST=$!
  python3 "$SLOW" "$A" 21 &
  SLOWPID=$!
  sleep 1
  $B pub --nsqd-tcp-address="$A" --topic slow --runfor 18s --connections 1 \
    --batch-size 1 --pipeline 16 2>&1 | tail -1
  echo "$NSQD: $(grep VmRSS /proc/$PID/status | tr -s ' \t' ' ')"
  wait "$SLOWPID" "$FAST" || true
  kill "$PID"; wait "$PID" 2>/dev/null || true
  rm -rf "$D" "$D.log"
done
