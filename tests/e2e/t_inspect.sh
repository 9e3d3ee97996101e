# t_inspect.sh - `detvm inspect`: search finds console input where and when
# it reached guest memory; mem shows what the disk guest wrote; export-core
# gives gdb the registers of `regs`; events JSON parses; sql is read-only;
# regs at a random exit is the same on every run, with or without
# checkpoints or the database; bad input, a damaged or missing database are
# reported, never a crash.  Sourced by run.sh (lib.sh's helpers).

IR=$TMP/insp
printf 'typed at the console\n' > "$TMP/insp-echo-in.txt"
truncate -s 1M "$TMP/insp-disk.img"
ins_str="typed at the console"

# ins_rec NAME [record args...]: record guest NAME into $IR-NAME.
ins_rec() {
	ig=$1; shift
	rm -rf "$IR-$ig"
	"$DETVM" record -o "$IR-$ig" --kernel $G/$ig.elf "$@" >"$TMP/insp-$ig.rec.out" 2>"$TMP/insp-$ig.rec.err" </dev/null
	if [ -f "$IR-$ig/checkpoints.db" ] && grep -q "recorded $IR-$ig" "$TMP/insp-$ig.rec.err"; then
		ok "inspect: record $ig"
	else
		bad "inspect: record $ig" "$(tail -2 "$TMP/insp-$ig.rec.err" | tr '\n' '|')"
	fi
}
# ins NAME ARGS...: detvm inspect ARGS, output in $TMP/insp-NAME.{out,err}, status $IRC.
ins() {
	iname=$1; shift
	timeout -s INT 120 "$DETVM" inspect "$@" >"$TMP/insp-$iname.out" 2>"$TMP/insp-$iname.err" </dev/null
	IRC=$?
}
ins_regs_field() { awk -v r="$1" '$1 == r { print $2 }' "$2"; }

ins_rec echo --serial-in "$TMP/insp-echo-in.txt" --checkpoint-exits 100
ins_rec disk --disk "$TMP/insp-disk.img" --checkpoint-exits 100
IE=$IR-echo

# --- info, checkpoints, sql ---------------------------------------------------
ins info "$IE" info
iexits=$(awk '$1 == "exits" { print $2 }' "$TMP/insp-info.out")
if [ $IRC -eq 0 ] && [ "${iexits:-0}" -gt 100 ] && grep -q "^trace state *complete" "$TMP/insp-info.out" &&
   grep -q "^kernel .*echo.elf.*present, unchanged" "$TMP/insp-info.out"; then
	ok "inspect info: $iexits exits, complete, kernel unchanged"
else
	bad "inspect info" "status $IRC" "$(head -30 "$TMP/insp-info.out" | tr '\n' '|') $(cat "$TMP/insp-info.err")"
fi
ins sqlck "$IE" sql "select count(*) from checkpoints"
nck=$(tail -1 "$TMP/insp-sqlck.out")
if [ $IRC -eq 0 ] && [ "$(head -1 "$TMP/insp-sqlck.out")" = "count(*)" ] && [ "${nck:-0}" -gt 1 ]; then
	ok "inspect sql: $nck checkpoints (header line, then the value)"
else
	bad "inspect sql select count(*) from checkpoints" "status $IRC: $(cat "$TMP/insp-sqlck.out" "$TMP/insp-sqlck.err" | tr '\n' '|')"
fi
ins ckl "$IE" checkpoints
nl=$(($(wc -l < "$TMP/insp-ckl.out") - 1))
[ $IRC -eq 0 ] && [ "$nl" = "$nck" ] && ok "inspect checkpoints: one line per checkpoint" \
	|| bad "inspect checkpoints: one line per checkpoint" "status $IRC, $nl lines for $nck"
ins sqlw "$IE" sql "insert into meta(key, value) values('x', 'y')"
[ $IRC -eq 2 ] && grep -q "readonly" "$TMP/insp-sqlw.err" && ok "inspect sql: INSERT fails (readonly)" \
	|| bad "inspect sql: INSERT fails" "status $IRC: $(cat "$TMP/insp-sqlw.err")"
