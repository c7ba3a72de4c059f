"""Golden learning rates of torch's StepLR and CosineAnnealingLR, for TrainingLoopTest.

Distillery steps StepLR once per epoch and CosineAnnealingLR once per optimizer step (T_max = all
steps of the run, eta_min = 0). Run with Debian's python3-torch:
    /usr/bin/python3 lr_schedules.py > lr_schedules.json
"""
import json

import torch

cases = []
for schedule, lr, epochs, steps_per_epoch, step_epochs, gamma in [
    ("STEP", 0.1, 7, 3, 2, 0.5),
    ("STEP", 0.01, 5, 4, 1, 0.1),
    ("COSINE", 0.002, 3, 5, 1, 1.0),
    ("COSINE", 0.05, 4, 7, 1, 1.0),
]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    if schedule == "STEP":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_epochs, gamma=gamma)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=0)
    rates = []  # the rate used by each step of each epoch
    for epoch in range(epochs):
        for step in range(steps_per_epoch):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            if schedule == "COSINE":
                sched.step()
        if schedule == "STEP":
            sched.step()
    cases.append({"schedule": schedule, "learningRate": lr, "epochs": epochs, "stepsPerEpoch": steps_per_epoch,
                  "stepEpochs": step_epochs, "stepGamma": gamma, "rates": rates})
print(json.dumps({"torch": torch.__version__, "cases": cases}, indent=1))
