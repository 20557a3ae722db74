#!/usr/bin/env bash
# Builds and runs nexa's demo on a fresh Debian machine: the NEXA-MOE trainer (examples/nexa_moe,
# nexa-moe) on the GCIDE domain corpus. It installs the dependencies (install-deps.sh: compilers,
# Eigen, OpenBLAS, dict-gcide, ...), fetches the all-MiniLM-L6-v2 checkpoint the router starts
# from (scripts/fetch-minilm.sh), builds the corpus from the installed dictionary (once), then
# trains. Arguments go to nexa-moe (e.g. --steps 100, --threads 1); its output lands in
# $NEXA_DEMO_OUT (default nexa_moe_run/): train.jsonl, curves.svg, checkpoint/.
# Shares build/release/ with scripts/test.sh.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$NEXA_ROOT"

bash scripts/install-deps.sh
minilm="$(bash scripts/fetch-minilm.sh)" || {
  echo "demo.sh: the all-MiniLM-L6-v2 checkpoint could not be fetched (see above); the router starts from it" >&2
  exit 1
}

dir="$BUILD_ROOT/release"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "${CMAKE_LAUNCHER_FLAGS[@]}"
cmake --build "$dir" -j "$JOBS" --target nexa_moe nexa_gcide_corpus nexa_route nexa_generate

corpus="$dir/demo/gcide_corpus"
if [[ ! -f "$corpus/train.jsonl" ]]; then
  echo "demo.sh: building the GCIDE domain corpus into $corpus"
  "$dir/examples/data/nexa-gcide-corpus" --out "$corpus"
fi

out="${NEXA_DEMO_OUT:-nexa_moe_run}"
echo "running nexa-moe --corpus $corpus --minilm $minilm --out $out $*"
exec "$dir/examples/nexa_moe/nexa-moe" --corpus "$corpus" --minilm "$minilm" --out "$out" "$@"
