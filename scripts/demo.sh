#!/bin/sh
# `make demo`: record the ticks guest, verify the recording, replay it, jump
# to a moment in the middle and look at the guest there.
set -e
cd "$(dirname "$0")/.."
REC=$(mktemp -d /tmp/detvm-demo.XXXXXX)/ticks
# ticks mostly halts, so the default checkpoint interval (250 ms of replay
# work) never comes due: a checkpoint every 150 exits gives the seek below
# one to restore.
echo "== detvm record -o $REC --kernel build/guests/ticks.elf --append ticks=20 --checkpoint-exits 150"
build/detvm record -o "$REC" --kernel build/guests/ticks.elf --append ticks=20 --checkpoint-exits 150 || true
echo "== detvm verify $REC"
build/detvm verify "$REC"
echo "== detvm replay $REC --quiet"
build/detvm replay "$REC" --quiet
MID=$(sqlite3 "$REC/checkpoints.db" "select cast(value / 2 as integer) from meta where key = 'end_exits'")
echo "== detvm replay $REC --to $MID --quiet      (seek: restore a checkpoint, replay the rest)"
build/detvm replay "$REC" --to "$MID" --quiet
echo "== detvm inspect $REC info"
build/detvm inspect "$REC" info
echo "== detvm inspect $REC regs --at $MID"
build/detvm inspect "$REC" regs --at "$MID"
echo "== detvm inspect $REC serial --to $MID"
build/detvm inspect "$REC" serial --to "$MID"
