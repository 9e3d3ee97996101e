#!/usr/bin/env python3
"""tracetool.py - tamper with a detvm trace for the tamper tests.

Reads the layout of trace-format/SPEC.md: a file header (16 fixed bytes,
body, 8-byte checksum), then frames (96-byte header, payload of comp_len
bytes at offset 40), then the trailer.
  tracetool.py frames TRACE          list "index offset size"
  tracetool.py flip TRACE K          flip one payload byte of frame K
  tracetool.py remove TRACE K        cut frame K out of the file
  tracetool.py version TRACE MAJ MIN set the format version and re-seal the
                                     header checksum (XXH3-64 through
                                     libxxhash), as a newer detvm would write
"""
import ctypes, struct, sys

def xxh3_64(b):
    lib = ctypes.CDLL('libxxhash.so.0')
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_64bits(bytes(b), len(b))

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
    if cmd == 'version':
        body = struct.unpack_from('<I', data, 12)[0]
        struct.pack_into('<HH', data, 8, int(sys.argv[3]), int(sys.argv[4]))
        struct.pack_into('<Q', data, 16 + body, xxh3_64(data[:16 + body]))
        open(path, 'wb').write(data)
        return
    k = int(sys.argv[3])
    off, n = fr[k]
    if cmd == 'flip':
        data[off + 96 + (n - 96) // 2] ^= 0x40
    elif cmd == 'remove':
        del data[off:off + n]
    open(path, 'wb').write(data)

main()
