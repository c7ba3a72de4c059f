"""Golden fixture for SHIFT_FLIP augmentation (ImageDataset.shiftAndFlip).

torchvision's RandomCrop(size, padding=2) followed by RandomHorizontalFlip, with the random
choices fixed: crop at (top, left) = (dy + 2, dx + 2) of the image zero-padded by 2, then flip.
Writes shift_flip.json: {"rows", "cols", "image" (uint8, row-major), "cases": [{"dy", "dx",
"flip", "expected" (uint8, row-major)}]}.

Generated with Debian's python3-torchvision. Regenerate (from this directory):
  /usr/bin/python3 shift_flip.py
"""
import json
import torch
import torchvision.transforms.functional as TF

g = torch.Generator().manual_seed(16)
rows, cols = 6, 7
image = torch.randint(1, 256, (1, rows, cols), generator=g, dtype=torch.uint8)
cases = []
for dy, dx, flip in [(0, 0, False), (0, 0, True), (2, -1, False), (-2, 2, True), (1, -2, True), (-1, 1, False)]:
    shifted = TF.crop(TF.pad(image, 2, fill=0), dy + 2, dx + 2, rows, cols)
    if flip:
        shifted = TF.hflip(shifted)
    cases.append({"dy": dy, "dx": dx, "flip": flip, "expected": shifted.reshape(-1).tolist()})
with open("shift_flip.json", "w") as f:
    json.dump({"generator": "shift_flip.py", "rows": rows, "cols": cols, "image": image.reshape(-1).tolist(),
               "cases": cases}, f)
    f.write("\n")
