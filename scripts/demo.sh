#!/usr/bin/env bash
# Builds and runs nexa's demo (examples/demo/, target nexa_demo) on a fresh Debian machine.
# Arguments are passed to the demo. Shares build/release/ with scripts/test.sh.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$NEXA_ROOT"

if [[ ! -d examples/demo ]] || ! grep -rqs --include=CMakeLists.txt -w nexa_demo examples; then
  echo "demo.sh: there is no nexa_demo target yet (examples/demo/ and its add_executable(nexa_demo ...)" >&2
  echo "demo.sh: in examples/ have not landed); 'bash scripts/test.sh' runs the tests." >&2
  exit 1
fi

bash scripts/install-deps.sh
dir="$BUILD_ROOT/release"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "${CMAKE_LAUNCHER_FLAGS[@]}"
if ! cmake --build "$dir" -j "$JOBS" --target nexa_demo; then
  echo "demo.sh: building the nexa_demo target failed (is it defined in examples/demo/CMakeLists.txt?)" >&2
  exit 1
fi
demo="$(find "$dir" -type f -name nexa_demo -perm -u+x | head -n 1)"
[[ -n "$demo" ]] || { echo "demo.sh: built nexa_demo but cannot find the executable under $dir" >&2; exit 1; }
echo "running $demo $*"
exec "$demo" "$@"
