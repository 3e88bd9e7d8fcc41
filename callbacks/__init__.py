"""Lightning callbacks, for train_pl.py: `@callbacks.register('name')`, or a dotted path in the
config's `callbacks:` list (`pytorch_lightning.callbacks.StochasticWeightAveraging`).

The run-safety ones are thin wrappers of plain modules in utils/ that train.py calls itself
(eta, early_stopping, metrics_csv, run_state, checkpoints). A callback whose __init__ takes
`run_dir` gets the run folder from the entrypoint (None when nothing is written, under
--check). A new file here registers its callbacks once it is imported: add its name to the
import line at the bottom of this file.

    callbacks:
      - {name: early_stopping, args: {monitor: val/acc, mode: max, patience: 5}}
      - {name: lr_monitor, args: {logging_interval: epoch}}
"""
import utils

registry = utils.Registry('callbacks', folder=__path__[0])
register, make, list = registry.register, registry.make, registry.list


def logged(trainer):
    """{name: float} of what the run has logged so far; val/* only in an epoch whose
    validation ran (Lightning keeps the last ones: check_val_every_n_epoch > 1)."""
    fresh = getattr(trainer.lightning_module, 'validated_epoch', None) == trainer.current_epoch
    return {k: v.item() for k, v in trainer.callback_metrics.items()
            if v.numel() == 1 and (fresh or not k.startswith('val/'))}


def cut_by_max_steps(trainer):
    """In on_train_epoch_end: max_steps ended the run before the epoch's last batch. As in
    train.py, its checkpoint is that batch's (Checkpoints saved it there: a resume with a higher
    limit goes on from it), and the epoch gets no end: no epoch line, row or epoch checkpoint."""
    done = trainer.fit_loop.epoch_loop.batch_idx + 1
    return utils.steps_reached(trainer.global_step, trainer.max_steps) and \
        done < trainer.num_training_batches


from . import (checkpoints, dry_run, early_stopping, eta, image_logger, lr_monitor,  # noqa: E402
               metrics_csv, run_state, schedules)