[ "$(sqlite3 "$IE/checkpoints.db" "select count(*) from meta where key = 'x'")" = 0 ] \
	&& ok "  ... and the database is unchanged" || bad "inspect sql INSERT changed the database"

# --- events ---------------------------------------------------------------------
ins json "$IE" events --format json
nev=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, list) and all("exit" in e and "type" in e for e in d); print(len(d))' "$TMP/insp-json.out" 2>"$TMP/insp-json.py")
ins sqlev "$IE" sql "select count(*) from events"
if [ $IRC -eq 0 ] && [ -n "$nev" ] && [ "$nev" = "$(tail -1 "$TMP/insp-sqlev.out")" ] && [ "$nev" -gt 0 ]; then
	ok "inspect events --format json: valid JSON, $nev events (the whole index)"
else
	bad "inspect events --format json" "events: $nev, index: $(tail -1 "$TMP/insp-sqlev.out")" "$(tail -2 "$TMP/insp-json.py" | tr '\n' '|')"
fi
ins evbad "$IE" events --type bogus
[ $IRC -eq 2 ] && grep -q "valid types: .*console_in" "$TMP/insp-evbad.err" && ok "inspect events --type bogus: error listing the types" \
	|| bad "inspect events --type bogus" "status $IRC: $(cat "$TMP/insp-evbad.err")"

