"""Cuts the shipped Fashion-MNIST subset from Debian's dataset-fashion-mnist.

The first 4,000 training and first 1,000 test images, in the original gzipped IDX format, so the
demo and the tests run without a download. Regenerate with:
    /usr/bin/python3 make_subset.py   (run from this directory)
"""
import gzip
import struct

SRC = "/usr/share/datasets/fashion-mnist"
TRAIN, TEST = 4000, 1000


def cut(name, count):
    with gzip.open(f"{SRC}/{name}.gz", "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), data[8:4 + 4 * dims])
    item = 1
    for d in shape:
        item *= d
    header = struct.pack(">II", magic, count) + data[8:4 + 4 * dims]
    body = data[4 + 4 * dims:4 + 4 * dims + count * item]
    # mtime=0 keeps the file byte-identical across runs.
    with gzip.GzipFile(f"{name}.gz", "wb", compresslevel=9, mtime=0) as out:
        out.write(header + body)


for prefix, count in (("train", TRAIN), ("t10k", TEST)):
    cut(f"{prefix}-images-idx3-ubyte", count)
    cut(f"{prefix}-labels-idx1-ubyte", count)
