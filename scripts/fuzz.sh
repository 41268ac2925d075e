#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of outside input (see
# docs/fuzzing.md). Not part of `cargo test`.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs each target (all of them by default) for SECONDS_PER_TARGET seconds
# (default 60), one after another, in one process each, at the lowest CPU
# priority. Tooling: cargo-fuzz (installed from crates.io if missing) with
# `--sanitizer none`, which builds with libFuzzer's coverage instrumentation
# on the stable toolchain: no nightly, no RUSTC_BOOTSTRAP.
#
# Seeds come from fuzz/corpus/<target>/ (committed, never written to); the
# growing corpus, logs and crash artifacts go to $FUZZ_WORK (default
# fuzz/work/, ignored by git). A summary table is printed at the end and
# written to $FUZZ_WORK/summary.tsv. Exit status 1 if any target found a
# crash, a timeout or an out-of-memory input.
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_WORK,
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-max_len=65536").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
cd "$repo"

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/fuzz/target}
work=${FUZZ_WORK:-$repo/fuzz/work}
mkdir -p "$work"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

echo "== building ${#targets[@]} targets (cargo fuzz build --sanitizer none)"
nice -n 19 cargo fuzz build --fuzz-dir fuzz --sanitizer none
# Run the binaries themselves, built once: `cargo fuzz run` would rebuild
# whenever the sources change, in the middle of a long run.
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

summary="$work/summary.tsv"
printf 'target\tseconds\texecs\texecs/s\tcov\tft\tcorpus\tresult\n' >"$summary"
failed=0
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/logs/$t.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")" "fuzz/corpus/$t"
    echo "== $t: ${seconds}s"
    dict=()
    case $t in
        auth_json | identify_json | client_json | nsqd_dat) dict=(-dict=fuzz/dict/json.dict) ;;
    esac
    start=$(date +%s)
    # One process (no -jobs/-workers): the machine is shared. The first
    # corpus directory receives new inputs; the committed seeds are read only.
    set +e
    nice -n 19 "$bin/$t" "$corpus" "fuzz/corpus/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
    status=$?
    set -e
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status): $(ls "$artifacts" | tr '\n' ' ')"
        failed=1
        grep -m5 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" || true
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" >>"$summary"
done

echo "== summary ($summary)"
column -t -s $'\t' "$summary" 2>/dev/null || cat "$summary"
exit "$failed"