# --- search: console input reaches memory after its CONSOLE_IN, before the next output
ins cin "$IE" events --type CONSOLE_IN --format csv
# The CONSOLE_IN event that brought byte number ${#ins_str} of the input.
ein=$(awk -F, -v need=${#ins_str} 'NR > 1 { n += $9; if (n >= need) { print $2; exit } }' "$TMP/insp-cin.out")
ins serial "$IE" serial
nout=$(sed -n 's/^\[exit \([0-9]*\)\] .*/\1/p' "$TMP/insp-serial.out" | awk -v e="${ein:-0}" '$1 > e { print; exit }')
ins search "$IE" search "$ins_str"
read -r sexit saddr <<<"$(sed -n 's/^first appears: exit \([0-9]*\) at \(0x[0-9a-f]*\).*/\1 \2/p' "$TMP/insp-search.out")"
if [ $IRC -eq 0 ] && [ -n "$ein" ] && [ -n "$nout" ] && [ -n "$sexit" ] && [ "$sexit" -ge "$ein" ] && [ "$sexit" -lt "$nout" ] &&
   grep -q "^  $saddr\$" "$TMP/insp-search.out" && grep -q "still present" "$TMP/insp-search.out"; then
	ok "inspect search: '$ins_str' first at exit $sexit ($saddr), after its last CONSOLE_IN (exit $ein), before the next output (exit $nout)"
else
	bad "inspect search" "status $IRC; console_in exit '$ein', next output '$nout'" "$(cat "$TMP/insp-search.out" "$TMP/insp-search.err" | tr '\n' '|')"
fi
# ... exactly then: absent at the exit before, present at that exit (mem --at).
if [ -n "$sexit" ] && [ "$sexit" -gt 0 ]; then
	ins mem0 "$IE" mem --at $((sexit - 1)) "$saddr" ${#ins_str} --raw
	ins mem1 "$IE" mem --at "$sexit" "$saddr" ${#ins_str} --raw
	printf '%s' "$ins_str" > "$TMP/insp-str"
	if cmp -s "$TMP/insp-mem1.out" "$TMP/insp-str" && ! cmp -s "$TMP/insp-mem0.out" "$TMP/insp-str"; then
		ok "  ... mem --at confirms: absent at exit $((sexit - 1)), present at exit $sexit"
	else
		bad "search's first exit agrees with mem --at" "exit $((sexit - 1)): '$(tr -d '\0' < "$TMP/insp-mem0.out")', exit $sexit: '$(tr -d '\0' < "$TMP/insp-mem1.out")'"
	fi
fi

# --- regs: the same at a random exit on every run, with and without checkpoints
iat=$(shuf -i 1-"${iexits:-1}" -n 1)
ins regs1 "$IE" regs --at "$iat"; r1=$IRC
ins regs2 "$IE" regs --at "$iat"; r2=$IRC
ins regs3 "$IE" regs --at "$iat" --from-start; r3=$IRC
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ] && grep -q "^rip  *0x" "$TMP/insp-regs1.out" &&
   cmp -s "$TMP/insp-regs1.out" "$TMP/insp-regs2.out" && cmp -s "$TMP/insp-regs1.out" "$TMP/insp-regs3.out"; then
	ok "inspect regs --at $iat: identical on two runs and with --from-start"
else
	bad "inspect regs --at $iat reproducible" "status $r1 $r2 $r3" "$(diff "$TMP/insp-regs1.out" "$TMP/insp-regs3.out" | head -4 | tr '\n' '|') $(cat "$TMP/insp-regs1.err")"
fi

# --- export-core at an OUT to the serial port: gdb sees its byte and rip ----
read -r oexit obyte <<<"$("$DETVM" inspect "$IE" sql "select exit, value from events where type = 'EXIT_IO' and addr = 1016 and direction = 'out' order by random() limit 1" | tail -1 | tr '|' ' ')"
ins core "$IE" export-core --at "${oexit:-0}" "$TMP/insp.core"; crc=$IRC
ins corer "$IE" regs --at "${oexit:-0}"
if [ $crc -ne 0 ] || [ $IRC -ne 0 ] || ! [ -s "$TMP/insp.core" ]; then
	bad "inspect export-core --at $oexit" "$(cat "$TMP/insp-core.err")"
elif ! command -v gdb >/dev/null; then
	skip "export-core read by gdb" "no gdb"
else
	gal=$(gdb -nx -batch -c "$TMP/insp.core" -ex 'p/x $rax & 0xff' 2>/dev/null | sed -n 's/^\$1 = //p')
	grip=$(gdb -nx -batch -c "$TMP/insp.core" -ex 'p/x $rip' 2>/dev/null | sed -n 's/^\$1 = //p')
	irip=$(ins_regs_field rip "$TMP/insp-corer.out")
	if [ -n "$gal" ] && [ "$gal" = "$(printf '0x%x' "${obyte:-0}")" ] && [ -n "$grip" ] && [ "$grip" = "$irip" ]; then
		ok "export-core at exit $oexit (OUT 0x3f8 of $gal): gdb's \$rax & 0xff and \$rip ($grip) match"
	else
		bad "export-core read by gdb" "exit $oexit byte $obyte: gdb rax&0xff '$gal' rip '$grip', regs rip '$irip'"
	fi
fi
ins core2 "$IE" export-core --at "${oexit:-0}" "$TMP/insp.core"
[ $IRC -eq 2 ] && grep -q "exists" "$TMP/insp-core2.err" && ok "export-core refuses to overwrite without --force" \
	|| bad "export-core refuses to overwrite" "status $IRC"

# --- the disk guest's pattern in memory near the end ---------------------------
ID=$IR-disk
dexits=$("$DETVM" inspect "$ID" sql "select value from meta where key = 'end_exits'" | tail -1)
wbuf=$(nm $G/disk.elf | awk '$3 == "wbuf" { print "0x" $1 }')
ins dmem "$ID" mem --at $((dexits - 2)) "$wbuf" 64
ins dmemr "$ID" mem --at $((dexits - 2)) "$wbuf" 18 --raw
if [ $IRC -eq 0 ] && [ "$(cat "$TMP/insp-dmemr.out")" = "detvm-disk-pattern" ] &&
   grep -q "|detvm-disk-patte|" "$TMP/insp-dmem.out"; then
	ok "inspect mem --at $((dexits - 2)) $wbuf: the disk guest's pattern"
else
	bad "inspect mem shows the disk pattern" "status $IRC at $wbuf" "$(head -2 "$TMP/insp-dmem.out" | tr '\n' '|') $(cat "$TMP/insp-dmem.err")"
fi
ins ddiff "$ID" diff --at 1 --at $((dexits - 2))
# wbuf's page must lie in one of the ranges of changed pages.
wgfn=$((wbuf / 4096)); wfound=0
while read -r _ a b; do
	lo=$((a)); hi=$((b ? b : a))
	[ $wgfn -ge $lo ] && [ $wgfn -le $hi ] && wfound=1
done < <(sed -n 's/^  gfn \(0x[0-9a-f]*\)-\{0,1\}\(0x[0-9a-f]*\)\{0,1\} .*/gfn \1 \2/p' "$TMP/insp-ddiff.out")
[ $IRC -eq 0 ] && grep -q "^  rip " "$TMP/insp-ddiff.out" && [ $wfound = 1 ] \
	&& ok "inspect diff: rip and wbuf's page (gfn $(printf 0x%x $wgfn)) changed" \
	|| bad "inspect diff" "status $IRC" "$(cat "$TMP/insp-ddiff.out" "$TMP/insp-ddiff.err" | tr '\n' '|')"
ins dout "$ID" mem --at 5 0xfffff000 16
[ $IRC -eq 2 ] && grep -q "0xfffff000 is not guest RAM" "$TMP/insp-dout.err" && ok "inspect mem outside RAM: error naming the address" \
	|| bad "inspect mem outside RAM" "status $IRC: $(cat "$TMP/insp-dout.err")"

# --- bad input ----------------------------------------------------------------------
ins unk "$IE" frobnicate
[ $IRC -eq 2 ] && grep -q "unknown command 'frobnicate'" "$TMP/insp-unk.err" && ok "inspect: unknown command is an error" \
	|| bad "inspect: unknown command" "status $IRC: $(cat "$TMP/insp-unk.err")"
ins past "$IE" regs --at $((iexits + 1))
[ $IRC -eq 2 ] && grep -q "past the end of the recording" "$TMP/insp-past.err" && ok "inspect regs --at past the end: status 2" \
	|| bad "inspect regs --at past the end" "status $IRC: $(cat "$TMP/insp-past.err")"
ins badn "$IE" regs --at 12x
[ $IRC -eq 2 ] && grep -q "not an exit ordinal" "$TMP/insp-badn.err" && ok "inspect regs --at 12x: error" \
	|| bad "inspect regs --at 12x" "status $IRC: $(cat "$TMP/insp-badn.err")"
ins help "$IE" search --help
[ $IRC -eq 0 ] && grep -q "^usage: detvm inspect REC search PATTERN" "$TMP/insp-help.out" && ok "inspect search --help" \
	|| bad "inspect search --help" "status $IRC"

# --- a damaged database: clear errors or correct answers, never a crash --------
cp -r "$IE" "$IR-bad"
ibsz=$(stat -c %s "$IR-bad/checkpoints.db")
head -c 32768 /dev/urandom | dd of="$IR-bad/checkpoints.db" bs=1 seek=$((ibsz / 2 - 16384)) conv=notrunc 2>/dev/null
ilast=$(tail -1 "$TMP/insp-ckl.out" | awk '{ print $2 }')
"$DETVM" inspect "$IE" regs --at "$ilast" >"$TMP/insp-good.regs" 2>/dev/null
ibad_ok=1; ibad_err=0; ibad_msg=""
for c in info checkpoints events serial "regs --at $ilast"; do
	ins damaged "$IR-bad" $c
	if [ $IRC -eq 2 ] && grep -q "checkpoints.db" "$TMP/insp-damaged.err"; then
		ibad_err=$((ibad_err + 1))
	elif [ $IRC -eq 0 ] && { [ "${c%% *}" != regs ] || cmp -s "$TMP/insp-damaged.out" "$TMP/insp-good.regs"; }; then
		:
	else
		ibad_ok=0; ibad_msg="$ibad_msg $c: status $IRC $(head -2 "$TMP/insp-damaged.err" | tr '\n' ' ');"
	fi
done
[ $ibad_ok = 1 ] && [ $ibad_err -gt 0 ] && ok "damaged checkpoints.db: $ibad_err of 5 commands report it, the others answer correctly" \
	|| bad "damaged checkpoints.db" "$ibad_err errors;$ibad_msg"

# --- a lost map row: every page still matches its hash, the map sum does not -----
# (before the sums, the page read as zero: a wrong answer without a word)
cp -r "$IE" "$IR-maprow"
read -r mexit mgfn <<<"$(sqlite3 -separator ' ' "$IR-maprow/checkpoints.db" \
	"select c.exit, m.gfn from page_map m join checkpoints c on c.id = m.checkpoint where c.full = 1 order by c.id desc, m.gfn desc limit 1")"
sqlite3 "$IR-maprow/checkpoints.db" "delete from page_map where gfn = $mgfn and checkpoint = (select id from checkpoints where exit = $mexit)"
ins maprow "$IR-maprow" mem --at "$mexit" $((mgfn * 4096)) 64 --raw
mrc=$IRC
ins maprow-fs "$IR-maprow" mem --at "$mexit" $((mgfn * 4096)) 64 --raw --from-start
ins maprow-good "$IE" mem --at "$mexit" $((mgfn * 4096)) 64 --raw
if [ -n "$mgfn" ] && [ $mrc -eq 2 ] && grep -q "is damaged: its page map, rebuilt from the rows of checkpoints .* sums to" "$TMP/insp-maprow.err" &&
   cmp -s "$TMP/insp-maprow-fs.out" "$TMP/insp-maprow-good.out" && [ -n "$(tr -d '\0' <"$TMP/insp-maprow-good.out")" ]; then
	ok "a lost page_map row (gfn $mgfn at exit $mexit): inspect says the checkpoint is damaged; --from-start gives the page"
else
	bad "a lost page_map row" "gfn '$mgfn' exit '$mexit', status $mrc; $(head -2 "$TMP/insp-maprow.err" | tr '\n' ' ')"
fi

# --- no database: --at replays from the start, same answer -----------------------
cp -r "$IE" "$IR-nodb" && rm -f "$IR-nodb/checkpoints.db"
ins nodb "$IR-nodb" regs --at "$iat"
if [ $IRC -eq 0 ] && grep -q "checkpoints.db: .*replaying from the start" "$TMP/insp-nodb.err" &&
   cmp -s "$TMP/insp-nodb.out" "$TMP/insp-regs1.out"; then
	ok "no database: regs --at $iat replays from the start, same registers"
else
	bad "no database: regs --at" "status $IRC: $(cat "$TMP/insp-nodb.err")"
fi
ins nodbev "$IR-nodb" events
[ $IRC -eq 2 ] && grep -q "checkpoints.db: No such file" "$TMP/insp-nodbev.err" && ok "no database: events is an error naming the file" \
	|| bad "no database: events" "status $IRC: $(cat "$TMP/insp-nodbev.err")"

# --- a replay that diverges (the TSC guest): status 10, with where -----------------
ins_rec tsc
itexits=$("$DETVM" inspect "$IR-tsc" sql "select value from meta where key = 'end_exits'" | tail -1)
ins tscdiv "$IR-tsc" regs --at "${itexits:-1}"
[ $IRC -eq 10 ] && grep -q "divergence at exit [0-9]*: expected" "$TMP/insp-tscdiv.err" && ok "inspect regs on a diverging replay: status 10" \
	|| bad "inspect regs on a diverging replay" "status $IRC: $(cat "$TMP/insp-tscdiv.err")"
