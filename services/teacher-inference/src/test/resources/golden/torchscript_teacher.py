"""Golden fixtures for TorchScript teacher inference, generated with real PyTorch.

Generates, next to this script:
  cnn_teacher.pt            a small CNN, torch.jit.trace'd with an example input [1, 1, 28, 28]:
                            Conv2d(1,8,3,p=1) -> ReLU -> MaxPool2d(2) -> Conv2d(8,16,3,p=1) -> ReLU
                            -> MaxPool2d(2) -> Flatten -> Linear(16*7*7, 10)
  mlp_teacher.pt            an MLP on a flat [784] input, torch.jit.script'ed:
                            Linear(784,64) -> ReLU -> Linear(64,10)
  torchscript_teacher.json  for each model: the input shape, the preprocessing and the logits of the
                            SAVED module (reloaded with torch.jit.load, eval mode, no_grad) for the
                            first 64 training images of datasets/fashion-mnist-subset.

Both models are trained briefly (2 epochs of Adam, lr 1e-3, batch 64, seeded) on the subset's training
images so their logits are meaningful. The preprocessing is deliberately NOT the Fashion-MNIST default,
to prove that a request's preprocessing is applied:
    x = images.float() * pixel_scale; x = (x - mean) / std     (float32, in this order)
with pixel_scale = 1/255 (the Python double; PyTorch applies it as float32), mean = 0.5, std = 0.25,
then reshaped to [N] + input_shape. Logits are float32 values written exactly (as the double equal to
each float32), row-major, count x 10.

Generated with the Debian python3-torch package (torch 1.13). Regenerate with:
    /usr/bin/python3 torchscript_teacher.py      (run from this directory)
"""
import gzip
import json
import os
import struct

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "../../../../../../datasets/fashion-mnist-subset"))

PIXEL_SCALE = 1 / 255
MEAN = 0.5
STD = 0.25
COUNT = 64
EPOCHS = 2
BATCH = 64
LR = 1e-3
SEED = 1234


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), data[8:4 + 4 * dims])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    assert magic >> 8 == 0x08 and arr.size == n * int(np.prod(shape, dtype=np.int64)), path
    return arr.reshape((n,) + tuple(shape))


def preprocess(images, input_shape):
    x = images.float() * PIXEL_SCALE
    x = (x - MEAN) / STD
    return x.reshape([x.shape[0]] + list(input_shape))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def mlp():
    return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def train(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


def accuracy(module, x, y):
    with torch.no_grad():
        return (module(x).argmax(1) == y).float().mean().item()


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    images = torch.from_numpy(read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz")).copy())
    labels = torch.from_numpy(read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).copy()).long()

    cases = []
    for name, build, input_shape, export in (
            ("cnn_teacher.pt", cnn, [1, 28, 28],
             lambda m, s: torch.jit.trace(m, torch.zeros([1] + s))),
            ("mlp_teacher.pt", mlp, [784], lambda m, s: torch.jit.script(m))):
        x = preprocess(images, input_shape)
        model = build()
        train(model, x, labels)
        path = os.path.join(HERE, name)
        torch.jit.save(export(model, input_shape), path)

        loaded = torch.jit.load(path)
        loaded.eval()
        with torch.no_grad():
            logits = loaded(x[:COUNT])
        assert logits.dtype == torch.float32 and list(logits.shape) == [COUNT, 10]
        print(f"{name}: train accuracy {accuracy(loaded, x, labels):.4f}, {os.path.getsize(path)} bytes")
        cases.append({
            "model": name,
            "input_shape": input_shape,
            "pixel_scale": PIXEL_SCALE,
            "mean": MEAN,
            "std": STD,
            "count": COUNT,
            # float(np.float32) is the double exactly equal to the float32, so parsing is exact.
            "logits": [float(v) for v in logits.numpy().reshape(-1)],
        })

    with open(os.path.join(HERE, "torchscript_teacher.json"), "w") as f:
        json.dump({"generator": "torchscript_teacher.py", "torch_version": torch.__version__,
                   "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
