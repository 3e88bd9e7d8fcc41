"""Train a config with the Lightning Trainer.

    python train_pl.py --config configs/digits.yaml [--name NAME] [--gpu 0,1] [KEY=VALUE ...]
    python train_pl.py --resume save/NAME [trainer_params.max_epochs=40]

The run lives in save/NAME/: config.yaml, src/, ckpt/, TensorBoard events and log.txt.
"""
import sys

import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

import callbacks
import datasets
import models
import utils
from datasets.lightning import LightningData


def make_callbacks(cfg, log_path):
    specs = list(cfg.get('callbacks') or [])
    if not any(isinstance(s, dict) and s.get('name') == 'eta' for s in specs):
        specs.insert(0, {'name': 'eta'})  # the ETA line is on by default
    built = []
    for i, spec in enumerate(specs):
        with utils.at_key(f'callbacks.{i}'):
            extra = {'log_path': log_path} if isinstance(spec, dict) and spec.get('name') == 'eta' \
                else None
            built.append(callbacks.make(spec, args=extra))
    return built


def make_trainer(run, callback_list, save):
    cfg = run.cfg
    params = dict(cfg.get('trainer_params') or {})
    if run.gpus:
        params.update(accelerator='gpu', devices=run.gpus)
        params.setdefault('strategy', 'ddp' if len(run.gpus) > 1 else 'auto')
    else:
        params.setdefault('accelerator', 'cpu')
        params.setdefault('devices', 1)
    with utils.at_key('trainer_params'):
        utils.check_args(pl.Trainer, params, 'pl.Trainer', prefix='')
    if save:
        checkpoint = dict(cfg.get('checkpoint') or {})
        with utils.at_key('checkpoint'):
            utils.check_args(ModelCheckpoint, checkpoint, 'ModelCheckpoint', prefix='')
        checkpoint.update(dirpath=str(run.dir / 'ckpt'), save_last=True)
        callback_list = callback_list + [ModelCheckpoint(**checkpoint)]
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


def check(wrapper, data, trainer):
    """--check: one train and one val batch through Lightning (fast_dev_run), then a summary."""
    batches = {'train': next(iter(data.train_dataloader())),
               'val': next(iter(data.val_dataloader()))}
    trainer.fit(wrapper, datamodule=LightningData(data))
    losses = {k: v.item() for k, v in trainer.callback_metrics.items()
              if k.endswith('loss') and v.numel() == 1}
    parts = {'optimizers': ', '.join(type(o).__name__ for o in trainer.optimizers),
             'lr schedulers': ', '.join(type(c.scheduler).__name__
                                        for c in trainer.lr_scheduler_configs) or 'none',
             'callbacks': ', '.join(type(c).__name__ for c in trainer.callbacks)}
    utils.check_report(wrapper, wrapper.device, batches, losses, parts)


def main(argv):
    args = utils.parser(__doc__.splitlines()[0]).parse_intermixed_args(argv)
    run = utils.Run(args, argv, 'train_pl.py')
    if args.print_config or args.explain:
        return run.print_config(args.explain)
    cfg = run.cfg
    save = not args.check
    pl.seed_everything(cfg['seed'], workers=True, verbose=False)

    # Build everything before the run folder exists, so a config mistake leaves no trace.
    with utils.at_key(None, file=run.config_path):
        with utils.at_key('data_module'):
            data = datasets.make(cfg['data_module'])
        with utils.at_key('train_wrapper'):
            wrapper = models.wrappers.make(cfg['train_wrapper'])
            with utils.at_key('args'):
                wrapper.configure_optimizers()  # a dry run: bad optimizer names fail now
        log_path = run.dir / 'log.txt' if save else None
        callback_list = make_callbacks(cfg, log_path)
        if args.check:
            cfg.setdefault('trainer_params', {}).update(fast_dev_run=True,
                                                        enable_progress_bar=False)
        trainer = make_trainer(run, callback_list, save)
    if args.check:
        return check(wrapper, data, trainer)

    if utils.is_rank_zero():
        run.create()
    trainer.fit(wrapper, datamodule=LightningData(data), ckpt_path=run.ckpt)
    if cfg.get('test', True):
        monitored = bool((cfg.get('checkpoint') or {}).get('monitor'))
        trainer.test(wrapper, datamodule=LightningData(data),
                     ckpt_path='best' if monitored else None)
    if trainer.is_global_zero:
        run.announce()


if __name__ == '__main__':
    utils.run_cli(main, sys.argv[1:])
