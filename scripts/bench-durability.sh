#!/usr/bin/env bash
# Publish throughput of nsqd's memory path and disk paths, measured in one
# run so the figures can be compared. Usage: scripts/bench-durability.sh [runfor]
# Needs: cargo build --release --bin nsqd --bin nsq-bench
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNFOR=${1:-5s}
ONLY=${2:-}   # run only the nsqd modes whose name matches this regex
B=./target/release/nsq-bench

start_nsqd() {
  D=$(mktemp -d)
  ./target/release/nsqd --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 \
    --data-path="$D" "$@" 2>"$D.log" &
  NSQD_PID=$!
  wait_listening "$D.log"
  # A channel, so messages take the channel's queue as in production.
  curl -s -X POST "http://$H/topic/create?topic=sub_bench" >/dev/null
  curl -s -X POST "http://$H/channel/create?topic=sub_bench&channel=ch" >/dev/null
}
stop_nsqd() { kill "$NSQD_PID"; wait "$NSQD_PID" 2>/dev/null || true; rm -rf "$D"; rm -f "$D.log"; }

$B baseline --runfor 3s --json
for mode in "memory:--mem-queue-size=100000000" "disk:--mem-queue-size=0" "disk-sync-every-1:--mem-queue-size=0 --sync-every=1"; do
  name=${mode%%:*}; flags=${mode#*:}
  [[ -z "$ONLY" || "$name" =~ $ONLY ]] || continue
  for load in "mpub:--connections 2 --batch-size 200" \
              "pub:--connections 2 --batch-size 1" \
              "pub-pipelined:--connections 8 --batch-size 1 --pipeline 64"; do
    lname=${load%%:*}; lflags=${load#*:}
    # shellcheck disable=SC2086
    start_nsqd $flags
    echo -n "$name $lname "
    # shellcheck disable=SC2086
    $B pub --nsqd-tcp-address="$A" --runfor "$RUNFOR" $lflags --json
    stop_nsqd
  done
done
