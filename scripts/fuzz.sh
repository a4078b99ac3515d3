#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang-14, ASan + UBSan,
# fuzz/) and runs each for a bounded time on a copy of its committed seed
# corpus, fuzz/corpus/<target>/ (the copy grows; the committed corpus does
# not). Installs clang-14 and libFuzzer when missing, besides what
# scripts/setup.sh installs.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 30
#   TARGET              key_fuzzer sse_fuzzer response_fuzzer import_fuzzer
#                       proxy_request_fuzzer (default: all)
# Reports the executions of each target (libFuzzer's final statistics).
# Exits non-zero if a target crashed, leaked, timed out or ran out of memory;
# the input that did it is in build/fuzz/artifacts/<target>/: add it to
# fuzz/corpus/<target>/ once fixed, and it is replayed by every test run.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(key_fuzzer sse_fuzzer response_fuzzer import_fuzzer proxy_request_fuzzer)
seconds=${1:-30}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if ((${#targets[@]} == 0)); then targets=("${all_targets[@]}"); fi
for t in "${targets[@]}"; do
  if [[ ! " ${all_targets[*]} " =~ " $t " ]]; then
    echo "fuzz: unknown target $t (one of: ${all_targets[*]})" >&2
    exit 2
  fi
done

scripts/setup.sh
fuzz_packages=(clang-14 libfuzzer-14-dev)
missing=()
for p in "${fuzz_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "fuzz: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]}"

build=build/fuzz
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()
for t in "${targets[@]}"; do
  run="$build/run/$t"
  artifacts="$build/artifacts/$t"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$artifacts"
  cp fuzz/corpus/"$t"/* "$run/corpus/"
  echo "fuzz: $t for ${seconds}s (log: $run/log)"
  rc=0
  "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$run/corpus" \
    >"$run/log" 2>&1 || rc=$?
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$run/log" | tail -n 1)
  if [[ -z "$execs" ]]; then
    execs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$run/log" | tail -n 1)
  fi
  corpus=$(find "$run/corpus" -type f | wc -l)
  line="$t: ${execs:-?} executions in ${seconds}s, corpus $(ls fuzz/corpus/"$t" | wc -l) -> $corpus inputs"
  if ((rc != 0)); then
    line+=", FAILED (exit $rc)"
    failed+=("$t")
    echo "---- $t: last lines of $run/log" >&2
    tail -n 60 "$run/log" >&2
  fi
  summary+=("$line")
done

echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build/artifacts/)" >&2
  exit 1
fi
