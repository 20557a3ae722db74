# shellcheck shell=bash disable=SC2034
# Sourced by the packaging checks: repo root, a scratch directory removed on exit, build settings.
set -euo pipefail
NEXA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONSUMER_DIR="$NEXA_ROOT/tests/packaging/consumer"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nexa-packaging.XXXXXX")"
if [[ "${NEXA_KEEP_TMP:-0}" != 1 ]]; then
  trap 'rm -rf "$WORK"' EXIT
else
  echo "keeping $WORK"
fi
JOBS="${NEXA_JOBS:-$(nproc)}"
# What the consumer must see through nexa::nexa: scripts/install-deps.sh installs OpenBLAS and
# g++ has OpenMP, so both default to ON; override on machines without them.
EXPECT_BLAS="${NEXA_EXPECT_BLAS:-ON}"
EXPECT_OPENMP="${NEXA_EXPECT_OPENMP:-ON}"
CMAKE_COMMON=(-DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
if command -v ccache > /dev/null; then CMAKE_COMMON+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

die() {
  echo "FAIL: $*" >&2
  exit 1
}
# run_consumer <build-dir>: build the consumer and run it.
run_consumer() {
  cmake --build "$1" -j "$JOBS"
  "$1/consumer"
}
