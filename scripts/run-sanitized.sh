#!/bin/sh
# The unit and end-to-end tests again, against the sanitizer build of
# detvm and of the unit tests (make sanitize-bins: AddressSanitizer with
# LeakSanitizer, and UBSan).  Any sanitizer report fails this stage,
# whatever the test's own verdict: a test that expects detvm to fail would
# otherwise take a sanitizer's abort for the failure it expected.  The
# reports go to files, one per process, and are printed at the end.
cd "$(dirname "$0")/.."
san=${1:-build/san}
work=$(mktemp -d /tmp/detvm-san.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/logs"
export ASAN_OPTIONS="log_path=$work/logs/asan:exitcode=86:detect_leaks=1"
export UBSAN_OPTIONS="log_path=$work/logs/ubsan:print_stacktrace=1:halt_on_error=1"

scripts/run-unit.sh $(ls "$san"/tests/test_* | grep -v "\.d$") >"$work/unit" 2>&1; urc=$?
DETVM="$san/detvm" tests/e2e/run.sh >"$work/e2e" 2>&1; erc=$?
grep -E "^unit: FAIL|^e2e: FAIL" -A3 "$work/unit" "$work/e2e" | sed 's/^[^:]*://'
unit=$(sed -n 's/^unit tests: \(.*\)$/\1/p' "$work/unit")
e2e=$(sed -n 's/^e2e: \([0-9]* passed.*\)$/\1/p' "$work/e2e" | tail -1)
reports=$(ls "$work/logs" | wc -l)
for f in "$work"/logs/*; do
	[ -e "$f" ] || continue
	echo "--- sanitizer report $(basename "$f"):"
	head -40 "$f"
done
echo "sanitizers: unit ${unit:-no result}; e2e ${e2e:-no result}; $reports reports"
[ "$urc" -eq 0 ] && [ "$erc" -eq 0 ] && [ "$reports" -eq 0 ] && [ -n "$unit" ] && [ -n "$e2e" ]
