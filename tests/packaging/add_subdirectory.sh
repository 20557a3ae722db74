#!/usr/bin/env bash
# Way in 2: add_subdirectory(<nexa>) from the consumer project, once with the defaults and once
# with -DNEXA_USE_BLAS=OFF; as a subproject nexa must not build its tests, benchmarks or examples.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cmake -S "$CONSUMER_DIR" -B "$WORK/consumer" "${CMAKE_COMMON[@]}" -DNEXA_CONSUMER_MODE=subdirectory \
  -DNEXA_SOURCE_DIR="$NEXA_ROOT" -DNEXA_CONSUMER_EXPECT_BLAS="$EXPECT_BLAS" \
  -DNEXA_CONSUMER_EXPECT_OPENMP="$EXPECT_OPENMP"
for dir in tests bench examples; do
  [[ ! -e "$WORK/consumer/nexa/$dir" ]] || die "nexa's $dir are configured when nexa is a subproject"
done
grep -q "^NEXA_CUDA:BOOL=OFF" "$WORK/consumer/CMakeCache.txt" || die "NEXA_CUDA is on when nexa is a subproject"
run_consumer "$WORK/consumer"

cmake -S "$CONSUMER_DIR" -B "$WORK/consumer-noblas" "${CMAKE_COMMON[@]}" -DNEXA_CONSUMER_MODE=subdirectory \
  -DNEXA_SOURCE_DIR="$NEXA_ROOT" -DNEXA_USE_BLAS=OFF -DNEXA_CONSUMER_EXPECT_BLAS=OFF \
  -DNEXA_CONSUMER_EXPECT_OPENMP="$EXPECT_OPENMP"
run_consumer "$WORK/consumer-noblas"
echo "add_subdirectory: OK"
