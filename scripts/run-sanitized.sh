#!/bin/sh
# run-sanitized.sh BUILD KIND: the tests again, against a sanitizer build
# of detvm and of the unit tests (make sanitize-bins).
#   KIND asan: BUILD has AddressSanitizer, LeakSanitizer and UBSan; every
#              unit and end-to-end test runs.
#   KIND tsan: BUILD has ThreadSanitizer; every unit test, and the
#              end-to-end tests of what runs on more than one thread (the
#              trace writer's thread and the checkpoint database's, in
#              record and in checkpointing).
# Any sanitizer report fails the stage, whatever the test's own verdict: a
# test that expects detvm to fail would otherwise take a sanitizer's exit
# for the failure it expected.  The reports go to files, one per process,
# and are printed at the end.
cd "$(dirname "$0")/.."
san=${1:?usage: run-sanitized.sh BUILD asan|tsan}
kind=${2:?usage: run-sanitized.sh BUILD asan|tsan}
work=$(mktemp -d /tmp/detvm-san.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/logs"
# ThreadSanitizer dies at start ("unexpected memory mapping") on kernels
# that randomise mmap addresses with more bits than it knows; the usual
# way round is to run without address randomisation (setarch -R), which
# the children inherit.
run=
if [ "$kind" = tsan ] && ! "$san/tests/test_errf" >/dev/null 2>&1 &&
   setarch "$(uname -m)" -R "$san/tests/test_errf" >/dev/null 2>&1; then
	echo "tsan: ThreadSanitizer cannot start with this kernel's address randomisation; running with it off (setarch -R)"
	run="setarch $(uname -m) -R"
fi
case $kind in
asan)
	export ASAN_OPTIONS="log_path=$work/logs/asan:exitcode=86:detect_leaks=1"
	export UBSAN_OPTIONS="log_path=$work/logs/ubsan:print_stacktrace=1:halt_on_error=1"
	e2e_tests="" ;;
tsan)
	# Tests that fork a multi-threaded process (a recorder to kill -9)
	# would die under ThreadSanitizer without die_after_fork=0.
	export TSAN_OPTIONS="log_path=$work/logs/tsan:exitcode=66:die_after_fork=0"
	e2e_tests="tests/e2e/t_record.sh tests/e2e/t_checkpoint.sh" ;;
*)
	echo "run-sanitized.sh: unknown kind '$kind' (asan or tsan)" >&2; exit 2 ;;
esac

$run scripts/run-unit.sh $(ls "$san"/tests/test_* | grep -v "\.d$") >"$work/unit" 2>&1; urc=$?
DETVM="$san/detvm" E2E_TESTS="$e2e_tests" $run tests/e2e/run.sh >"$work/e2e" 2>&1; erc=$?
grep -E "^unit: FAIL|^e2e: FAIL" -A3 "$work/unit" "$work/e2e" | sed 's/^[^:]*://'
unit=$(sed -n 's/^unit tests: \(.*\)$/\1/p' "$work/unit")
e2e=$(sed -n 's/^e2e: \([0-9]* passed.*\)$/\1/p' "$work/e2e" | tail -1)
reports=$(ls "$work/logs" | wc -l)
for f in "$work"/logs/*; do
	[ -e "$f" ] || continue
	echo "--- sanitizer report $(basename "$f"):"
	head -40 "$f"
done
echo "$kind: unit ${unit:-no result}; e2e ${e2e:-no result}; $reports reports"
[ "$urc" -eq 0 ] && [ "$erc" -eq 0 ] && [ "$reports" -eq 0 ] && [ -n "$unit" ] && [ -n "$e2e" ]
