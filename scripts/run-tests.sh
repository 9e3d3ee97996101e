#!/bin/sh
# `make test`: unit tests, then end-to-end tests, then again against the
# sanitizer builds (run-sanitized.sh), then the closing line.
cd "$(dirname "$0")/.."
start=$(date +%s)
unit_out=$(mktemp); e2e_out=$(mktemp)
trap 'rm -f "$unit_out" "$e2e_out"' EXIT
scripts/run-unit.sh $(ls build/tests/test_* | grep -v "\.d$") 2>&1 | tee "$unit_out"; urc=$?
tests/e2e/run.sh 2>&1 | tee "$e2e_out"; erc=$?
echo "== the same tests against the sanitizer builds (build/san, build/tsan)"
scripts/run-sanitized.sh build/san asan; arc=$?
scripts/run-sanitized.sh build/tsan tsan; trc=$?
up=$(sed -n 's/^unit tests: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$unit_out")
uf=$(sed -n 's/^unit tests: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$unit_out")
ep=$(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' "$e2e_out" | tail -1)
ef=$(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$e2e_out" | tail -1)
es=$(sed -n 's/^e2e: .*, \([0-9]*\) skipped$/\1/p' "$e2e_out" | tail -1)
p=$(( ${up:-0} + ${ep:-0} )); f=$(( ${uf:-0} + ${ef:-0} ))
[ -z "$up" ] && f=$((f + 1))
[ -z "$ep" ] && f=$((f + 1))
# Each sanitizer stage counts as one test (its tests are counted above).
for rc in $arc $trc; do
	if [ "$rc" -eq 0 ]; then p=$((p + 1)); else f=$((f + 1)); fi
done
echo "make test took $(( $(date +%s) - start )) s"
if [ -n "$es" ] && [ "$es" != 0 ]; then
	echo "$p passed, $f failed, $es skipped"
else
	echo "$p passed, $f failed"
fi
[ $f -eq 0 ] && [ "$urc" -eq 0 ] && [ "$erc" -eq 0 ]
