"""Train a config with the Lightning Trainer.

    python train_pl.py --config configs/digits.yaml [--name NAME] [--gpu 0,1] [KEY=VALUE ...]
    python train_pl.py --resume save/NAME [trainer_params.max_epochs=40]

The run lives in save/NAME/: config.yaml, src/, ckpt/, TensorBoard events and log.txt. The
task (models/task.py) is driven through one LightningModule adapter (models/lightning.py);
the run's guards are the plain modules of utils/ that train.py calls, as callbacks.
"""
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import loggers
import models
import utils
from models.build import build_run
from models.optim import limit_batches

# Lightning is imported once the config's data, task and trainer_params have been checked
# (main): a mistake there is reported in the time it takes to import torch.
utils.hide_upstream_warnings()


def make_callbacks(cfg, run, dry):
    """The config's callbacks (the ETA line on by default), then the run's guards."""
    import callbacks
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    specs = list(enumerate(cfg.get('callbacks') or []))  # the index names the key in errors
    if not any(isinstance(s, dict) and s.get('name') == 'eta' for _, s in specs):
        specs.insert(0, (None, {'name': 'eta'}))
    built = [callbacks.schedules.Schedules()]  # first: the others save the stepped state
    for i, spec in specs:
        with utils.at_key(f'callbacks.{i}'):
            # the run folder for those that write into it (None under --check)
            wants_run_dir = isinstance(spec, dict) and 'run_dir' in (
                utils.accepted_args(callbacks.registry.get(spec.get('name'))) or {})
            extra = {'run_dir': run.dir} if wants_run_dir else None
            try:
                built.append(callbacks.make(spec, args=extra))
            except MisconfigurationException as e:  # Lightning's callbacks check their arguments
                raise utils.ConfigError(str(e).splitlines()[0], key='args') from None
    # Checkpoints first: a stop on an epoch's last batch comes after the epoch's checkpoint
    built.append(callbacks.checkpoints.Checkpoints(
        utils.CheckpointPolicy.from_config(cfg, run.dir / 'ckpt')))
    built.append(callbacks.make('run_state', args={
        'last_path': None if dry else run.dir / 'ckpt' / 'last.ckpt',  # --check saves none
        'on_start': run.write_config if run.resuming and not dry else None}))
    return built


# --check: the run as configured, for one train and one val batch
DRY_RUN = dict(max_epochs=1, max_steps=-1, limit_train_batches=1, limit_val_batches=1,
               num_sanity_val_steps=0, check_val_every_n_epoch=1, log_every_n_steps=1,
               enable_progress_bar=False, enable_model_summary=False)


def make_trainer(run, callback_list, module, trackers, dry=False):
    import pytorch_lightning as pl
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    from callbacks.checkpoints import AtomicCheckpointIO
    params = dict(run.cfg.get('trainer_params') or {})
    for key, instead in (('callbacks', 'the callbacks: section'),
                         ('default_root_dir', '--save-dir and --name')):
        if key in params:  # runyard passes them to pl.Trainer itself
            raise utils.ConfigError(f'set by train_pl.py; use {instead}',
                                    key=f'trainer_params.{key}')
    params.pop('nan_policy', None)  # runyard's, the adapter's
    utils.set_tf32(params.pop('tf32', None))  # runyard's: TF32 matmuls
    # the loaders shard themselves by rank, resumably (datasets/base.py); the checkpoint
    # policy is runyard's (utils/checkpoints.py), not ModelCheckpoint
    params.update(use_distributed_sampler=False, enable_checkpointing=False)
    params.setdefault('plugins', [AtomicCheckpointIO()])
    if not sys.stdout.isatty():  # a log file or a pipe: the ETA line says it once an epoch
        params.setdefault('enable_progress_bar', False)
    if dry:
        params.update(DRY_RUN)
    if not module.task.validates:
        params.update(limit_val_batches=0, num_sanity_val_steps=0)
    if run.gpus:
        params.update(accelerator='gpu', devices=run.gpus)
    else:
        params.setdefault('accelerator', 'cpu')
        params.setdefault('devices', 1)
    if utils.launcher():  # torchrun or srun started the processes: Lightning joins them
        per_node, nodes = utils.launcher()
        if not run.gpus:
            params['devices'] = per_node
        params['num_nodes'] = nodes
        if 'SLURM_NTASKS' in os.environ and 'LOCAL_WORLD_SIZE' not in os.environ:
            # SIGTERM/SIGUSR1 are RunState's (save, exit; --resume auto continues), not
            # Lightning's own requeue
            params['plugins'] = [*params['plugins'], SLURMEnvironment(auto_requeue=False)]
    devices = params['devices']  # a list of ids, a count (-1: all) or 'auto'
    one_process = (len(devices) if isinstance(devices, list) else devices) in (1, 'auto') and \
        params.get('num_nodes', 1) == 1
    if not one_process:
        # DDP fails on parameters that a backward pass leaves unused, as each of a GAN's
        # steps leaves the other network's
        params.setdefault('strategy', 'ddp' if module.automatic_optimization
                          else 'ddp_find_unused_parameters_true')
    params['logger'] = loggers.lightning(trackers, run.dir, run.resuming and not dry)
    try:
        trainer = pl.Trainer(callbacks=callback_list, default_root_dir=str(run.dir), **params)
    except (MisconfigurationException, ValueError, TypeError) as e:
        message = str(e).splitlines()[0]
        given = run.cfg.get('trainer_params') or {}  # the one the message names, if it does
        named = [k for k in given if re.search(rf'\b{re.escape(k)}\b', message)]
        key = f'trainer_params.{named[0]}' if len(named) == 1 else 'trainer_params'
        raise utils.ConfigError(message, key=key) from None
    if one_process and not run.gpus and not utils.launcher():
        utils.cpu_cuda_check()  # one CPU process: not NVML's, once a step
    # With max_steps set, Lightning takes a checkpoint of an epoch's end for one within that
    # epoch, and a resume runs it again with no batch: an empty epoch line, the next epoch's
    # steps shifted (Lightning-AI/pytorch-lightning#19617). Its epoch-based rule is right for
    # every checkpoint runyard writes: an epoch not finished is still resumed mid-epoch.
    trainer.fit_loop._iteration_based_training = lambda: False
    return trainer


