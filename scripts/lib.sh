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
