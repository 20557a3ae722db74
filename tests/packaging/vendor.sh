#!/usr/bin/env bash
# Way in 3: vendoring. Copy include/nexa/ somewhere else and compile the consumer with nothing but
#   g++ -std=c++20 -I<copy> -I/usr/include/eigen3
# (xtensor is in /usr/include): no CMake, no BLAS, no OpenMP, no CUDA.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CXX="${CXX:-g++}"
EIGEN_INCLUDE_DIR="${EIGEN_INCLUDE_DIR:-/usr/include/eigen3}"

mkdir -p "$WORK/third_party" "$WORK/app"
cp -r "$NEXA_ROOT/include/nexa" "$WORK/third_party/"
cp "$CONSUMER_DIR/main.cpp" "$WORK/app/main.cpp"
cd "$WORK/app"
set -x
"$CXX" -std=c++20 -I"$WORK/third_party" -I"$EIGEN_INCLUDE_DIR" main.cpp -o consumer
{ set +x; } 2> /dev/null
./consumer | tee output.txt
grep -q "(BLAS off, OpenMP off)" output.txt || die "a vendored build must use neither BLAS nor OpenMP"
echo "vendoring: OK"
