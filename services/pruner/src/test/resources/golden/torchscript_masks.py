"""Golden fixture: torch.nn.utils.prune's masks on a user's TorchScript module's own weights.

Loads datasets/torchscript/resnet18_w8.pt (torchvision's ResNet-18 at 1/8 width, scripted, trained
briefly), copies its parameters into the same network built in Python (resnet18.py's ResNet18), and
prunes every Conv2d and Linear weight with torch.nn.utils.prune:
  l1_unstructured     amount 0.6 per tensor
  global_unstructured amount 0.7 over all of them together (L1Unstructured)
Writes torchscript_masks.json next to this script: for each method, {parameter name: mask}, a mask
being a string of '0'/'1' characters in the tensor's row-major order (1 = kept).

Debian python3-torch 1.13. Regenerate from this directory:  /usr/bin/python3 torchscript_masks.py
"""
import json
import os
import sys

import torch
from torch import nn
from torch.nn.utils import prune

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.normpath(os.path.join(HERE, "../../../../../../datasets/torchscript"))
sys.path.insert(0, MODELS)
from resnet18 import ResNet18  # noqa: E402


def fresh():
    model = ResNet18(8, 10)
    scripted = torch.jit.load(os.path.join(MODELS, "resnet18_w8.pt"))
    model.load_state_dict(scripted.state_dict())
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return layers


def bits(mask):
    return "".join("1" if v else "0" for v in mask.reshape(-1).tolist())


out = {}
layers = fresh()
for name, m in layers:
    prune.l1_unstructured(m, "weight", amount=0.6)
out["l1_unstructured"] = {name + ".weight": bits(m.weight_mask) for name, m in layers}
layers = fresh()
prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=0.7)
out["global_unstructured"] = {name + ".weight": bits(m.weight_mask) for name, m in layers}
with open(os.path.join(HERE, "torchscript_masks.json"), "w") as f:
    json.dump(out, f)
print({k: len(v) for k, v in out.items()})
