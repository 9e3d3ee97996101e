#!/usr/bin/env python3
"""record_ab.py - what recording adds to a plain run, for one or more detvm
binaries, measured alternately so that the machine's drift hits all alike.

usage: bench/record_ab.py GUEST ROUNDS DETVM [DETVM...]
  e.g. bench/record_ab.py hello 50 /tmp/old/build/detvm build/detvm

Each round records GUEST (build/guests/GUEST.elf) once with every binary
and runs it once plainly with the last one, in an order that rotates from
round to round (whatever runs just after a recording's fsyncs was seen to
be slowed).  Prints, in wall-clock ms, the median and the mean of the
fastest 80% for the plain run and each binary's recording, and the median
of each round's recording minus the same round's run, which drift between
rounds does not move.  Differences of a millisecond need 30 or more
rounds here, a few tenths 200 or more: one run varies by 10-25% on these
shared machines.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    guest, rounds, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    kernel = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'build', 'guests', guest + '.elf')
    if not os.path.exists(kernel):
        sys.exit('record_ab: %s not found (make first)' % kernel)
    tmp = tempfile.mkdtemp(prefix='detvm-ab.')
    rec = os.path.join(tmp, 'rec')
    # The inputs bench/run.sh gives: echo waits for console input for ever
    # without it, disk needs an image.
    extra = []
    if guest == 'echo':
        with open(os.path.join(tmp, 'in.txt'), 'w') as f:
            f.write('hello\n')
        extra = ['--serial-in', os.path.join(tmp, 'in.txt')]
    elif guest == 'disk':
        with open(os.path.join(tmp, 'disk.img'), 'wb') as f:
            f.truncate(1 << 20)
        extra = ['--disk', os.path.join(tmp, 'disk.img')]
    times = {b: [] for b in bins}
    runs = []

    def timed(argv):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        return (time.perf_counter() - t) * 1000

    try:
        jobs = [(b, [b, 'record', '-o', rec, '--kernel', kernel] + extra) for b in bins]
        jobs.append((None, [bins[-1], 'run', '--kernel', kernel] + extra))
        for i in range(rounds):
            k = i % len(jobs)
            for b, argv in jobs[k:] + jobs[:k]:
                shutil.rmtree(rec, ignore_errors=True)
                (runs if b is None else times[b]).append(timed(argv))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def fig(xs):
        xs = sorted(xs)
        return statistics.median(xs), statistics.mean(xs[:max(1, len(xs) * 4 // 5)])

    rm, r80 = fig(runs)
    print('%s, %d rounds: run median %.2f ms, mean80 %.2f ms' % (guest, rounds, rm, r80))
    for b in bins:
        m, m80 = fig(times[b])
        paired = statistics.median(t - r for t, r in zip(times[b], runs))
        print('  record %s: median %.2f ms (+%.2f, x%.3f), mean80 %.2f ms (+%.2f), per round +%.2f (x%.3f)'
              % (b, m, m - rm, m / rm, m80, m80 - r80, paired, 1 + paired / rm))

if __name__ == '__main__':
    main()
