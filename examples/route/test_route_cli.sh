#!/usr/bin/env bash
# nexa-route on a checkpoint (ctest example_route_cli): routing JSON lines, malformed lines
# reported by number and skipped, the tag override, --eval's report, and bad arguments.
#   test_route_cli.sh NEXA_ROUTE CHECKPOINT_DIR LINES_FILE
set -uo pipefail
route="$1" ckpt="$2" lines="$3"
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -f "$ckpt/config.json" ]] || { echo "no checkpoint at $ckpt (the nexa-moe short run was skipped)"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Routing: 4 good lines, 2 malformed, 1 blank ("GEO" is only checked by --eval): exit code 2.
"$route" --checkpoint "$ckpt" --input "$lines" > "$tmp/out" 2> "$tmp/err"
rc=$?
[[ $rc -eq 2 ]] || fail "malformed lines: exit code expected 2, got $rc"
[[ $(wc -l < "$tmp/out") -eq 4 ]] || fail "expected 4 routed lines, got: $(cat "$tmp/out")"
grep -q 'line 2: invalid JSON' "$tmp/err" || fail "line 2 not reported: $(cat "$tmp/err")"
grep -q 'line 3: expected an object with a string "text"' "$tmp/err" || fail "line 3 not reported"
grep -q '"line": 7, "domain": "\(PHYS\|BIO\|MAT\)", "probs": \[' "$tmp/out" || fail "line 7 not routed"

# The override: every line to MAT, flagged.
printf '{"text": "light"}\n' | "$route" --checkpoint "$ckpt" --domain '[MAT]' > "$tmp/out" || fail "--domain run failed"
grep -q '"domain": "MAT", .*"overridden": true' "$tmp/out" || fail "override not applied: $(cat "$tmp/out")"

# --eval: GEO is an unknown domain there (reported, skipped), the report counts 3 definitions.
"$route" --checkpoint "$ckpt" --input "$lines" --eval > "$tmp/out" 2> "$tmp/err"
[[ $? -eq 2 ]] || fail "--eval with malformed lines: exit code expected 2"
grep -q "line 6: 'GEO' is not a domain of the checkpoint" "$tmp/err" || fail "unknown domain not reported: $(cat "$tmp/err")"
grep -q '^routed 3 definitions: accuracy' "$tmp/out" || fail "eval report: $(cat "$tmp/out")"
grep -q '^confusion' "$tmp/out" || fail "no confusion matrix"

# Bad arguments.
"$route" --checkpoint "$ckpt" --domain GEO < /dev/null 2> "$tmp/err" && fail "--domain GEO accepted"
grep -q "is not a domain of the checkpoint (PHYS, BIO, MAT)" "$tmp/err" || fail "--domain error: $(cat "$tmp/err")"
"$route" --checkpoint "$tmp/none" < /dev/null 2> "$tmp/err" && fail "a missing checkpoint accepted"
grep -q "cannot open .*config.json" "$tmp/err" || fail "missing checkpoint error: $(cat "$tmp/err")"
echo "nexa-route CLI: all checks passed"
