"""What both engines build before a run folder exists, checked in two rounds, every mistake of a
round reported at once:

1. what needs no task built: trainer_params, the data, the train_wrapper's name, its own
   arguments and its optim_spec and sched_spec (models.task.check_task), and the engine's
   `parts` (the checkpoint and loggers sections, train.py's callbacks). A mistake there is
   reported in about the time it takes to import torch.
2. the task (its models, losses and metrics: torchmetrics alone takes seconds to import), its
   optimizers and, on --resume, the checkpoint against them; then the data's splits and one
   dry step of the task on two samples.
"""
from types import SimpleNamespace

import datasets
import utils

from . import optim
from .task import check_fits, check_task, make_task, optimizers_of


def build_run(run, world_size, parts=None, check_settings=None, device='cpu'):
    """SimpleNamespace(cfg, params, data, task, pairs, **parts) of `run`, with ${run.*}
    filled in (run.cfg too). `parts`: {name: function of the config} for the engine's other
    sections; `check_settings(params)`: what the engine itself supports of trainer_params."""
    cfg = run.cfg
    params = cfg.get('trainer_params') or {}
    mistakes, data, task, pairs, built = utils.Mistakes(), None, None, [], {}
    with run.blamed():
        with mistakes.part():  # every key and type, with Lightning's meaning (utils/types.py)
            utils.check_trainer_params(params, own=('nan_policy', 'tf32'))
            utils.check_nan_policy(params.get('nan_policy', 'stop'))
            if check_settings:
                check_settings(params)
        with mistakes.part(), utils.at_key('data_module'):
            data = datasets.make(cfg['data_module'])
        if data is not None and utils.uses_run_values(cfg):
            with mistakes.part():  # ${run.total_steps}: known once the data is
                cfg, _ = optim.with_run_lengths(cfg, data, world_size)
                run.cfg = cfg
        # a resumed run's weights come from its checkpoint: no `init_from` (that run may be gone)
        spec = utils.without_init_from(cfg['train_wrapper']) if run.ckpt else cfg['train_wrapper']
        with mistakes.part(), utils.at_key('train_wrapper'):
            check_task(spec)
        for name, make in (parts or {}).items():
            built[name] = None
            with mistakes.part():
                built[name] = make(cfg)
        mistakes.raise_them()  # round 1: before the task's imports

        with mistakes.part(), utils.at_key('train_wrapper'):
            task = make_task(spec, checked=True).to(device)
        if task is not None:
            with mistakes.part():
                pairs = optimizers_of(task, params)  # a dry run: bad names fail now
                if run.ckpt:  # another model's checkpoint or config: refused before any write
                    utils.check_resumable(task, pairs, utils.load_checkpoint(run.ckpt),
                                          f'--resume {run.ckpt}')
        mistakes.raise_them()
        data.setup()  # the splits: their sizes are checked before the run folder exists
        check_fits(task, data, device)
        check_limits(data, params, world_size, task.validates)
    optim.check_lengths([s for _, s in pairs if s], optim.run_lengths(
        data.train_batches(world_size), params), utils.is_rank_zero())
    return SimpleNamespace(cfg=cfg, params=params, data=data, task=task, pairs=pairs, **built)


def check_limits(data, params, world_size, validates):
    """A fraction in limit_*_batches that leaves a split no batch (0.5 of 1 batch): Lightning
    refuses it once training has begun, and a plain loop would run without that split."""
    for split in ('train', 'val', 'test') if validates else ('train',):
        limit = params.get(f'limit_{split}_batches')
        if not isinstance(limit, float) or limit == 0:
            continue
        batches = data.batches(split, world_size)
        if batches and optim.limit_batches(batches, limit) == 0:
            raise utils.ConfigError(f'{limit} of the {batches} {split} batches an epoch is none: '
                                    f'give a larger fraction, or a count',
                                    key=f'trainer_params.limit_{split}_batches')
