#!/usr/bin/env bash
# SUB delivery of a backlog with 1 and 2 consumer connections on one
# channel, each figure with the raw-TCP baseline measured just before it.
# Usage: scripts/bench-delivery.sh [rounds] [runfor]
# NSQD=path picks another nsqd build (to compare two builds in one run).
# Needs: cargo build --release --bin nsqd --bin nsq-bench
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROUNDS=${1:-3}
RUNFOR=${2:-1s}
NSQD=${NSQD:-./target/release/nsqd}
B=./target/release/nsq-bench

start_nsqd() {
  D=$(mktemp -d)
  "$NSQD" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 \
    --data-path="$D" --mem-queue-size=100000000 2>"$D.log" &
  NSQD_PID=$!
  wait_listening "$D.log"
  curl -s -X POST "http://$H/topic/create?topic=sub_bench" >/dev/null
  curl -s -X POST "http://$H/channel/create?topic=sub_bench&channel=ch" >/dev/null
}
stop_nsqd() { kill "$NSQD_PID"; wait "$NSQD_PID" 2>/dev/null || true; rm -rf "$D" "$D.log"; }

for round in $(seq "$ROUNDS"); do
  for conns in 1 2; do
    start_nsqd
    echo -n "round $round backlog: "
    $B pub --nsqd-tcp-address="$A" --runfor 4s --connections 2 --batch-size 200 --size 200
    echo -n "round $round sub $conns connection(s): "
    $B sub --nsqd-tcp-address="$A" --runfor "$RUNFOR" --connections "$conns" --channel ch --with-baseline
    stop_nsqd
  done
done
