"""A user's model of the kind Distillery is brought: torchvision's ResNet-18, built for 1x28x28
(3x3 stem, stride 1, no max-pool), trained on Fashion-MNIST with real PyTorch and exported as
TorchScript (torch.jit.script, so that it trains as it did in PyTorch).

torchvision's ResNet class is used as it is (its BasicBlock, _make_layer, forward); only the stem is
replaced and, for small fixtures, the widths: `--width 64` is ResNet-18 itself (11.2M parameters),
`--width 8` the same network at 1/8 of the channels (the tests' fixture, 0.18M).

Preprocessing it is trained with (state it in the request's InputSpec):
    x = (pixel / 255 - 0.5) / 0.25,  shape [1, 28, 28]

Usage (Debian python3-torch 1.13, python3-torchvision 0.14, from this directory):
  /usr/bin/python3 resnet18.py --width 8 --classes 0,1,2,3,4 --train-limit 4000 --epochs 2 \
      --data ../fashion-mnist-subset --out resnet18_w8_classes0-4.pt        # the tests' fixture
  /usr/bin/python3 resnet18.py --width 64 --epochs 3 \
      --data /usr/share/datasets/fashion-mnist --out /tmp/resnet18.pt       # the benchmark's teacher
  /usr/bin/python3 resnet18.py --width 64 --classes 0,1,2,3,4 --epochs 3 \
      --data /usr/share/datasets/fashion-mnist --out /tmp/resnet18_0-4.pt   # TRANSFER's source
`--classes` keeps only those classes, relabelled 0..k-1 in the given order (as Distillery's
dataset.classes does); the head then has k outputs. `--epochs 0` exports the initialised network
(a student to train). Prints the test accuracy of the exported module as torch.jit.load gives it.
"""
import argparse
import gzip
import os
import struct

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

MEAN, STD = 0.5, 0.25


class ResNet18(torchvision.models.ResNet):
    """torchvision's ResNet-18 at base width `width`, for one-channel 28x28 images."""

    def __init__(self, width, classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        self.conv1 = nn.Conv2d(1, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def read_idx(path):
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                data = f.read()
            break
    else:
        raise FileNotFoundError(path)
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), data[8:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape((n,) + tuple(shape))


def load(data, split, classes, limit):
    images = read_idx(os.path.join(data, split + "-images-idx3-ubyte"))
    labels = read_idx(os.path.join(data, split + "-labels-idx1-ubyte")).astype(np.int64)
    if classes:
        keep = np.isin(labels, classes)
        images, labels = images[keep], labels[keep]
        labels = np.array([classes.index(int(label)) for label in labels], dtype=np.int64)
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = (torch.from_numpy(images.copy()).float() / 255 - MEAN) / STD
    return x.unsqueeze(1), torch.from_numpy(labels)


def accuracy(model, x, y):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            correct += (model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item()
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--classes", default="")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra-op threads (Debian's torch 1.13 used one unless told)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else []
    x, y = load(args.data, "train", classes, args.train_limit)
    tx, ty = load(args.data, "t10k", classes, 0)
    model = ResNet18(args.width, len(classes) or 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=max(1, steps))
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), args.batch):
            batch = order[i:i + args.batch]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
        model.eval()
        print(f"epoch {epoch + 1}: test accuracy {accuracy(model, tx, ty):.4f}", flush=True)
    model.eval()
    # Scripted, not traced: a trace bakes batch norm's train/eval branch in as a constant, so a
    # traced module keeps using its running statistics when trained.
    torch.jit.script(model).save(args.out)
    print(f"{args.out}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"test accuracy as loaded {accuracy(torch.jit.load(args.out), tx, ty):.4f}")


if __name__ == "__main__":
    main()
