# lib.sh - a small harness for the end-to-end tests (sourced).
# Each check prints "ok" or "FAIL" with a name; e2e_done prints the totals.
E2E_PASS=0; E2E_FAIL=0; E2E_SKIP=0
DETVM=${DETVM:-build/detvm}
G=build/guests
TMP=$(mktemp -d /tmp/detvm-e2e.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

ok()   { E2E_PASS=$((E2E_PASS + 1)); echo "e2e: ok   $1"; }
bad()  { E2E_FAIL=$((E2E_FAIL + 1)); echo "e2e: FAIL $1"; shift; for l in "$@"; do echo "      $l"; done; }
skip() { E2E_SKIP=$((E2E_SKIP + 1)); echo "e2e: SKIP $1 ($2)"; }

# run_detvm NAME ARGS...: runs detvm with a timeout; sets $OUT $ERR $RC.
run_detvm() {
	name=$1; shift
	OUT="$TMP/$name.out"; ERR="$TMP/$name.err"
	timeout -s INT 120 "$DETVM" "$@" >"$OUT" 2>"$ERR" </dev/null
	RC=$?
}

# expect NAME RC PATTERN-IN-STDOUT [PATTERN-IN-STDERR]
expect() {
	name=$1; want_rc=$2; pat=$3; epat=${4:-}
	if [ "$RC" != "$want_rc" ]; then
		bad "$name" "exit status $RC, expected $want_rc" "stdout: $(tail -3 "$OUT" | tr '\n' '|')" "stderr: $(tail -3 "$ERR" | tr '\n' '|')"
		return 1
	fi
	if [ -n "$pat" ] && ! grep -q -- "$pat" "$OUT"; then
		bad "$name" "stdout lacks '$pat'" "stdout: $(tail -5 "$OUT" | tr '\n' '|')"
		return 1
	fi
	if [ -n "$epat" ] && ! grep -q -- "$epat" "$ERR"; then
		bad "$name" "stderr lacks '$epat'" "stderr: $(tail -5 "$ERR" | tr '\n' '|')"
		return 1
	fi
	ok "$name"
}

e2e_done() {
	if [ "$E2E_SKIP" -gt 0 ]; then
		echo "e2e: $E2E_PASS passed, $E2E_FAIL failed, $E2E_SKIP skipped"
	else
		echo "e2e: $E2E_PASS passed, $E2E_FAIL failed"
	fi
	[ "$E2E_FAIL" -eq 0 ]
}
