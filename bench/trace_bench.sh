#!/bin/sh
# Build and run the trace writer benchmark (bench/trace_bench.c).
# Usage: bench/trace_bench.sh [-n MILLION_EVENTS] [-d DIR] [-l ZSTD_LEVEL]
# Builds from the trace-format sources directly, so that it works even when
# the rest of libdetvm.a does not build.
set -e
cd "$(dirname "$0")/.."
mkdir -p build
${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I. \
	bench/trace_bench.c trace-format/*.c \
	-lzstd -lxxhash -lnettle -lpthread -o build/trace_bench
exec build/trace_bench "$@"
