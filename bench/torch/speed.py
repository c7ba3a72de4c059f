#!/usr/bin/python3
"""PyTorch side of bench/training-speed.sh: a built-in architecture (the nn.Sequential twin of
Distillery's Architectures, from load_safetensors.build) on Fashion-MNIST, trained with Adam or run
for inference, as DJL's TrainingSpeedBench does. Prints one line:
  torch samples/s=<s/s> steps=<n> seconds=<t> meanLoss=<l> nonFinite=<k> peakRssMB=<VmHWM> ...

Usage: speed.py [--arch lenet5|convnet] [--mode train|infer] [--dir D] [--threads 2] [--batch 128]
                [--samples 60000] [--epochs 1] [--warmup 20] [--mkldnn on|off] [--channels-last] [--seed 1]
Use /usr/bin/python3 (Debian python3-torch 1.13 with libopenblas0-pthread).
"""
import argparse, gzip, os, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_safetensors import build  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, name):
    for c in (os.path.join(d, name + ".gz"), os.path.join(d, name)):
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(name)


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="lenet5", choices=["lenet5", "convnet"])
    p.add_argument("--mode", default="train", choices=["train", "infer"])
    p.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--samples", type=int, default=60000, help="samples per epoch (first n)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before the timed epochs")
    p.add_argument("--mkldnn", default="on", choices=["on", "off"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    torch.manual_seed(a.seed)
    images = torch.from_numpy(read_idx(find(a.dir, "train-images-idx3-ubyte")).copy())[: a.samples]
    labels = torch.from_numpy(read_idx(find(a.dir, "train-labels-idx1-ubyte")).astype(np.int64))[: a.samples]
    n = images.shape[0]
    hidden = {"lenet5": [6, 16, 120, 84], "convnet": [32, 32, 64, 64, 256]}[a.arch]
    model = build(a.arch, hidden, 10)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    gen = torch.Generator().manual_seed(a.seed)

    def batch(idx):
        # Same work as DJL's ImageDataset.images: bytes -> normalised float32, [B,1,28,28].
        x = ((images[idx].float() * (1 / 255.0) - 0.2860) / 0.3530).unsqueeze(1)
        return x.contiguous(memory_format=fmt), labels[idx]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    if a.mode == "infer":
        model.eval()

        def step(x, y):  # noqa: F811  inference: a forward pass without autograd
            with torch.no_grad():
                return float(model(x)[0, 0])

    for i in range(a.warmup):
        idx = torch.randint(0, n, (a.batch,), generator=gen)
        step(*batch(idx))
    steps, loss_sum, non_finite = 0, 0.0, 0
    start = time.perf_counter()
    for _ in range(a.epochs):
        order = torch.randperm(n, generator=gen) if a.mode == "train" else torch.arange(n)
        for f in range(0, n, a.batch):
            v = step(*batch(order[f:f + a.batch]))
            if not np.isfinite(v):
                non_finite += 1
            else:
                loss_sum += v
            steps += 1
    secs = time.perf_counter() - start
    print("torch samples/s=%.1f steps=%d seconds=%.2f meanLoss=%.4f nonFinite=%d peakRssMB=%.0f threads=%d mkldnn=%s cl=%s"
          " arch=%s mode=%s batch=%d"
          % (n * a.epochs / secs, steps, secs, loss_sum / max(1, steps - non_finite), non_finite, vm_hwm_mb(),
             torch.get_num_threads(), a.mkldnn, a.channels_last, a.arch, a.mode, a.batch), flush=True)


if __name__ == "__main__":
    main()
