#!/bin/sh
# Coverage-guided fuzzing of the readers that take outside bytes (issue 14), with libFuzzer.
#
#   Tools/fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds `learngene-fuzz` with -sanitize=fuzzer (the C shims around libpng and libjpeg
# instrumented too; the system libraries are not) in debug mode (Swift's bounds and overflow checks
# stay on, so a bad index traps instead of reading past a buffer), then runs each target for
# SECONDS (default 60) from the committed seed corpus in Tools/fuzz/corpus/<target>. New
# inputs go to .build-fuzz/corpus/<target>, crashes to .build-fuzz/crashes/. Targets:
# safetensors torch idx manifest-yaml manifest-json png jpeg. Not part of `swift test`.
#
# A crash is replayed without libFuzzer by the normal build:
#   swift build --product learngene-fuzz && .build/debug/learngene-fuzz <target> <crash file>
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"safetensors torch idx manifest-yaml manifest-json png jpeg"}
scratch=.build-fuzz
swift build -c debug --scratch-path "$scratch" --product learngene-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING -Xcc -fsanitize=fuzzer-no-link
bin="$scratch/debug/learngene-fuzz"
mkdir -p "$scratch/crashes"
status=0
for t in $targets; do
    mkdir -p "$scratch/corpus/$t"
    log="$scratch/$t.log"
    echo "== $t: $seconds s"
    # -rss_limit_mb: the readers' own limits must hold far below it; -timeout: no input may
    # take 10 s, even unoptimized (a hang is a finding too).
    if LEARNGENE_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$scratch/crashes/$t-" \
        "$scratch/corpus/$t" "Tools/fuzz/corpus/$t" >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see $log and $scratch/crashes/)"
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "   $result: ${runs:-?} executions, $cov, corpus $(ls "$scratch/corpus/$t" | wc -l) files"
done
exit $status
