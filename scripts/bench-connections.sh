#!/usr/bin/env bash
# Publish and delivery throughput over plain, TLS, snappy and deflate
# connections, measured in one run. Usage: scripts/bench-connections.sh [runfor]
# Needs: cargo build --release --bin nsqd --bin nsq-bench, and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNFOR=${1:-3s}
B=./target/release/nsq-bench
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/key.pem" -out "$W/cert.pem" \
  -days 1 -subj /CN=localhost 2>/dev/null

start_nsqd() {
  D=$(mktemp -d -p "$W")
  ./target/release/nsqd --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 \
    --https-address=127.0.0.1:0 --tls-cert="$W/cert.pem" --tls-key="$W/key.pem" \
    --data-path="$D" --mem-queue-size=100000000 2>"$D.log" &
  NSQD_PID=$!
  wait_listening "$D.log"
}
stop_nsqd() { kill "$NSQD_PID"; wait "$NSQD_PID" 2>/dev/null || true; }

for mode in "plain (raw loops):" "plain:--via-client" "tls:--tls" "snappy:--snappy" "deflate:--deflate" "tls+snappy:--tls --snappy" "tls+deflate:--tls --deflate"; do
  name=${mode%%:*}; flags=${mode#*:}
  start_nsqd
  # shellcheck disable=SC2086
  $B sub --nsqd-tcp-address="$A" --runfor 100ms --connections 1 --rdy 0 --channel ch $flags >/dev/null
  # shellcheck disable=SC2086
  echo "$name pub  $($B pub --nsqd-tcp-address="$A" --runfor "$RUNFOR" --connections 2 --batch-size 50 --pipeline 8 $flags)"
  # shellcheck disable=SC2086
  echo "$name sub  $($B sub --nsqd-tcp-address="$A" --runfor "$RUNFOR" --connections 2 --channel ch $flags)"
  stop_nsqd
done
