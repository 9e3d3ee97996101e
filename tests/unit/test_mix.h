/*
 * test_mix.h - deterministic pseudo-random values for unit tests: a 64-bit
 * finalizer (MurmurHash3's fmix64) that maps a counter or a seed to
 * well-mixed bits, so that test data is varied yet the same on every run.
 */
#ifndef DETVM_TEST_MIX_H
#define DETVM_TEST_MIX_H

#include <stdint.h>

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

#endif
