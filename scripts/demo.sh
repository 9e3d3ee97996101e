#!/bin/sh
# `make demo`: record the ticks guest, verify the recording, replay it.
set -e
cd "$(dirname "$0")/.."
REC=$(mktemp -d /tmp/detvm-demo.XXXXXX)/ticks
echo "== detvm record -o $REC --kernel build/guests/ticks.elf --append ticks=20"
build/detvm record -o "$REC" --kernel build/guests/ticks.elf --append ticks=20 || true
echo "== detvm verify $REC"
build/detvm verify "$REC"
echo "== detvm replay $REC --quiet"
build/detvm replay "$REC" --quiet
