#!/usr/bin/env bash
# Way in 1: cmake --install nexa into a scratch prefix, then find_package(nexa CONFIG) from the
# consumer project, which must get nexa::nexa with its dependencies (Eigen, xtensor, OpenMP,
# BLAS + EIGEN_USE_BLAS) and must not see the source tree.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cmake -S "$NEXA_ROOT" -B "$WORK/nexa-build" "${CMAKE_COMMON[@]}" -DCMAKE_INSTALL_PREFIX="$WORK/prefix" \
  -DNEXA_BUILD_TESTS=OFF -DNEXA_BUILD_BENCH=OFF -DNEXA_BUILD_EXAMPLES=OFF -DNEXA_CUDA=OFF
cmake --build "$WORK/nexa-build" -j "$JOBS"
cmake --install "$WORK/nexa-build"

[[ -f "$WORK/prefix/include/nexa/nn/linear.hpp" ]] || die "headers not installed under include/nexa"
config="$(find "$WORK/prefix" -name nexaConfig.cmake)"
[[ -n "$config" ]] || die "nexaConfig.cmake not installed"
echo "installed: $config"

cmake -S "$CONSUMER_DIR" -B "$WORK/consumer" "${CMAKE_COMMON[@]}" -DNEXA_CONSUMER_MODE=package \
  -DCMAKE_PREFIX_PATH="$WORK/prefix" -DNEXA_CONSUMER_EXPECT_BLAS="$EXPECT_BLAS" \
  -DNEXA_CONSUMER_EXPECT_OPENMP="$EXPECT_OPENMP"
grep -q "^nexa_DIR:PATH=$WORK/prefix/" "$WORK/consumer/CMakeCache.txt" || die "nexa was not found in the scratch prefix"
if grep -q -- "$NEXA_ROOT/include" "$WORK/consumer/compile_commands.json"; then
  die "the consumer compiles against the source tree, not the installed headers"
fi
run_consumer "$WORK/consumer"
echo "find_package: OK"