def world_size(run, params):
    """How many processes the Trainer will run: torchrun's or srun's, else the devices."""
    if utils.launcher():
        per_node, nodes = utils.launcher()
        return per_node * nodes
    devices = run.gpus or params.get('devices', 1)
    return len(devices) if isinstance(devices, list) else devices if isinstance(devices, int) \
        and devices > 0 else 1


def build(run, extra_callbacks, dry=False):
    """The data, the task in its adapter and the Trainer, all before the run folder exists,
    so that a config mistake leaves no trace: models/build.py checks the config in two rounds
    before Lightning is imported, then the callbacks and the Trainer's own checks run."""
    b = build_run(run, world_size(run, run.cfg.get('trainer_params') or {}), parts={
        'checkpoint': lambda cfg: utils.CheckpointPolicy.from_config(cfg, run.dir / 'ckpt'),
        'trackers': lambda cfg: loggers.from_config(cfg, dry)})
    cfg, params, task, trackers = b.cfg, b.params, b.task, b.trackers
    every = params.get('val_check_interval')
    if isinstance(every, int) and not isinstance(every, bool):  # Lightning finds out in fit
        batches = limit_batches(b.data.train_batches(world_size(run, params)),
                                params.get('limit_train_batches'))
        if every > batches:
            raise utils.ConfigError(f'validates every {every} train batches, but an epoch has '
                                    f'{batches}', key='trainer_params.val_check_interval')
    with run.blamed():
        from models.lightning import TaskModule  # imports Lightning
        module = TaskModule(utils.without_init_from(cfg['train_wrapper']),
                            params.get('nan_policy', 'stop'), task=task)
        module.schedules = [s for _, s in b.pairs if s]  # the fit's own replace them
        callback_list = make_callbacks(cfg, run, dry) + list(extra_callbacks)
        trainer = make_trainer(run, callback_list, module, trackers, dry)
    return b.data, module, trainer


def best_checkpoint(trainer):
    """The best checkpoint by the checkpoint: section's monitor (None: none monitored)."""
    import callbacks
    policy = next(c.policy for c in trainer.callbacks
                  if isinstance(c, callbacks.checkpoints.Checkpoints))
    return policy.best_path if policy.monitor else None


