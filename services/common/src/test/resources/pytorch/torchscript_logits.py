"""Loads a TorchScript file the way a PyTorch user would (torch.jit.load, eval mode, no_grad) and
prints its logits for the first COUNT images of an IDX training set as JSON (a flat row-major list).

  /usr/bin/python3 torchscript_logits.py MODULE DATASET_DIR COUNT PIXEL_SCALE MEAN STD [SHAPE]

SHAPE is one input's shape without the batch dimension, comma-separated (default 1,28,28). The
preprocessing is Distillery's: x = (pixel * PIXEL_SCALE - MEAN) / STD in float32.
Used by tests (dev.distillery.common.testing.PyTorch) with Debian's python3-torch 1.13.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), data[8:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape((n,) + tuple(shape))


module, data, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
scale, mean, std = (torch.tensor(float(v), dtype=torch.float32) for v in sys.argv[4:7])
shape = [int(d) for d in sys.argv[7].split(",")] if len(sys.argv) > 7 and sys.argv[7] else [1, 28, 28]
name = "train-images-idx3-ubyte"
path = os.path.join(data, name + ".gz") if os.path.exists(os.path.join(data, name + ".gz")) else os.path.join(data, name)
images = torch.from_numpy(read_idx(path)[:count].copy()).float()
x = ((images * scale - mean) / std).reshape([count] + shape)
model = torch.jit.load(module).eval()
with torch.no_grad():
    print(json.dumps([float(v) for v in model(x).reshape(-1).tolist()]))
