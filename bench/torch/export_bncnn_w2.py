"""Exports the PyTorch-trained bncnn at width 2 (64/128/128 channels, conv biases, 234,250
parameters; trained by a session helper's /tmp/recipe/train.py: 4 epochs, Adam 2e-3, cosine,
batch 128, 54,000 images, 0.9250 test accuracy) as TorchScript, to serve as a user's own teacher
in bench/run.sh student distill --teacher-torchscript. Usage: export_bncnn_w2.py STATE_DICT OUT.pt"""
import sys
import torch
import torch.nn as nn


def block(i, o):
    return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]


model = nn.Sequential(*block(1, 64), *block(64, 128), *block(128, 128), nn.Flatten(), nn.Linear(128 * 9, 10))
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
model.eval()
torch.jit.script(model).save(sys.argv[2])
print("parameters", sum(p.numel() for p in model.parameters()))
