# shellcheck shell=bash disable=SC2034
# Sourced by scripts/demo.sh and scripts/test.sh: paths, parallelism, thread policy, CMake flags.
NEXA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Build trees live under $NEXA_BUILD_DIR (default build/): release/ and sanitize/.
BUILD_ROOT="${NEXA_BUILD_DIR:-$NEXA_ROOT/build}"
[[ "$BUILD_ROOT" = /* ]] || BUILD_ROOT="$NEXA_ROOT/$BUILD_ROOT"
JOBS="${NEXA_JOBS:-$(nproc)}"
export NEXA_JOBS="$JOBS"

# Thread policy (docs/building.md, "Threads"): nexa links Debian's OpenMP build of OpenBLAS when
# it is installed (install-deps.sh installs it), so BLAS and nexa's loops share OpenMP's one pool
# of one thread per core. Nothing is exported unless the caller set it.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$JOBS}"
OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-unset}"

# Compiler cache when there is one; never required.
CMAKE_LAUNCHER_FLAGS=()
if command -v ccache > /dev/null; then
  CMAKE_LAUNCHER_FLAGS=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
