#!/usr/bin/env python3
"""record_ab.py - what recording adds to a plain run, for one or more detvm
binaries, measured alternately so that the machine's drift hits all alike.

usage: bench/record_ab.py GUEST ROUNDS DETVM [DETVM...]
  e.g. bench/record_ab.py hello 50 /tmp/old/build/detvm build/detvm

Each round records GUEST (build/guests/GUEST.elf) once with every binary,
then runs it once plainly with the last one.  Prints, in wall-clock ms, the
median and the mean of the fastest 80% for the plain run and each binary's
recording.  Differences of a millisecond need 30 or more rounds here: one
run varies by 10-25% on these shared machines.
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
        for _ in range(rounds):
            for b in bins:
                shutil.rmtree(rec, ignore_errors=True)
                times[b].append(timed([b, 'record', '-o', rec, '--kernel', kernel] + extra))
            runs.append(timed([bins[-1], 'run', '--kernel', kernel] + extra))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def fig(xs):
        xs = sorted(xs)
        return statistics.median(xs), statistics.mean(xs[:max(1, len(xs) * 4 // 5)])

    rm, r80 = fig(runs)
    print('%s, %d rounds: run median %.2f ms, mean80 %.2f ms' % (guest, rounds, rm, r80))
    for b in bins:
        m, m80 = fig(times[b])
        print('  record %s: median %.2f ms (+%.2f, x%.3f), mean80 %.2f ms (+%.2f)'
              % (b, m, m - rm, m / rm, m80, m80 - r80))

if __name__ == '__main__':
    main()
