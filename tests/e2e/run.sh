#!/bin/bash
# End-to-end tests: each tests/e2e/t_*.sh is sourced in turn with the harness
# of lib.sh; totals at the end.
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
# E2E_TESTS: the test files to run instead of all of them (and then not
# qemu_diff.sh), e.g. for the ThreadSanitizer stage of make test.
for t in ${E2E_TESTS:-tests/e2e/t_*.sh}; do
	echo "== $t"
	. "$t"
done
if [ -z "${E2E_TESTS:-}" ] && [ -x tests/e2e/qemu_diff.sh ]; then
	echo "== tests/e2e/qemu_diff.sh"
	out=$(tests/e2e/qemu_diff.sh 2>&1); rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
	qp=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
	qf=$(echo "$line" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p')
	qs=$(echo "$line" | sed -n 's/.*, \([0-9]*\) skipped.*/\1/p')
	E2E_PASS=$((E2E_PASS + ${qp:-0})); E2E_FAIL=$((E2E_FAIL + ${qf:-0})); E2E_SKIP=$((E2E_SKIP + ${qs:-0}))
	if [ -z "$line" ] || { [ "$rc" -ne 0 ] && [ "${qf:-0}" -eq 0 ]; }; then
		bad "qemu_diff.sh" "exit status $rc, no result line"
	fi
fi
e2e_done
