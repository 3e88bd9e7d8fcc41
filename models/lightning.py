"""Any task as a LightningModule, for train_pl.py and test.py: the one adapter between a plain
task (models/task.py) and the Lightning Trainer. It does here, once, what the Trainer needs of
a module: automatic optimization for a task with one optimizer, manual for several; the NaN
policy on every loss (utils.LossChecks); logging (validation metrics are reduced across
ranks as sums and counts by models.Evaluation); the task's spec as the checkpoint's
hyper-parameters, so `TaskModule.load_from_checkpoint(path)` rebuilds it without the YAML.

A checkpoint's state_dict is the task's own (`model.net.0.weight`, as train.py writes it),
not the adapter's (`task.model.net.0.weight`): on_save_checkpoint and on_load_checkpoint,
Lightning's hooks for exactly this, move the prefix.
"""
import warnings

import pytorch_lightning as pl

import models
import utils
from models.task import batch_size, training_losses


# The epoch values are reduced over the ranks already (models.Evaluation), and the same on all:
# Lightning's advice to sync them again would average identical numbers.
warnings.filterwarnings('ignore', message=r'.*when logging on epoch level in distributed setting')


class TaskModule(pl.LightningModule):
    def __init__(self, spec, nan_policy='stop', task=None):
        super().__init__()
        # the checkpoint's; the trackers get the whole config instead (loggers/)
        self.save_hyperparameters(ignore=['task'], logger=False)
        self.task = task if task is not None else models.make_task(spec)
        self.checks = utils.LossChecks(nan_policy)  # read at log steps and before every save
        self.automatic_optimization = len(self.task.train_losses) == 1
        self.evaluation, self.validated_epoch, self.schedules = None, None, []

    def forward(self, x):
        return self.task(x)

    def __setattr__(self, name, value):
        # The Trainer sets _current_fx_name before and after each hook it calls, about 30
        # times a step, and nn.Module's __setattr__ looks for a parameter, buffer or submodule
        # of that name first: 4.6% of a digits epoch (benchmarks/RESULTS.md). It is none.
        if name == '_current_fx_name':
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def on_train_start(self):
        self.checks.last_path = self.trainer.default_root_dir + '/ckpt/last.ckpt'
        self.checks.master = self.trainer.is_global_zero

    def usable(self, loss, batch_idx):
        return self.checks.usable(loss, self.current_epoch + 1, self.global_step, batch_idx,
                                  read=self.log_step(batch_idx))

    def log_step(self, batch_idx):
        """Where the Trainer writes logs, and the epoch's last batch (the ETA line shows it)."""
        trainer = self.trainer
        # Lightning's own rule counts the batches that stepped, not the optimizer steps: a
        # GAN's two a batch would never meet an even log_every_n_steps
        done = self.global_step if self.automatic_optimization else \
            trainer.fit_loop.epoch_loop._batches_that_stepped
        return (done + 1) % trainer.log_every_n_steps == 0 or \
            batch_idx + 1 == trainer.num_training_batches

    def log_losses(self, losses, batch, batch_idx):
        # Only at log steps: each self.log call costs about 0.8 ms of Python, and reads the
        # device (benchmarks/RESULTS.md).
        if self.log_step(batch_idx):
            # averaged over the ranks: every rank ranks checkpoints and stops early by them
            self.log_dict({f'train/{name}': loss for name, loss in losses.items()},
                          prog_bar=True, batch_size=batch_size(batch), sync_dist=True)

    def training_step(self, batch, batch_idx):
        if self.automatic_optimization:
            name, loss = next(iter(training_losses(self.task, batch)))
            if not self.usable(loss, batch_idx):
                return None  # Lightning skips the batch's backward and update
            self.log_losses({name: loss}, batch, batch_idx)
            return loss
        optimizers, done = self.optimizers(), {}
        for (name, loss), optimizer in zip(training_losses(self.task, batch), optimizers):
            if not self.usable(loss, batch_idx):
                break  # this loss and the rest of the batch's: their optimizers do not step
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            done[name] = loss.detach()
        self.log_losses(done, batch, batch_idx)

    def on_train_epoch_end(self):
        if self.trainer.is_global_zero:
            writer = utils.tensorboard_writer(self.loggers)
            for write, made in ((utils.write_images, self.task.epoch_images()),
                                (utils.write_texts, self.task.epoch_texts())):
                if made:
                    write(made, writer, self.trainer.default_root_dir, self.current_epoch + 1)

    def configure_optimizers(self):
        pairs = self.task.configure_optimizers()
        self.schedules = [s for _, s in pairs if s]
        # Lightning keeps the schedulers' states in checkpoints; callbacks/schedules.py steps
        # them, with models.optim.step_schedulers, as train.py does
        configs = [{'optimizer': o, **({'lr_scheduler': {
            'scheduler': s['scheduler'], 'interval': s['interval'], 'frequency': s['frequency'],
            **({'reduce_on_plateau': False} if self.automatic_optimization else {})}}
            if s else {})} for o, s in pairs]
        return configs[0] if len(configs) == 1 else configs

    def lr_scheduler_step(self, scheduler, metric):
        pass  # callbacks/schedules.py steps them

    # validation and test: the task's steps, summed by models.Evaluation, logged at the end
    def evaluate(self, split, batch):
        if self.evaluation is None or self.evaluation.split != split:
            self.evaluation = models.Evaluation(self.task, split)
        self.evaluation.step(batch)

    def finish(self):
        values, self.evaluation = self.evaluation.compute() if self.evaluation else {}, None
        self.log_dict(values, prog_bar=True)  # already the same on every rank

    def validation_step(self, batch, batch_idx):
        self.evaluate('val', batch)

    def test_step(self, batch, batch_idx):
        self.evaluate('test', batch)

    def on_validation_epoch_end(self):
        self.finish()
        if not self.trainer.sanity_checking:
            self.validated_epoch = self.current_epoch  # the val/* logged are this epoch's

    def on_test_epoch_end(self):
        self.finish()

    def predict_step(self, batch, batch_idx):
        return models.ema.averaged(self.task).predict_step(
            batch[0] if isinstance(batch, (list, tuple)) else batch)

    def on_save_checkpoint(self, checkpoint):
        self.checks.read()  # a bad loss since the last read: the run stops, this is not saved
        checkpoint['state_dict'] = {k.removeprefix('task.'): v
                                    for k, v in checkpoint['state_dict'].items()}

    def on_load_checkpoint(self, checkpoint):
        checkpoint['state_dict'] = {f'task.{k}': v for k, v in checkpoint['state_dict'].items()}
