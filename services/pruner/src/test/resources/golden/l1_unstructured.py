"""Golden fixtures for torch.nn.utils.prune.l1_unstructured (float `amount`).

Generates l1_unstructured.json next to this script: a list under "cases" of
  {"name", "shape", "amount", "n", "n_pruned", "boundary_tie", "weight", "mask"}
where weight is the flat row-major float32 tensor, mask is torch's own
module.weight_mask (flat row-major, 0/1 ints), n = numel, n_pruned = number of
zeros in the mask (torch: round(amount * n), Python round = half to even),
boundary_tie = True if the largest pruned |w| equals the smallest kept |w|
(then WHICH equal-magnitude elements torch prunes is a torch.topk tie-break
detail, not a property of L1 pruning itself; torch 1.13 CPU does NOT prune
the lowest-index tied elements first). For tie cases, assert the pruned count,
that every |w| below the boundary is pruned and every |w| above it is kept;
compare the mask element-wise only where boundary_tie is false.

Generated with PyTorch 1.13 (Debian python3-torch), CPU, fixed seeds.
Regenerate (from this directory):  /usr/bin/python3 l1_unstructured.py
"""
import json
import torch
import torch.nn as nn
from torch.nn.utils import prune

torch.manual_seed(1234)
g = torch.Generator().manual_seed(1234)


def normal(*shape):
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def quantized(*shape, levels=(-0.5, -0.25, 0.0, 0.25, 0.5)):
    idx = torch.randint(len(levels), shape, generator=g)
    return torch.tensor(levels, dtype=torch.float32)[idx]


def case(name, weight, amount):
    weight = weight.to(torch.float32).contiguous()
    m = nn.Module()
    m.weight = nn.Parameter(weight.clone())
    prune.l1_unstructured(m, "weight", amount=float(amount))
    mask = m.weight_mask.detach().reshape(-1)
    a = weight.reshape(-1).abs()
    pruned, kept = a[mask == 0], a[mask == 1]
    tie = bool(len(pruned) and len(kept) and pruned.max().item() == kept.min().item())
    return {
        "name": name,
        "shape": list(weight.shape),
        "amount": float(amount),
        "n": weight.numel(),
        "n_pruned": int((mask == 0).sum().item()),
        "boundary_tie": tie,
        "weight": weight.reshape(-1).tolist(),
        "mask": [int(v) for v in mask.tolist()],
    }


many_zeros = normal(10, 12)
many_zeros[torch.rand(10, 12, generator=g) < 0.6] = 0.0
sym = normal(4, 5).abs()
sym_pm = torch.cat([sym, -sym], dim=0)[torch.randperm(8, generator=g)]  # +-x pairs

cases = [
    case("linear_30x20_normal_a0.5", normal(30, 20), 0.5),
    case("conv_6x1x5x5_a0.3", normal(6, 1, 5, 5), 0.3),
    case("conv_16x6x5x5_a0.9", normal(16, 6, 5, 5), 0.9),
    case("odd_7x3_a0.5_n21_10.5_to_10", normal(7, 3), 0.5),
    case("odd_5_a0.5_2.5_to_2", normal(5), 0.5),
    case("odd_3_a0.5_1.5_to_2", normal(3), 0.5),
    case("ties_quantized_10x12_a0.25", quantized(10, 12), 0.25),
    case("ties_quantized_10x12_a0.5", quantized(10, 12), 0.5),
    case("ties_quantized_10x12_a0.75", quantized(10, 12), 0.75),
    case("many_zeros_10x12_a0.3", many_zeros, 0.3),
    case("many_zeros_10x12_a0.7", many_zeros, 0.7),
    case("edge_amount_0.0", normal(6, 4), 0.0),
    case("edge_amount_1.0", normal(6, 4), 1.0),
    case("plus_minus_equal_magnitude_8x5_a0.5", sym_pm, 0.5),
    case("plus_minus_equal_magnitude_8x5_a0.525_splits_pair", sym_pm, 0.525),
]

# one case per line, so diffs stay readable
with open("l1_unstructured.json", "w") as f:
    f.write('{"generator": "l1_unstructured.py", "torch_version": "%s", "dtype": "float32", "cases": [\n' % torch.__version__)
    f.write(",\n".join(json.dumps(c) for c in cases))
    f.write("\n]}\n")
