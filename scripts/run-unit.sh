#!/bin/sh
# Run every cmocka unit-test binary given; print one line per binary and a
# total.  Exit non-zero if any failed.
pass=0; fail=0; failed=""
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	n=$(printf '%s\n' "$out" | sed -n 's/^\[==========\] \([0-9]*\) test(s) run\./\1/p' | tail -1)
	if [ $rc -eq 0 ]; then
		pass=$((pass + ${n:-0})); echo "unit: ok   $(basename "$t") (${n:-0} tests)"
	else
		f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' | head -1)
		fail=$((fail + ${f:-1})); pass=$((pass + ${n:-0} - ${f:-1})); failed="$failed $(basename "$t")"
		echo "unit: FAIL $(basename "$t")"; printf '%s\n' "$out" | grep -E "FAILED|ERROR|error|Failure" | head -20
	fi
done
echo "unit tests: $pass passed, $fail failed"
[ $fail -eq 0 ]
