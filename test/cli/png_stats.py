#!/usr/bin/env python3
"""png_stats.py FILE.png: print "WIDTHxHEIGHT ink=FRACTION colors=N" for a PNG
screenshot, where ink is the share of pixels unlike the most common colour
(the background) and colors the number of distinct colours. Standard library
only (zlib): 8-bit RGB or RGBA, non-interlaced, as Chromium writes them."""
import struct
import sys
import zlib
from collections import Counter


def pixels(path):
    data = open(path, 'rb').read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise SystemExit('png_stats: not a PNG: ' + path)
    pos, idat, width = 8, b'', None
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise SystemExit('png_stats: unsupported PNG (depth %d, colour type %d)' % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    width, height, bpp, rows = pixels(sys.argv[1])
    counts = Counter()
    for line in rows:
        for x in range(0, len(line), bpp):
            counts[line[x:x + 3]] += 1
    total = width * height
    background = counts.most_common(1)[0][1]
    print('%dx%d ink=%.4f colors=%d' % (width, height, (total - background) / total, len(counts)))


main()
