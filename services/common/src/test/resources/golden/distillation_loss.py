"""Golden fixtures for the Hinton knowledge-distillation loss.

  loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)
       = alpha*T*T*F.kl_div(F.log_softmax(s/T,1), F.softmax(t/T,1), reduction='batchmean')
         + (1-alpha)*F.cross_entropy(s, y, label_smoothing=ls)   # CE mean over the batch

s = student logits, t = teacher raw logits, y = int labels. Everything in float32.
Generates distillation_loss.json next to this script: a list under "cases" of
  {"name", "dtype", "batch", "classes", "temperature", "alpha", "label_smoothing", "student_logits",
   "teacher_logits", "labels", "teacher_soft_targets", "loss", "loss_float64", "grad_student_logits"}
with all matrices flat, row-major [batch, classes]; grad is d loss / d s.
"loss" is the float32 result; "loss_float64" is the same formula evaluated in
float64 on the same (float32-representable) inputs, i.e. the exact-math
reference. For T=20 they differ by ~1.4e-6 relative (T^2 amplifies float32
rounding), so compare losses with a relative tolerance (~1e-5), not 1e-6 abs.

Generated with PyTorch 1.13 (Debian python3-torch), CPU, fixed seeds.
Regenerate (from this directory):  /usr/bin/python3 distillation_loss.py
"""
import json
import torch
import torch.nn.functional as F

torch.manual_seed(4321)
g = torch.Generator().manual_seed(4321)


def kd_loss(s, t, y, T, alpha, ls):
    soft = F.softmax(t / T, dim=1)
    return (alpha * T * T * F.kl_div(F.log_softmax(s / T, dim=1), soft, reduction="batchmean")
            + (1 - alpha) * F.cross_entropy(s, y, label_smoothing=ls)), soft


def case(name, B, C, T, alpha, s, t, ls=0.0):
    y = torch.randint(C, (B,), generator=g)
    s = s.to(torch.float32).clone().requires_grad_(True)
    t = t.to(torch.float32)
    loss, soft = kd_loss(s, t, y, T, alpha, ls)
    loss.backward()
    loss64, _ = kd_loss(s.detach().double(), t.double(), y, T, alpha, ls)  # same inputs, float64 math
    return {
        "name": name, "dtype": "float32", "batch": B, "classes": C,
        "temperature": float(T), "alpha": float(alpha), "label_smoothing": float(ls),
        "student_logits": s.detach().reshape(-1).tolist(),
        "teacher_logits": t.reshape(-1).tolist(),
        "labels": y.tolist(),
        "teacher_soft_targets": soft.reshape(-1).tolist(),
        "loss": float(loss.item()),
        "loss_float64": float(loss64.item()),
        "grad_student_logits": s.grad.reshape(-1).tolist(),
    }


def normal(B, C, scale):
    return torch.randn(B, C, generator=g) * scale


def uniform(B, C, lim):
    return (torch.rand(B, C, generator=g) * 2 - 1) * lim


cases = [
    case("B4_C10_T4_a0.9_normal3", 4, 10, 4.0, 0.9, normal(4, 10, 3), normal(4, 10, 3)),
    case("B8_C10_T1_a0.5_normal1", 8, 10, 1.0, 0.5, normal(8, 10, 1), normal(8, 10, 1)),
    case("B3_C5_T20_a1.0_normal5", 3, 5, 20.0, 1.0, normal(3, 5, 5), normal(3, 5, 5)),
    case("B5_C10_T2_a0.0_normal3", 5, 10, 2.0, 0.0, normal(5, 10, 3), normal(5, 10, 3)),
    case("B4_C10_T2_a0.7_large30", 4, 10, 2.0, 0.7, uniform(4, 10, 30), uniform(4, 10, 30)),
    case("B4_C10_T1_a0.5_large30", 4, 10, 1.0, 0.5, uniform(4, 10, 30), uniform(4, 10, 30)),
    # label smoothing of the hard term (added with issue 16; the cases above are unchanged)
    case("B6_C10_T4_a0.7_ls0.1_normal3", 6, 10, 4.0, 0.7, normal(6, 10, 3), normal(6, 10, 3), 0.1),
    case("B5_C10_T1_a0.0_ls0.2_normal3", 5, 10, 1.0, 0.0, normal(5, 10, 3), normal(5, 10, 3), 0.2),
]

# one case per line, so diffs stay readable
with open("distillation_loss.json", "w") as f:
    f.write('{"generator": "distillation_loss.py", "torch_version": "%s", "cases": [\n' % torch.__version__)
    f.write(",\n".join(json.dumps(c) for c in cases))
    f.write("\n]}\n")
