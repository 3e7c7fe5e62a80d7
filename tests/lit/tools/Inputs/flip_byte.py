#!/usr/bin/python3
"""usage: flip_byte.py FILE OFFSET -- inverts the bits of one byte in place
(OFFSET < 0 counts from the end), to corrupt an artifact in a test."""
import sys

path, offset = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[offset] ^= 0xFF
    f.seek(0)
    f.write(data)
