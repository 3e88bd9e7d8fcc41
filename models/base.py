import sys

import pytorch_lightning as pl
import torch
from torchmetrics.classification import MulticlassAccuracy

import losses
import models
import utils
from models.optim import make_optimizer, make_scheduler


@models.wrappers.register('base')
class BaseWrapper(pl.LightningModule):
    """Supervised classification: a model, a loss, an optimizer and an optional lr scheduler,
    each from its spec. Logs train/loss, val/loss, val/acc, test/loss, test/acc.

    Subclass it and override a step (or configure_optimizers) for a variation; register the
    subclass under a new name and set `train_wrapper.name` to it.
    """
    skip_nonfinite_loss = False  # set by `trainer_params.nan_policy: skip`
    hparam_metrics = models.CLASSIFICATION_METRICS  # beside the config in TensorBoard's HParams


    def __init__(self, model_spec, loss_spec, optim_spec, sched_spec=None, num_classes=None):
        super().__init__()
        # Stored in every checkpoint: load_from_checkpoint(path) rebuilds without the YAML.
        self.save_hyperparameters()
        with utils.at_key('model_spec'):
            self.model = models.make(model_spec)
        with utils.at_key('loss_spec'):
            self.loss_fn = losses.make(loss_spec)
        num_classes = num_classes or (model_spec.get('args') or {}).get('num_classes')
        if not isinstance(num_classes, int):
            raise utils.ConfigError('must be set (an int) when model_spec.args has no '
                                    'num_classes', key='num_classes')
        self.val_acc = MulticlassAccuracy(num_classes, average='micro')
        self.test_acc = MulticlassAccuracy(num_classes, average='micro')

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        if self.skip_nonfinite_loss and not torch.isfinite(loss):
            print(f'warning: skipped batch {batch_idx} of epoch {self.current_epoch + 1}: the '
                  f'loss is {loss.item()}', file=sys.stderr)
            return None  # Lightning skips the batch's backward and update (it counts the step)
        # Only where the Trainer writes logs, and at the epoch's last batch (the ETA line shows
        # it): each self.log call costs about 0.8 ms of Python, as much as a small model's
        # whole step (benchmarks/RESULTS.md).
        trainer = self.trainer
        if (self.global_step + 1) % trainer.log_every_n_steps == 0 or \
                batch_idx + 1 == trainer.num_training_batches:
            self.log('train/loss', loss, prog_bar=True, batch_size=len(y))
        return loss

    def evaluate(self, batch, split, accuracy):
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        accuracy(logits, y)
        self.log(f'{split}/loss', loss, prog_bar=True, sync_dist=True, batch_size=len(y))
        self.log(f'{split}/acc', accuracy, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        return self.evaluate(batch, 'val', self.val_acc)

    def test_step(self, batch, batch_idx):
        return self.evaluate(batch, 'test', self.test_acc)

    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self):
        with utils.at_key('optim_spec'):
            optimizer = make_optimizer(self.hparams.optim_spec, self.parameters())
        if not self.hparams.sched_spec:
            return optimizer
        with utils.at_key('sched_spec'):
            scheduler = make_scheduler(self.hparams.sched_spec, optimizer)
        return {'optimizer': optimizer, 'lr_scheduler': scheduler}
