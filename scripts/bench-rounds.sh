#!/usr/bin/env bash
# Several nsqd builds side by side: for each round, each load runs once
# against each build in turn, a fresh nsqd (and data directory) per line, so
# that the machine's drift hits every build alike. Figures: throughput and
# the daemon's CPU per message (nsq-bench --nsqd-pid).
#
# Usage: scripts/bench-rounds.sh [rounds] LABEL=BINARY[,FLAG...] ...
#   e.g. scripts/bench-rounds.sh 3 memory=/tmp/nsqd-old,--mem-queue-size=100000000 \
#            now=./target/release/nsqd
# Loads: MPUB x200 (2 connections), PUB 64 outstanding x 8 connections,
# SUB of a backlog (2 and 16 connections, channel created first); LOADS
# picks some of them (e.g. LOADS="sub2 sub16"; subN for N connections).
# Between lines the machine gets SETTLE seconds (default 5, after a sync)
# to finish with the previous daemon's memory and files. Even so, two lines
# of one build in one round can differ by a third on a shared 2-core VM:
# compare builds over several rounds (docs/benchmarks.md has an A/A run).
# Needs: cargo build --release --bin nsq-bench (and each nsqd to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROUNDS=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then ROUNDS=$1; shift; fi
[ $# -gt 0 ] || { sed -n '2,13p' "$0"; exit 2; }
LOADS=${LOADS:-mpub pub sub2 sub16}
for load in $LOADS; do
  [[ $load =~ ^(mpub|pub|sub[0-9]+)$ ]] || { echo "unknown load '$load' in LOADS (mpub, pub, subN)" >&2; exit 2; }
done
B=./target/release/nsq-bench

start() { # binary flags...
  D=$(mktemp -d)
  "$@" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 --data-path="$D" 2>"$D.log" &
  PID=$!
  wait_listening "$D.log"
}
stop() {
  kill "$PID"; wait "$PID" 2>/dev/null || true; rm -rf "$D" "$D.log"
  sync; sleep "${SETTLE:-5}"
}
line() { # label load: the report's last line, shortened
  echo "$1 $2: $(tail -1 | sed 's/^[a-z]*: [0-9]* msgs in [0-9.]*s = //')"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  for load in $LOADS; do
    for build in "$@"; do
      label=${build%%=*}
      IFS=, read -r -a cmd <<<"${build#*=}"
      start "${cmd[@]}"
      case $load in
        mpub) $B pub --nsqd-tcp-address="$A" --runfor 4s --nsqd-pid "$PID" \
                --connections 2 --batch-size 200 --size 200 2>&1 | line "$label" "$load" ;;
        pub) $B pub --nsqd-tcp-address="$A" --runfor 4s --nsqd-pid "$PID" \
               --connections 8 --batch-size 1 --pipeline 64 2>&1 | line "$label" "$load" ;;
        sub*)
          $B sub --nsqd-tcp-address="$A" --runfor 100ms --connections 1 --rdy 0 --channel ch >/dev/null 2>&1
          $B pub --nsqd-tcp-address="$A" --runfor 3s --connections 2 >/dev/null 2>&1
          $B sub --nsqd-tcp-address="$A" --runfor 3s --connections "${load#sub}" --channel ch \
            --nsqd-pid "$PID" 2>&1 | line "$label" "$load" ;;
      esac
      stop
    done
  done
done
