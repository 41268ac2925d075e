#!/usr/bin/env bash
# Crash safety at full speed: this build at default flags (every message on
# disk before it is acknowledged) against an older build's memory path
# (NSQD_OLD, with --mem-queue-size=100000000), in one run; then a deep
# backlog delivered from disk, the memory it costs, and the restart time.
# Usage: NSQD_OLD=path scripts/bench-crash-safety.sh [runfor] [backlog]
# Needs: cargo build --release --bin nsqd --bin nsq-bench
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNFOR=${1:-5s}
BACKLOG=${2:-5000000}
NEW=./target/release/nsqd
OLD=${NSQD_OLD:?set NSQD_OLD to the nsqd build to compare with}
B=./target/release/nsq-bench

start() { # binary datadir args...
  local bin=$1 dir=$2; shift 2
  rm -f "$dir.log"
  "$bin" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 --data-path="$dir" "$@" 2>"$dir.log" &
  PID=$!
  wait_listening "$dir.log"
}
channel() {
  curl -s -X POST "http://$H/topic/create?topic=sub_bench" >/dev/null
  curl -s -X POST "http://$H/channel/create?topic=sub_bench&channel=ch" >/dev/null
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

$B baseline --runfor 3s
for who in old new; do
  if [ $who = old ]; then BIN=$OLD; FLAGS=(--mem-queue-size=100000000); else BIN=$NEW; FLAGS=(); fi
  for load in "mpub:--connections 2 --batch-size 200 --size 200" \
              "pub-pipelined:--connections 8 --batch-size 1 --pipeline 64"; do
    D=$(mktemp -d); start "$BIN" "$D" "${FLAGS[@]}"; channel
    echo -n "$who ${load%%:*}: "
    # shellcheck disable=SC2086
    $B pub --nsqd-tcp-address="$A" --runfor "$RUNFOR" ${load#*:} --nsqd-pid "$PID"
    stop; rm -rf "$D" "$D.log"
  done
  # SUB of a backlog that fits the memory queue (new: cached, on disk too).
  D=$(mktemp -d); start "$BIN" "$D" --mem-queue-size=100000000; channel
  $B pub --nsqd-tcp-address="$A" --runfor 4s --connections 2 --batch-size 200 --size 200 >/dev/null
  echo -n "$who sub (2 connections, memory queue): "
  $B sub --nsqd-tcp-address="$A" --runfor 1s --connections 2 --channel ch --nsqd-pid "$PID"
  stop; rm -rf "$D" "$D.log"
done

# A deep backlog at default flags: memory, restart time, delivery from disk.
D=$(mktemp -d); start "$NEW" "$D"; channel
BEFORE=$(rss_mb "$PID")
echo -n "new backlog of $BACKLOG: "
N=0
while [ "$N" -lt "$BACKLOG" ]; do
  OUT=$($B pub --nsqd-tcp-address="$A" --runfor 2s --connections 2 --batch-size 200 --size 200 --json)
  N=$((N + $(echo "$OUT" | sed 's/.*"messages":\([0-9]*\).*/\1/')))
done
DEPTH=$(curl -s "http://$H/stats?format=json&topic=sub_bench" | sed 's/.*"channel_name":"ch","depth":\([0-9]*\).*/\1/')
echo "channel depth $DEPTH, RSS ${BEFORE} MB empty -> $(rss_mb "$PID") MB"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
T0=$(date +%s.%N)
start "$NEW" "$D"
until curl -sf "http://$H/ping" >/dev/null; do sleep 0.01; done
T1=$(date +%s.%N)
echo "restart after kill -9 with that backlog: $(echo "$T1 - $T0" | bc) s to serving"
grep 'recovered\|unrecorded' "$D.log" | head -3 || true
# 1 s, as the memory-queue line: the backlog must outlast the run, or the
# rate would count the time spent waiting after the last message.
echo -n "new sub from disk (2 connections): "
$B sub --nsqd-tcp-address="$A" --runfor 1s --connections 2 --channel ch --nsqd-pid "$PID"
echo "RSS after draining from disk: $(rss_mb "$PID") MB"
stop; rm -rf "$D" "$D.log"
