"""Golden fixture: one distillation step of a TorchScript student, in real PyTorch.

The student is datasets/torchscript/resnet18_w8_init.pt (torchvision's ResNet-18 at 1/8 width,
scripted, untrained), the teacher datasets/torchscript/resnet18_w8.pt (the same network trained).
On the first BATCH training images of datasets/fashion-mnist-subset, preprocessed as
x = (pixel / 255 - 0.5) / 0.25 (float32, in that order), in train mode (batch norm on batch
statistics):
    loss = alpha*T^2*KL(softmax(t/T) || softmax(s/T)) + (1-alpha)*CE(s, y), T=4, alpha=0.9
Then one plain SGD step (lr 0.1, no momentum, no weight decay) and the eval-mode logits of the first
8 images, which depend on the updated weights and on the running statistics the step updated.

Writes torchscript_student_step.json next to this script:
  teacher_scaled_logits  [BATCH, 10] teacher logits divided by T (eval mode), as Distillery publishes them
  loss                   the float32 loss
  gradients              {name: flat gradient} for the parameters in CHECKED
  gradient_norms         {name: L2 norm of the gradient} for every parameter
  logits_after_step      [8, 10] eval-mode logits after the SGD step

Debian python3-torch 1.13. Regenerate from this directory:  /usr/bin/python3 torchscript_student_step.py
"""
import gzip
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../../../.."))
DATA = os.path.join(ROOT, "datasets/fashion-mnist-subset")
MODELS = os.path.join(ROOT, "datasets/torchscript")
BATCH, T, ALPHA, LR = 32, 4.0, 0.9, 0.1
CHECKED = ["conv1.weight", "bn1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias", "fc.weight", "fc.bias"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), data[8:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape((n,) + tuple(shape))


def exact(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


images = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"))[:BATCH]
labels = torch.from_numpy(read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz"))[:BATCH].astype(np.int64))
x = ((torch.from_numpy(images.copy()).float() * (1 / 255) - 0.5) / 0.25).unsqueeze(1)

teacher = torch.jit.load(os.path.join(MODELS, "resnet18_w8.pt")).eval()
with torch.no_grad():
    scaled = teacher(x) / T
student = torch.jit.load(os.path.join(MODELS, "resnet18_w8_init.pt"))
student.train()
s = student(x)
soft_log = F.log_softmax(scaled, dim=1)
loss = (ALPHA * T * T * (soft_log.exp() * (soft_log - F.log_softmax(s / T, dim=1))).sum() / BATCH
        + (1 - ALPHA) * F.cross_entropy(s, labels))
loss.backward()
named = dict(student.named_parameters())
out = {
    "batch": BATCH, "temperature": T, "alpha": ALPHA, "learning_rate": LR,
    "teacher_scaled_logits": exact(scaled),
    "loss": float(loss.item()),
    "gradients": {name: exact(named[name].grad) for name in CHECKED},
    "gradient_norms": {name: float(p.grad.norm().item()) for name, p in named.items()},
}
with torch.no_grad():
    for p in student.parameters():
        p -= LR * p.grad
student.eval()
with torch.no_grad():
    out["logits_after_step"] = exact(student(x[:8]))
with open(os.path.join(HERE, "torchscript_student_step.json"), "w") as f:
    json.dump(out, f)
print("loss", out["loss"])
