"""A task of a user's own, by dotted path: `train_wrapper: {name: tests.tasks.NaNAt, ...}`."""
import torch

import models


class NaNAt(models.Classification):
    """Classification whose own training_step (as a variation would override it) gives a NaN
    loss at its `nan_at`-th call (counted from 1)."""

    def __init__(self, nan_at, **args):
        super().__init__(**args)
        self.nan_at, self.calls = nan_at, 0

    def training_step(self, batch):
        x, y = batch
        self.calls += 1
        loss = self.loss_fn(self(x), y) + 0.0 * self(x).sum()
        return loss * float('nan') if self.calls == self.nan_at else loss


class GANNaNAt(models.wrappers.get('gan')):
    """The GAN with its own training_step whose discriminator loss is NaN at call `nan_at`."""

    def __init__(self, nan_at, **args):
        super().__init__(**args)
        self.nan_at, self.calls = nan_at, 0

    def training_step(self, batch):
        self.calls += torch.is_grad_enabled()  # not the dry step before the run (check_fits)
        losses = super().training_step(batch)
        d_loss = next(losses)
        yield d_loss * float('nan') if self.calls == self.nan_at else d_loss
        yield next(losses)


def finite(state_dict):
    return all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())


class LrRecorder(models.Classification):
    """Classification that appends the lr of its optimizer's first group at every training
    step (each micro-batch of an accumulation) to the file `record`, one number a line."""

    def __init__(self, record, **args):
        super().__init__(**args)
        self.record, self.optimizer = record, None

    def configure_optimizers(self):
        pairs = super().configure_optimizers()
        self.optimizer = pairs[0][0]  # the engine's: the last one made
        return pairs

    def training_step(self, batch):
        if torch.is_grad_enabled():
            with open(self.record, 'a') as f:
                f.write(f"{self.optimizer.param_groups[0]['lr']!r}\n")
        return super().training_step(batch)