def check(run, extra_callbacks=()):
    """--check: the run as configured, its callbacks and logger included, for one train and
    one val batch, in a temporary run folder that is removed after; every monitored name is
    checked against what they logged. Then a summary. save/ is not touched."""
    from callbacks.dry_run import CheckMonitors
    from callbacks.run_state import Interrupted
    from datasets.lightning import LightningData
    with tempfile.TemporaryDirectory(prefix='runyard-check-') as tmp:
        run.dir = Path(tmp) / run.dir.name
        run.dir.mkdir()
        data, module, trainer = build(run, [CheckMonitors(run.cfg), *extra_callbacks], dry=True)
        batches = {'train': next(iter(data.train_dataloader()))}
        if module.task.validates and len(data.splits['val']):
            batches['val'] = next(iter(data.val_dataloader()))
        try:
            with run.blamed():
                trainer.fit(module, datamodule=LightningData(data, run.cfg['seed']))
        except Interrupted as e:  # Ctrl-C: RunState stopped at the step; nothing was written
            utils.run.interrupted_check(e.signum, None)
        finally:
            utils.wait_for_writes()  # the checkpoint files of the folder about to be removed
    losses = {k: v.item() for k, v in trainer.callback_metrics.items()
              if k.endswith('loss') and v.numel() == 1}
    parts = {'optimizers': ', '.join(type(o).__name__ for o in trainer.optimizers),
             'param groups': models.optim.describe_groups(module.task, trainer.optimizers),
             'lr schedulers': ', '.join(type(c.scheduler).__name__
                                        for c in trainer.lr_scheduler_configs) or 'none',
             'callbacks': ', '.join(type(c).__name__ for c in trainer.callbacks),
             **utils.speed_settings(run.cfg)}
    utils.check_report(module.task, module.device, batches, losses, parts)


def main(argv, extra_callbacks=()):
    """`extra_callbacks`: callbacks from code, on top of the config's (tune.py's reporter)."""
    args, run = utils.start('train_pl.py', __doc__, argv)
    if run is None:  # --print-config, --explain: done
        return
    cfg = run.cfg
    # what pl.seed_everything(seed, workers=True) does, before Lightning is imported
    utils.seed_everything(cfg['seed'])
    os.environ.update(PL_GLOBAL_SEED=str(cfg['seed']), PL_SEED_WORKERS='1')
    if args.check:
        return check(run, extra_callbacks)
    data, module, trainer = build(run, extra_callbacks)
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from callbacks.run_state import Interrupted
    from datasets.lightning import LightningData

    if utils.is_rank_zero():
        if run.ckpt:
            state = utils.load_checkpoint(run.ckpt, mmap=True)
            if 'loops' not in state:  # train.py's: no state of Lightning's loops to go on from
                raise utils.ConfigError(f'--resume {run.ckpt}: not a train_pl.py checkpoint '
                                        '(train.py wrote it: continue it with train.py)')
            done = state['loops']['fit_loop']['epoch_progress']['current']['processed']
            for note in models.optim.resume_notes(run.saved_cfg, cfg, done, module.schedules):
                print(note, file=sys.stderr)
        run.create(write_config=not run.resuming)
    if trainer.is_global_zero:
        loggers.start_lightning(loggers.from_config(cfg), trainer.loggers, run.dir, cfg,
                                module.task.summary_metrics(), run.resuming)
    def stopped(signum, epoch):
        utils.wait_for_writes()  # the checkpoint just saved is on disk before the message
        message = utils.stopped_message(signum, epoch, trainer.global_step, 'train_pl.py',
                                        run.dir)
        if trainer.is_global_zero:
            print(message, file=sys.stderr)
            run.log(message)
            # Lightning finalized its loggers as failed; MLflow's run says KILLED instead
            loggers.stop_lightning(loggers.from_config(cfg), trainer.loggers)
        utils.leave_group()
        sys.exit(128 + signum)

    try:
        try:
            trainer.fit(module, datamodule=LightningData(data, cfg['seed']), ckpt_path=run.ckpt,
                        weights_only=True)
        except Interrupted as e:
            stopped(e.signum, trainer.current_epoch + 1)
        if cfg.get('test', True) and module.task.validates:
            utils.wait_for_writes()  # on rank 0 (utils/writer.py), then every rank may read them
            trainer.strategy.barrier('checkpoints written')
            tested, step = best_checkpoint(trainer), trainer.global_step
            if tested:
                step = utils.load_checkpoint(tested, mmap=True)['global_step']
            try:
                trainer.test(module, datamodule=LightningData(data, cfg['seed']),
                             ckpt_path=tested, weights_only=True)
            except SIGTERMException:  # Lightning's handler has the test: a SystemExit, status 0
                stopped(signal.SIGTERM, trainer.current_epoch)  # --resume tests it
            if trainer.is_global_zero:
                run.log(utils.tested_line(tested, step))  # where plot.py puts the test point
    except BaseException:
        if trainer.is_global_zero:  # a resume that saved nothing keeps its config.yaml
            run.undo_config()
        raise
    utils.wait_for_writes()
    if trainer.is_global_zero:
        loggers.close_lightning(loggers.from_config(cfg), trainer.loggers)
        run.announce()
    utils.leave_group()


if __name__ == '__main__':
    utils.run_entrypoint(main)
