#!/usr/bin/env python3
"""tracetool.py - tamper with a detvm trace for the tamper tests.

Reads the layout of trace-format/SPEC.md: a file header (16 fixed bytes,
body, 8-byte checksum), then frames (96-byte header, payload of comp_len
bytes at offset 40), then the trailer.  Only `header` looks inside the body
(format 1.1 may pack fields into PACKED_FIELDS); the others need only
body_len, so they work on 1.0 and 1.1 files alike.
  tracetool.py frames TRACE          list "index offset size"
  tracetool.py flip TRACE K          flip one payload byte of frame K
  tracetool.py remove TRACE K        cut frame K out of the file
  tracetool.py version TRACE MAJ MIN set the format version and re-seal the
                                     header checksum (XXH3-64 through
                                     libxxhash), as a newer detvm would write
  tracetool.py header TRACE          header size and fields, "tag length",
                                     packed ones unpacked (libzstd) and
                                     marked "packed"
"""
import ctypes, struct, sys

def xxh3_64(b):
    lib = ctypes.CDLL('libxxhash.so.0')
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_64bits(bytes(b), len(b))

def unzstd(frame, raw_len):
    lib = ctypes.CDLL('libzstd.so.1')
    lib.ZSTD_decompress.restype = ctypes.c_size_t
    lib.ZSTD_decompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                    ctypes.c_char_p, ctypes.c_size_t]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
    out = ctypes.create_string_buffer(raw_len)
    n = lib.ZSTD_decompress(out, raw_len, bytes(frame), len(frame))
    if lib.ZSTD_isError(n) or n != raw_len:
        sys.exit('tracetool: PACKED_FIELDS does not unpack to %d bytes'
                 % raw_len)
    return out.raw

def fields(b, packed=False):
    """(tag, length, packed) of a TLV list, PACKED_FIELDS unpacked."""
    out, p = [], 0
    while p + 6 <= len(b):
        tag, n = struct.unpack_from('<HI', b, p)
        if tag == 0x8011 and not packed:
            raw_len = struct.unpack_from('<I', b, p + 6)[0]
            out += fields(unzstd(b[p + 10:p + 6 + n], raw_len), True)
        else:
            out.append((tag, n, packed))
        p += 6 + n
    return out

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
    if cmd == 'header':
        body = struct.unpack_from('<I', data, 12)[0]
        print('format %d.%d, header %d bytes (body %d)'
              % (*struct.unpack_from('<HH', data, 8), 24 + body, body))
        for tag, n, packed in fields(data[16:16 + body]):
            print('0x%04x %d%s' % (tag, n, ' packed' if packed else ''))
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
