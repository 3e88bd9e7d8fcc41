import pytorch_lightning as pl
from pytorch_lightning.plugins.io import TorchCheckpointIO

import callbacks
import utils


@callbacks.register('checkpoints')
class Checkpoints(pl.Callback):
    """utils/checkpoints.py for Lightning (train_pl.py adds it to every run that saves): the
    files are written by trainer.save_checkpoint, through the atomic CheckpointIO."""

    def __init__(self, policy):
        self.policy, self.step = policy, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step = trainer.global_step

    def write(self, trainer):
        # the whole state (optimizers, callbacks) to resume from; saying so keeps Lightning's
        # "`weights_only` was not set" off the console at every save
        return lambda path: trainer.save_checkpoint(path, weights_only=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # only after an optimizer step: mid-accumulation, the gradients are not in the state
        stepped = trainer.global_step != self.step
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        due = self.policy.due_within_epoch(trainer.global_step) or \
            utils.steps_reached(trainer.global_step, trainer.max_steps)
        if stepped and due and not last_batch:
            self.policy.save_last(self.write(trainer), trainer.is_global_zero)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking and not callbacks.cut_by_max_steps(trainer):
            self.policy.end_of_epoch(trainer.current_epoch, trainer.global_step,
                                     callbacks.logged(trainer), self.write(trainer),
                                     trainer.is_global_zero)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint['checkpoints'] = self.policy.state_dict()  # where train.py keeps it too

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        if checkpoint.get('checkpoints'):
            self.policy.load_state_dict(checkpoint['checkpoints'])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed into place (never half a file), on
    utils/writer.py's thread."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        utils.atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        # tensors and plain containers only, whatever the caller asked: a checkpoint is data
        utils.wait_for_writes()  # one this process saved is whole on disk
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
