"""Optimizers and lr schedulers from specs, shared by every task.

    optim_spec: {name: Adam, args: {lr: 1.e-3}}                  torch.optim class or dotted path
    sched_spec: {name: StepLR, args: {step_size: 10},            torch.optim.lr_scheduler class
                 interval: epoch, frequency: 1, monitor: val/loss}
"""
import inspect

import torch

import utils

optimizers = utils.Registry('torch.optim optimizers')
schedulers = utils.Registry('torch.optim.lr_scheduler schedulers',
                            spec_keys=['interval', 'frequency', 'monitor'])  # how to step it

for _name, _obj in vars(torch.optim).items():
    if inspect.isclass(_obj) and issubclass(_obj, torch.optim.Optimizer) and \
            _obj is not torch.optim.Optimizer:
        optimizers.register(_name)(_obj)
for _name, _obj in vars(torch.optim.lr_scheduler).items():
    if inspect.isclass(_obj) and issubclass(_obj, torch.optim.lr_scheduler.LRScheduler) and \
            _obj is not torch.optim.lr_scheduler.LRScheduler and not _name.startswith('_'):
        schedulers.register(_name)(_obj)


def make_optimizer(spec, params):
    return optimizers.make(spec, args={'params': params})


def make_scheduler(spec, optimizer):
    """The scheduler and how to step it: {'scheduler', 'interval', 'frequency', 'monitor'},
    the dict Lightning's configure_optimizers takes."""
    if not isinstance(spec, dict):
        raise utils.ConfigError(f'must be a scheduler spec {{name, args, interval}}, but got {spec!r}')
    interval = spec.get('interval', 'epoch')
    if interval not in ('epoch', 'step'):
        raise utils.ConfigError(f"must be 'epoch' or 'step', but got {interval!r}", key='interval')
    scheduler = schedulers.make(spec, args={'optimizer': optimizer})
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    settings = {'scheduler': scheduler, 'interval': interval, 'frequency': spec.get('frequency', 1)}
    monitor = spec.get('monitor', 'val/loss' if plateau else None)
    if monitor:
        settings['monitor'] = monitor
    return settings


def step_schedulers(configs, interval, count, metrics=None):
    """Step the schedulers of `interval` ('step': after an optimizer step; 'epoch': after the
    epoch's validation) whose `frequency` divides `count`, the steps or epochs done. A
    monitored one (ReduceLROnPlateau) gets its metric, and is skipped, as in Lightning, when
    the metric was not logged (an epoch without validation). What train.py does for every
    task and models/lightning.py for tasks with several optimizers."""
    for config in configs:
        if config['interval'] != interval or count % config['frequency']:
            continue
        monitor, metrics = config.get('monitor'), metrics or {}
        if monitor is None:
            config['scheduler'].step()
        elif monitor in metrics:
            config['scheduler'].step(float(metrics[monitor]))
        elif any(k.startswith('val/') for k in metrics):  # a validation ran without it: a typo
            raise utils.ConfigError(f"'{monitor}' is not a metric this run logs"
                                    f'{utils.close_matches(monitor, metrics)} (it logs '
                                    f"{', '.join(sorted(metrics))})",
                                    key='train_wrapper.args.sched_spec.monitor')
