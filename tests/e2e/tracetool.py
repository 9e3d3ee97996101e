#!/usr/bin/env python3
"""tracetool.py - tamper with a detvm trace for the tamper tests.

Reads the layout of trace-format/SPEC.md: a file header (16 fixed bytes,
body, 8-byte checksum), then frames (96-byte header, payload of comp_len
bytes at offset 40), then the trailer.
  tracetool.py frames TRACE          list "index offset size"
  tracetool.py flip TRACE K          flip one payload byte of frame K
  tracetool.py remove TRACE K        cut frame K out of the file
"""
import struct, sys

def frames(data):
    body = struct.unpack_from('<I', data, 12)[0]
    off = 16 + body + 8
    out = []
    while off + 96 <= len(data) and data[off:off + 4] == b'DTFR':
        hdr = struct.unpack_from('<I', data, off + 4)[0]
        comp = struct.unpack_from('<I', data, off + 40)[0]
        out.append((off, hdr + comp))
        off += hdr + comp
    return out

def main():
    cmd, path = sys.argv[1], sys.argv[2]
    data = bytearray(open(path, 'rb').read())
    fr = frames(data)
    if cmd == 'frames':
        for i, (o, n) in enumerate(fr):
            print(i, o, n)
        return
    k = int(sys.argv[3])
    off, n = fr[k]
    if cmd == 'flip':
        data[off + 96 + (n - 96) // 2] ^= 0x40
    elif cmd == 'remove':
        del data[off:off + n]
    open(path, 'wb').write(data)

main()
