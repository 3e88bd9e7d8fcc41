"""Faults to inject through a config, as a user's code could meet them:
`loss_spec: {name: tests.faults.FaultyLoss, args: {at: 5, fault: SIGKILL}}`."""
import os
import signal

import torch
import torch.nn as nn

import utils
from losses.gan import NonSaturating


class Fault:
    """At this process's `at`-th training batch (counted from 1), the loss becomes NaN
    (`fault: nan`), or a signal (`fault: SIGKILL`, `SIGTERM`, ...) goes to this process, or to
    its parent with `to_parent: true` (torchrun, under DDP); `fault: SIGKILL_IN_SAVE` kills
    this process inside the next checkpoint write. `in_eval: true` counts the forwards without
    gradients (validation) instead."""

    def __init__(self, at, fault, to_parent=False, in_eval=False):
        self.at, self.fault, self.to_parent, self.calls = at, fault, to_parent, 0
        self.in_eval = in_eval  # count validation forwards (and Lightning's sanity check) instead

    def tick(self, loss):
        if torch.is_grad_enabled() == self.in_eval:  # not the kind of forward counted
            return loss
        self.calls += 1
        if self.calls == self.at:
            if self.fault == 'nan':
                return loss * float('nan')
            if self.fault == 'SIGKILL_IN_SAVE':  # the next checkpoint dies half-written: its
                # temporary file is whole, the rename into place never comes (the write
                # before it, on utils/writer.py's thread, is let finish first)
                utils.wait_for_writes()
                os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
                return loss
            os.kill(os.getppid() if self.to_parent else os.getpid(), getattr(signal, self.fault))
        return loss


def faulty(loss_class):
    """`loss_class` with a Fault on every training forward."""
    class Faulty(loss_class):
        def __init__(self, at, fault, to_parent=False, in_eval=False):
            super().__init__()
            self.fault = Fault(at, fault, to_parent, in_eval)

        def forward(self, output, target):
            return self.fault.tick(super().forward(output, target))
    return Faulty


FaultyLoss = faulty(nn.CrossEntropyLoss)
FaultyMSE = faulty(nn.MSELoss)


class FaultyGANLoss(NonSaturating):
    """The fault strikes the discriminator's loss, the first of a batch's two."""

    def __init__(self, at, fault, to_parent=False):
        self.fault = Fault(at, fault, to_parent)

    def d_loss(self, real, fake):
        return self.fault.tick(super().d_loss(real, fake))
