#!/usr/bin/python3
"""Loads a Distillery safetensors export into PyTorch and evaluates it, without the safetensors
package (Debian's python3-torch 1.13 has none): the format is an 8-byte little-endian header
length, a JSON header, then the tensors' bytes.

Usage: load_safetensors.py FILE.safetensors [ARCH=lenet5] [DATASET_DIR=/usr/share/datasets/fashion-mnist]
ARCH is mlp, lenet5 or convnet; the layer sizes are read from the tensors' shapes, so a width
multiplier or structurally pruned channels need nothing more. Prints the parameter names, then the
test accuracy of the loaded model (inputs normalised as the built-in architectures are:
(x/255 - 0.2860) / 0.3530).
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", info
        tensors[name] = torch.from_numpy(np.frombuffer(body[begin:end], dtype="<f4").copy()).reshape(info["shape"])
    return tensors


def build(arch, h, classes):
    """The nn.Sequential twin of Architectures.build: h are the hidden layers' sizes."""
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, h[0]), nn.ReLU(), nn.Linear(h[0], h[1]), nn.ReLU(),
                             nn.Linear(h[1], classes))
    if arch == "lenet5":
        return nn.Sequential(nn.Conv2d(1, h[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(h[0], h[1], 5),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(h[1] * 25, h[2]), nn.ReLU(),
                             nn.Linear(h[2], h[3]), nn.ReLU(), nn.Linear(h[3], classes))
    if arch == "convnet":
        return nn.Sequential(nn.Conv2d(1, h[0], 3, padding=1), nn.ReLU(), nn.Conv2d(h[0], h[1], 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Conv2d(h[1], h[2], 3, padding=1), nn.ReLU(),
                             nn.Conv2d(h[2], h[3], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(h[3] * 49, h[4]), nn.ReLU(), nn.Linear(h[4], classes))
    raise SystemExit("unknown architecture " + arch)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = struct.unpack(">" + "I" * data[3], data[4:4 + 4 * data[3]])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def main():
    path = sys.argv[1]
    arch = sys.argv[2] if len(sys.argv) > 2 else "lenet5"
    data_dir = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
    state = read_safetensors(path)
    print("parameters:", {name: list(t.shape) for name, t in state.items()})
    weights = sorted((n for n in state if n.endswith(".weight")), key=lambda n: int(n.split(".")[0]))
    model = build(arch, [state[n].shape[0] for n in weights[:-1]], state[weights[-1]].shape[0])
    model.load_state_dict(state, strict=True)
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")).astype(np.float32)
    labels = torch.from_numpy(read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    x = torch.from_numpy((images / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == labels).float().mean().item()
    zeros = sum((t == 0).sum().item() for t in state.values())
    print("test accuracy %.4f; %d of %d parameters are zero" % (accuracy, zeros, sum(t.numel() for t in state.values())))


if __name__ == "__main__":
    main()
