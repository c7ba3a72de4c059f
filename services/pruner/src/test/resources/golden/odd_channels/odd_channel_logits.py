#!/usr/bin/python3
"""Golden logits and gradients for OddChannelInferenceTest, from real PyTorch (Debian's python3-torch
1.13) with its oneDNN kernels off, so the fixture cannot share a oneDNN fault with what it checks.

The model is a convnet whose pruning (LN_STRUCTURED, 80% of channels, bench/run.sh prune on the
full Fashion-MNIST) left hidden layers of 6, 6, 13, 13 and 51: convnet_6_6_13_13_51.params is the
service's own DJL checkpoint of it, convnet_6_6_13_13_51.safetensors the same weights as exported
for PyTorch. libtorch 2.7.1 with oneDNN capped at AVX2 computed wrong logits for it.

Run from the repository root: /usr/bin/python3 services/pruner/src/test/resources/golden/odd_channels/odd_channel_logits.py
Writes odd_channel_logits.json: the logits of the first 64 test images of the shipped subset, and
odd_channel_gradients.json + .bin: the gradients of the mean cross-entropy of those 64 images with
respect to every parameter (float32 little-endian in .bin, names, shapes and offsets in .json).
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../../../../../../bench/torch"))
from load_safetensors import build, read_idx, read_safetensors  # noqa: E402  the nn.Sequential twin of Architectures


def main():
    state = read_safetensors(os.path.join(HERE, "convnet_6_6_13_13_51.safetensors"))
    model = build("convnet", [6, 6, 13, 13, 51], 10)
    model.load_state_dict(state, strict=True)
    images = read_idx(os.path.join(HERE, "../../../../../../../datasets/fashion-mnist-subset/t10k-images-idx3-ubyte.gz"))
    x = torch.from_numpy((images[:64].astype(np.float32) / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
    labels = read_idx(os.path.join(HERE, "../../../../../../../datasets/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz"))
    y = torch.from_numpy(labels[:64].astype(np.int64))
    with torch.backends.mkldnn.flags(enabled=False):
        with torch.no_grad():
            logits = model(x)
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
    with open(os.path.join(HERE, "odd_channel_logits.json"), "w") as f:
        json.dump({"torch": torch.__version__, "mkldnn": False, "images": 64, "logits": logits.flatten().tolist()}, f)
    tensors, offset, blob = [], 0, bytearray()
    for name, p in model.named_parameters():
        g = p.grad.detach().numpy().astype("<f4")
        tensors.append({"name": name, "shape": list(g.shape), "offset": offset})
        offset += g.size
        blob += g.tobytes()
    with open(os.path.join(HERE, "odd_channel_gradients.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(HERE, "odd_channel_gradients.json"), "w") as f:
        json.dump({"torch": torch.__version__, "mkldnn": False, "images": 64, "loss": "mean cross-entropy",
                   "tensors": tensors}, f, indent=1)
    print("wrote", logits.shape, "logits and", offset, "gradient values with torch", torch.__version__)


if __name__ == "__main__":
    main()
