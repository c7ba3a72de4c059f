#!/usr/bin/python3
"""Loads a Distillery safetensors export into PyTorch and evaluates it, without the safetensors
package (Debian's python3-torch 1.13 has none): the format is an 8-byte little-endian header
length, a JSON header, then the tensors' bytes.

Usage: load_safetensors.py FILE.safetensors [ARCH=lenet5] [DATASET_DIR=/usr/share/datasets/fashion-mnist]
Prints the parameter names, then the test accuracy of the loaded model (inputs normalised as the
built-in architectures are: (x/255 - 0.2860) / 0.3530).
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


def lenet5(classes):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, classes))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = struct.unpack(">" + "I" * data[3], data[4:4 + 4 * data[3]])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def main():
    path = sys.argv[1]
    data_dir = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
    state = read_safetensors(path)
    print("parameters:", {name: list(t.shape) for name, t in state.items()})
    last = max(state, key=lambda n: int(n.split(".")[0]))
    model = lenet5(state[last].shape[0])
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
