# Sourced by the bench scripts (from the repository root).

# wait_listening LOG: wait (up to 20 s) for the nsqd that writes LOG to say
# where it listens; sets A (TCP) and H (HTTP), or exits with its log.
wait_listening() {
  A=
  for _ in $(seq 400); do
    A=$(grep -so 'TCP: listening on [0-9.:]*' "$1" | awk '{print $4}' || true)
    [ -n "$A" ] && break
    sleep 0.05
  done
  [ -n "$A" ] || { echo "nsqd did not start: $(cat "$1")" >&2; exit 1; }
  H=$(grep -o 'HTTP: listening on [0-9.:]*' "$1" | awk '{print $4}')
}

# run_client CLIENT NSQD...: for each nsqd binary (default
# ./target/release/nsqd), start it on a fresh data directory (extra flags
# in NSQD_FLAGS), run `python3 CLIENT TCP_ADDR HTTP_ADDR PID` against it
# and print "NSQD: <what the client printed>".
run_client() {
  local client=$1 nsqd pid dir
  shift
  for nsqd in "${@:-./target/release/nsqd}"; do
    dir=$(mktemp -d)
    # shellcheck disable=SC2086
    "$nsqd" --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 --data-path="$dir" ${NSQD_FLAGS:-} 2>"$dir.log" &
    pid=$!
    wait_listening "$dir.log"
    echo "$nsqd: $(PYTHONPATH=scripts PYTHONDONTWRITEBYTECODE=1 python3 "$client" "$A" "$H" "$pid")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir" "$dir.log"
  done
}
