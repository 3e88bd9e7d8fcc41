"""Train a config with the Lightning Trainer.

    python train_pl.py --config configs/digits.yaml [--name NAME] [--gpu 0,1] [KEY=VALUE ...]
    python train_pl.py --resume save/NAME [trainer_params.max_epochs=40]

The run lives in save/NAME/: config.yaml, src/, ckpt/, TensorBoard events and log.txt.
"""
import sys
from pathlib import Path

import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities.model_helpers import is_overridden

import callbacks
import datasets
import models
import utils
from callbacks.run_state import Interrupted
from datasets.lightning import LightningData

utils.hide_upstream_warnings()


def make_callbacks(cfg, run, save):
    specs = list(enumerate(cfg.get('callbacks') or []))  # the index names the key in errors
    if not any(isinstance(s, dict) and s.get('name') == 'eta' for _, s in specs):
        specs.insert(0, (None, {'name': 'eta'}))  # the ETA line is on by default
    built = []
    for i, spec in specs:
        with utils.at_key(f'callbacks.{i}'):
            # the run folder for those that write into it (None under --check)
            wants_run_dir = isinstance(spec, dict) and 'run_dir' in (
                utils.accepted_args(callbacks.registry.get(spec.get('name'))) or {})
            extra = {'run_dir': run.dir if save else None} if wants_run_dir else None
            try:
                built.append(callbacks.make(spec, args=extra))
            except MisconfigurationException as e:  # Lightning's callbacks check their arguments
                raise utils.ConfigError(str(e).splitlines()[0], key='args') from None
    # RNG states in checkpoints, stop signals, the NaN guard: always on
    nan_policy = (cfg.get('trainer_params') or {}).get('nan_policy', 'stop')
    with utils.at_key('trainer_params'):
        built.append(callbacks.make('run_state', args={
            'last_path': run.dir / 'ckpt' / 'last.ckpt' if save else None,
            'nan_policy': nan_policy}))
    return built


class TopKAndLast(ModelCheckpoint):
    """ModelCheckpoint whose every top-k file becomes last.ckpt too, as a hard link, in the
    same moment: the same state, written once. `linked_step` tells RunState, which writes
    last.ckpt in the other epochs."""
    linked_step = None

    @property
    def state_key(self):  # ModelCheckpoint's: test.py and earlier runs' resumes find its state
        return super().state_key.replace(type(self).__qualname__, 'ModelCheckpoint', 1)

    def _save_checkpoint(self, trainer, filepath):
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            utils.atomic_link(filepath, Path(self.dirpath) / 'last.ckpt')
        self.linked_step = trainer.global_step  # on every rank: they decide alike


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed into place: never half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        utils.atomic_save(checkpoint, path)


def check_manual_optimization(wrapper, params):
    """A wrapper that steps its optimizers itself (the GAN) takes no Trainer settings that
    act on the optimizer step: it would be refused mid-run, or ignored."""
    if wrapper.automatic_optimization:
        return
    name = type(wrapper).__name__
    for key, neutral in (('gradient_clip_val', None), ('accumulate_grad_batches', 1),
                         ('nan_policy', 'stop')):
        if params.get(key, neutral) not in (neutral, 0):
            raise utils.ConfigError(f'{name} steps its optimizers itself (manual optimization), '
                                    f'so it cannot honour {key}: {params[key]!r}; do it in its '
                                    'training_step', key=f'trainer_params.{key}')


def make_trainer(run, callback_list, save, wrapper):
    cfg = run.cfg
    params = dict(cfg.get('trainer_params') or {})
    check_manual_optimization(wrapper, params)
    params.pop('nan_policy', None)  # runyard's, read by RunState
    utils.set_tf32(params.pop('tf32', None))  # runyard's: TF32 matmuls
    # the loaders shard themselves by rank, resumably (datasets/base.py)
    params.setdefault('use_distributed_sampler', False)
    params.setdefault('plugins', [AtomicCheckpointIO()])
    if run.gpus:
        params.update(accelerator='gpu', devices=run.gpus)
    else:
        params.setdefault('accelerator', 'cpu')
        params.setdefault('devices', 1)
    devices = params['devices']  # a list of ids, a count (-1: all) or 'auto'
    if (len(devices) if isinstance(devices, list) else devices) not in (1, 'auto'):
        # DDP fails on parameters that a backward pass leaves unused, as each of a GAN's two
        # steps leaves the other network's
        params.setdefault('strategy', 'ddp' if wrapper.automatic_optimization
                          else 'ddp_find_unused_parameters_true')
    with utils.at_key('trainer_params'):
        utils.check_args(pl.Trainer, params, 'pl.Trainer', prefix='')
    if save:
        checkpoint = dict(cfg.get('checkpoint') or {})
        with utils.at_key('checkpoint'):
            utils.check_args(ModelCheckpoint, checkpoint, 'ModelCheckpoint', prefix='')
        checkpoint.update(dirpath=str(run.dir / 'ckpt'), save_last=False,
                          enable_version_counter=False)
        every_n_steps = checkpoint.pop('every_n_train_steps', 0)
        callback_list = callback_list + [TopKAndLast(**checkpoint)]
        if every_n_steps:
            # last.ckpt within the epoch too, whatever the first one monitors: a mid-epoch
            # resume point (Lightning's every_n_train_steps alone would also drop the
            # end-of-epoch saves, and save nothing before `monitor` has a value); no
            # last-v1.ckpt beside RunState's
            callback_list.append(ModelCheckpoint(dirpath=str(run.dir / 'ckpt'), save_last=True,
                                                 save_top_k=0, every_n_train_steps=every_n_steps,
                                                 enable_version_counter=False))
        # version='' puts the event files in the run folder itself: one TensorBoard run per
        # run folder, continued on --resume.
        params['logger'] = TensorBoardLogger(str(run.dir), name='', version='',
                                             default_hp_metric=False)
    else:
        params.update(logger=False, enable_checkpointing=False)
    try:
        return pl.Trainer(callbacks=callback_list, default_root_dir=str(run.dir), **params)
    except (MisconfigurationException, ValueError) as e:
        raise utils.ConfigError(str(e).splitlines()[0], key='trainer_params') from None


