"""Golden fixtures for torch.nn.utils.prune.global_unstructured (with L1Unstructured) and
torch.nn.utils.prune.ln_structured, for GlobalMagnitudeTest and LnStructuredTest.

Writes global_unstructured.json and ln_structured.json next to this script. Each case holds the
tensors as flat row-major float32 lists with their shapes, the arguments, and torch's own masks
(module.weight_mask, flat row-major 0/1 ints). "Ties" cases repeat values exactly (quantised
weights, duplicated channels), so which of the tied entries torch prunes is part of the fixture.

Generated with PyTorch 1.13 (Debian python3-torch), CPU, fixed seeds.
Regenerate (from this directory):  /usr/bin/python3 pruning_masks.py
"""
import json

import torch
import torch.nn as nn
from torch.nn.utils import prune

g = torch.Generator().manual_seed(2024)


def normal(*shape):
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def quantized(*shape, levels=(-0.5, -0.25, 0.0, 0.25, 0.5)):
    idx = torch.randint(len(levels), shape, generator=g)
    return torch.tensor(levels, dtype=torch.float32)[idx]


def module(weight):
    m = nn.Module()
    m.weight = nn.Parameter(weight.to(torch.float32).contiguous().clone())
    return m


def flat(t):
    return t.detach().reshape(-1).tolist()


def global_case(name, weights, amount):
    modules = [module(w) for w in weights]
    prune.global_unstructured([(m, "weight") for m in modules], pruning_method=prune.L1Unstructured,
                              amount=float(amount))
    return {"name": name, "amount": float(amount),
            "shapes": [list(w.shape) for w in weights],
            "weights": [flat(w) for w in weights],
            "masks": [[int(v) for v in flat(m.weight_mask)] for m in modules]}


def ln_case(name, weight, amount, n, dim=0):
    m = module(weight)
    prune.ln_structured(m, "weight", amount=float(amount), n=n, dim=dim)
    return {"name": name, "amount": float(amount), "n": n, "dim": dim, "shape": list(weight.shape),
            "weight": flat(weight), "mask": [int(v) for v in flat(m.weight_mask)]}


# LeNet-like layers at different scales: a global threshold prunes them unevenly, unlike per-layer pruning.
lenet = [normal(6, 1, 5, 5), normal(16, 6, 3, 3), normal(40, 64) * 0.05, normal(24, 40) * 0.1, normal(10, 24) * 0.3]
tied = [quantized(4, 3, 3, 3), quantized(7, 9), quantized(5)]
global_cases = [
    global_case("lenet_like_scaled_layers_a0.5", lenet, 0.5),
    global_case("lenet_like_scaled_layers_a0.9", lenet, 0.9),
    global_case("odd_sizes_a0.5_total_63", [normal(7, 3), normal(5, 3, 1, 1), normal(27)], 0.5),
    global_case("ties_quantized_a0.3", tied, 0.3),
    global_case("ties_quantized_a0.6", tied, 0.6),
    global_case("edge_amount_0", [normal(3, 4), normal(2, 2)], 0.0),
    global_case("edge_amount_1", [normal(3, 4), normal(2, 2)], 1.0),
]

conv = normal(16, 6, 5, 5)
dup = normal(8, 3, 3, 3)
dup[5] = dup[1]  # channels 1 and 5 have equal norms
dup[6] = dup[2]
dup[7] = -dup[2]  # equal norm, opposite sign
ln_cases = [
    ln_case("conv_16x6x5x5_l2_a0.5", conv, 0.5, 2),
    ln_case("conv_16x6x5x5_l2_a0.25", conv, 0.25, 2),
    ln_case("conv_16x6x5x5_l1_a0.5", conv, 0.5, 1),
    ln_case("linear_24x40_l2_a0.5", normal(24, 40), 0.5, 2),
    ln_case("odd_7x5_l2_a0.5_3.5_to_4", normal(7, 5), 0.5, 2),
    ln_case("odd_5x2x3x3_l2_a0.3_1.5_to_2", normal(5, 2, 3, 3), 0.3, 2),
    ln_case("ties_duplicated_channels_l2_a0.25", dup, 0.25, 2),
    ln_case("ties_duplicated_channels_l2_a0.5", dup, 0.5, 2),
    ln_case("ties_duplicated_channels_l2_a0.75", dup, 0.75, 2),
    ln_case("edge_amount_0", normal(4, 3), 0.0, 2),
    ln_case("edge_amount_1", normal(4, 3), 1.0, 2),
]

for file, cases in (("global_unstructured.json", global_cases), ("ln_structured.json", ln_cases)):
    with open(file, "w") as f:
        f.write('{"generator": "pruning_masks.py", "torch_version": "%s", "dtype": "float32", "cases": [\n'
                % torch.__version__)
        f.write(",\n".join(json.dumps(c) for c in cases))
        f.write("\n]}\n")
