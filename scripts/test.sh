#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test:
#   0. the formatting check (scripts/check-format.sh);
#   1. the whole CTest suite (unit, integration, QEMU boots, fuzz corpus replay) in a normal build;
#   2. the same suite but the boots and the Nix package build (labels boot, once) in a build
#      with AddressSanitizer and UndefinedBehaviorSanitizer;
#   3. each libFuzzer harness for FUZZ_SECONDS (default 20) from its seed corpus.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
passed=0 failed=0

# A skipped test (exit 77: its real parts are missing) counts as failed: CTest counts it as
# passed ("N% tests passed, F tests failed out of T") and lists it under "The following tests
# did not run:" as "  NUMBER - NAME (Skipped)".
run_ctest() { # run_ctest NAME DIR [CTEST OPTIONS...]
  local log name=$1 dir=$2
  shift 2
  log=$(mktemp)
  echo "==> ctest ($name)"
  if (cd "$dir" && ctest --output-on-failure --timeout 1200 -j"$(nproc)" "$@") 2>&1 | tee "$log"; then :; fi
  local line skipped
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
  skipped=$(sed -nE 's/^[[:space:]]+[0-9]+ - (.+) \(Skipped\)$/\1/p' "$log")
  rm -f "$log"
  if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    local n_failed=${BASH_REMATCH[1]} n_total=${BASH_REMATCH[2]} n_skipped=0
    if [ -n "$skipped" ]; then
      n_skipped=$(printf '%s\n' "$skipped" | wc -l)
      echo "ctest ($name): $n_skipped test(s) skipped, counted as failed:" >&2
      printf '%s\n' "$skipped" | sed 's/^/  /' >&2
    fi
    failed=$((failed + n_failed + n_skipped))
    passed=$((passed + n_total - n_failed - n_skipped))
  else
    echo "ctest ($name) did not finish" >&2
    failed=$((failed + 1))
  fi
}

echo "==> formatting (scripts/check-format.sh)"
if bash "$NIXPROV_SRC/scripts/check-format.sh"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

run_ctest "normal build" "$BUILD_DIR"

nixprov_build "$NIXPROV_SRC/build-asan" -DNIXPROV_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The boots run the agent inside a guest, and the package test builds the source with Nix,
# whatever this build is: once is enough.
run_ctest "ASan+UBSan build" "$NIXPROV_SRC/build-asan" -LE "boot|once"

CC=clang nixprov_build "$NIXPROV_SRC/build-fuzz" -DCMAKE_C_COMPILER=clang -DNIXPROV_FUZZ=ON
for harness in "$NIXPROV_SRC"/build-fuzz/fuzz/fuzz-*; do
  name=$(basename "$harness")
  corpus=$(mktemp -d)
  cp -r "$NIXPROV_SRC/tests/fuzz/corpus/${name#fuzz-}/." "$corpus/"
  dict=()
  [ -f "$NIXPROV_SRC/tests/fuzz/${name#fuzz-}.dict" ] && dict=(-dict="$NIXPROV_SRC/tests/fuzz/${name#fuzz-}.dict")
  echo "==> $name for ${FUZZ_SECONDS}s"
  log="$corpus/$name.log"
  status=0
  (cd "$corpus" && "$harness" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$corpus/" "${dict[@]}" "$corpus" >"$log" 2>&1) || status=$?
  grep -E '^(stat::number_of_executed_units|INFO: seed)' "$log" || true
  if [ "$status" -ne 0 ] || ls "$corpus"/crash-* "$corpus"/leak-* "$corpus"/timeout-* >/dev/null 2>&1; then
    # Keep what reproduces it, and show the whole report: the input and its stack.
    artifacts="$NIXPROV_SRC/build-fuzz/artifacts"
    mkdir -p "$artifacts"
    cp "$log" "$corpus"/crash-* "$corpus"/leak-* "$corpus"/timeout-* "$corpus"/oom-* "$artifacts/" 2>/dev/null || true
    sed -n '/^==[0-9]*==/,$p' "$log" | head -n 80 >&2
    echo "$name failed (exit $status): its log and inputs are in build-fuzz/artifacts/" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
  rm -rf "$corpus"
done

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