def check(wrapper, data, trainer, run):
    """--check: one train and one val batch (if the wrapper validates) through Lightning
    (fast_dev_run), then a summary."""
    batches = {'train': next(iter(data.train_dataloader()))}
    if is_overridden('validation_step', wrapper) and len(data.splits['val']):
        batches['val'] = next(iter(data.val_dataloader()))
    trainer.fit(wrapper, datamodule=LightningData(data, run.cfg['seed']))
    losses = {k: v.item() for k, v in trainer.callback_metrics.items()
              if k.endswith('loss') and v.numel() == 1}
    parts = {'optimizers': ', '.join(type(o).__name__ for o in trainer.optimizers),
             'lr schedulers': ', '.join(type(c.scheduler).__name__
                                        for c in trainer.lr_scheduler_configs) or 'none',
             'callbacks': ', '.join(type(c).__name__ for c in trainer.callbacks),
             **utils.speed_settings(run.cfg)}
    utils.check_report(wrapper, wrapper.device, batches, losses, parts)


def main(argv, extra_callbacks=()):
    """`extra_callbacks`: callbacks from code, on top of the config's (tune.py's reporter)."""
    args, run = utils.start('train_pl.py', __doc__, argv)
    if run is None:  # --print-config, --explain: done
        return
    cfg = run.cfg
    save = not args.check
    pl.seed_everything(cfg['seed'], workers=True, verbose=False)

    # Build everything before the run folder exists, so a config mistake leaves no trace.
    with utils.at_key(None, file=run.config_path):
        with utils.at_key('data_module'):
            data = datasets.make(cfg['data_module'])
        with utils.at_key('train_wrapper'):
            # a resumed run's weights come from its checkpoint: no `init_from` (that run may be gone)
            wrapper = models.wrappers.make(utils.without_init_from(cfg['train_wrapper'])
                                           if run.ckpt else cfg['train_wrapper'])
            with utils.at_key('args'):
                wrapper.configure_optimizers()  # a dry run: bad optimizer names fail now
        data.setup()  # the splits: their sizes are checked before the run folder exists
        callback_list = make_callbacks(cfg, run, save) + list(extra_callbacks)
        if args.check:
            cfg.setdefault('trainer_params', {}).update(fast_dev_run=True,
                                                        enable_progress_bar=False)
        trainer = make_trainer(run, callback_list, save, wrapper)
    if args.check:
        return check(wrapper, data, trainer, run)

    if utils.is_rank_zero():
        run.create()
    if trainer.is_global_zero and not run.resuming:
        utils.write_hparams(trainer.logger.experiment, cfg,
                            getattr(wrapper, 'hparam_metrics', ()))
    try:
        trainer.fit(wrapper, datamodule=LightningData(data, cfg['seed']), ckpt_path=run.ckpt)
    except Interrupted as e:
        message = (f'stopped by {e} at epoch {trainer.current_epoch + 1}, step '
                   f'{trainer.global_step}; continue with: python train_pl.py --resume {run.dir}')
        if trainer.is_global_zero:
            print(message, file=sys.stderr)
            run.log(message)
        sys.exit(128 + e.signum)
    if cfg.get('test', True) and is_overridden('test_step', wrapper):
        monitored = bool((cfg.get('checkpoint') or {}).get('monitor'))
        trainer.test(wrapper, datamodule=LightningData(data, cfg['seed']),
                     ckpt_path='best' if monitored else None)
    if trainer.is_global_zero:
        run.announce()


if __name__ == '__main__':
    utils.run_cli(main, sys.argv[1:])
