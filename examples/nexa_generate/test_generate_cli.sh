#!/usr/bin/env bash
# nexa-generate on a checkpoint (ctest example_generate_cli): JSON lines out, a malformed line
# reported by number, reproducible sampling, the tag override, int8 with its report.
#   test_generate_cli.sh NEXA_GENERATE CHECKPOINT_DIR VALID_JSONL
set -uo pipefail
gen="$1" ckpt="$2" valid="$3"
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -f "$ckpt/config.json" ]] || { echo "no checkpoint at $ckpt (the nexa-moe short run was skipped)"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '{"text": "A unit of"}\n{oops\n{"text": "A genus of"}\n' > "$tmp/prompts.jsonl"

"$gen" --checkpoint "$ckpt" --input "$tmp/prompts.jsonl" --max-new 6 > "$tmp/a" 2> "$tmp/err"
[[ $? -eq 2 ]] || fail "a malformed line: exit code expected 2"
grep -q 'line 2: invalid JSON' "$tmp/err" || fail "line 2 not reported: $(cat "$tmp/err")"
grep -q 'tokens/s (fp32 weights' "$tmp/err" || fail "no tokens/s: $(cat "$tmp/err")"
[[ $(wc -l < "$tmp/a") -eq 2 ]] || fail "expected 2 generations: $(cat "$tmp/a")"
grep -q '^{"line": 3, "domain": "\(PHYS\|BIO\|MAT\)", "probs": \[.*"prompt": "A genus of", "continuation": ' "$tmp/a" \
  || fail "line 3: $(cat "$tmp/a")"
# The same seed gives the same text, whatever the batch.
"$gen" --checkpoint "$ckpt" --input "$tmp/prompts.jsonl" --max-new 6 --batch 1 > "$tmp/b" 2> /dev/null
cmp -s "$tmp/a" "$tmp/b" || fail "generation depends on the batch: $(diff "$tmp/a" "$tmp/b")"
# Override and int8, with the validation-loss comparison.
printf '{"text": "light"}\n' | "$gen" --checkpoint "$ckpt" --domain MAT --int8 --greedy --max-new 4 \
  --eval-file "$valid" --eval-limit 24 > "$tmp/c" 2> "$tmp/err" || fail "int8 run failed: $(cat "$tmp/err")"
grep -q '"domain": "MAT", .*"overridden": true' "$tmp/c" || fail "override: $(cat "$tmp/c")"
grep -q 'int8 export: .* MB against .* MB in fp32' "$tmp/err" || fail "no int8 report: $(cat "$tmp/err")"
grep -q 'validation loss on 24 definitions .* fp32 .* int8 ' "$tmp/err" || fail "no loss comparison: $(cat "$tmp/err")"
[[ -f "$ckpt/nexa_moe.int8.safetensors" ]] || fail "no int8 file"
echo "nexa-generate CLI: all checks passed"
