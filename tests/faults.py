"""Faults to inject through a config, as a user's code could meet them:
`loss_spec: {name: tests.faults.FaultyLoss, args: {at: 5, fault: SIGKILL}}`."""
import os
import signal

import torch
import torch.nn as nn


class FaultyLoss(nn.CrossEntropyLoss):
    """Cross-entropy that, at this process's `at`-th training batch (counted from 1), returns
    NaN (`fault: nan`) or sends a signal (`fault: SIGKILL`, `SIGTERM`, ...) to this process,
    or to its parent with `to_parent: true` (torchrun, under DDP)."""

    def __init__(self, at, fault, to_parent=False):
        super().__init__()
        self.at, self.fault, self.to_parent, self.calls = at, fault, to_parent, 0

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        if not torch.is_grad_enabled():  # validation and test
            return loss
        self.calls += 1
        if self.calls == self.at:
            if self.fault == 'nan':
                return loss * float('nan')
            os.kill(os.getppid() if self.to_parent else os.getpid(), getattr(signal, self.fault))
        return loss
