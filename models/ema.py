"""An exponential moving average of a task's weights, from the train_wrapper spec:

    train_wrapper:
      name: base
      args: {...}
      ema: {decay: 0.999}     # after each optimizer step: averaged = decay x averaged + (1 - decay) x weights

The average is a copy of the task (`task.ema.module`), so it is in the task's state_dict
(`ema.module.model.net.0.weight`): checkpoints keep it and a resume restores it exactly.
Validation and test run on the averaged weights (val/acc), and on the trained ones too
(val_raw/acc); test.py, --predict and init_from use the averaged ones. Both engines update it
after every optimizer step (train.py's train_step, callbacks/schedules.py). Floating-point
buffers (BatchNorm's running statistics) are averaged too; the others are copied.
"""
import copy

import torch
import torch.nn as nn

import utils


class EMA(nn.Module):
    def __init__(self, task, decay: float = 0.999):
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise utils.ConfigError(f'must be a number between 0 and 1, but got {decay!r}',
                                    key='decay')
        self.decay = float(decay)
        self.module = copy.deepcopy(task).requires_grad_(False)
        self.average = torch.optim.swa_utils.get_ema_multi_avg_fn(self.decay)

    @torch.no_grad()
    def update(self, task):
        """One step of the average towards the task's weights now."""
        own = [t for name, t in [*task.named_parameters(), *task.named_buffers()]
               if not name.startswith('ema.')]
        averaged = [*self.module.parameters(), *self.module.buffers()]
        floats = [(a, t) for a, t in zip(averaged, own, strict=True) if a.is_floating_point()]
        if floats:
            self.average([a for a, _ in floats], [t.detach() for _, t in floats], None)
        for a, t in zip(averaged, own):
            if not a.is_floating_point():
                a.copy_(t)


def attach(task, spec):
    """`task` with its EMA, when the train_wrapper spec has `ema:`."""
    if spec is None:
        return task
    if not isinstance(spec, dict):
        raise utils.ConfigError(f'must be a mapping like {{decay: 0.999}}, but got {spec!r}')
    utils.check_args(EMA, {'task': task, **spec}, 'ema', prefix='')
    task.ema = EMA(task, **spec)
    return task


def averaged(task):
    """The weights a trained task is used with: its EMA's when it has one."""
    return task.ema.module if getattr(task, 'ema', None) is not None else task
