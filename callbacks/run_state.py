"""What lets a Lightning run survive being stopped (train_pl.py adds it to every run):

- every checkpoint carries each rank's Python, NumPy and torch RNG states, restored on
  resume right before the first batch, so the random stream continues where it stopped;
- SIGTERM, SIGUSR1 (what SLURM and cloud schedulers send before a kill) and SIGINT (Ctrl-C)
  save last.ckpt at the next step boundary, on every rank together, then stop the run;
- last.ckpt is written at the end of every epoch, improving or not;
- a NaN or Inf loss stops the run before its backward pass (`nan_policy: stop`), keeping the
  last good checkpoint; with `nan_policy: skip` BaseWrapper skips the batch instead.
"""
import signal
import threading

import pytorch_lightning as pl
import torch
import torch.distributed as dist

import callbacks
import utils


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def agreed(value, device):
    """The largest of `value` over all ranks (itself without DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    flag = torch.tensor([float(value)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag.item()


@callbacks.register('run_state')
class RunState(pl.Callback):
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, last_path=None, nan_policy='stop'):
        if nan_policy not in ('stop', 'skip'):
            raise utils.ConfigError(f"must be 'stop' or 'skip', but got {nan_policy!r}",
                                    key='nan_policy')
        self.last_path, self.nan_policy = last_path, nan_policy
        self.signum, self.pending_rng, self.previous = 0, None, {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        rngs = [utils.rng_state()]
        if dist.is_available() and dist.is_initialized():
            rngs = [None] * dist.get_world_size()
            dist.all_gather_object(rngs, utils.rng_state())
        checkpoint['rng'] = rngs
        if 'hyper_parameters' in checkpoint:  # its weights are in here: no need of that run
            checkpoint['hyper_parameters'] = utils.without_init_from(checkpoint['hyper_parameters'])

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        rngs = checkpoint.get('rng')
        self.pending_rng = rngs[trainer.global_rank] if rngs else None

    def setup(self, trainer, pl_module, stage):
        pl_module.skip_nonfinite_loss = self.nan_policy == 'skip'

    def on_train_start(self, trainer, pl_module):
        if self.pending_rng is not None:  # now: nothing else may draw before the first batch
            utils.set_rng_state(self.pending_rng)
            self.pending_rng = None
        if threading.current_thread() is threading.main_thread():  # not so in a Ray Tune trial
            self.previous = {s: signal.signal(s, self.note) for s in self.SIGNALS}

    def note(self, signum, frame):
        self.signum = signum

    def on_before_backward(self, trainer, pl_module, loss):
        if self.nan_policy == 'stop' and agreed(not torch.isfinite(loss), loss.device):
            raise utils.TrainingStopped(
                f'the loss is {loss.item()} at epoch {trainer.current_epoch + 1}, step '
                f'{trainer.global_step}; the run stopped and {self.last_path or "last.ckpt"} is '
                'the last good checkpoint')

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        signum = int(agreed(self.signum, pl_module.device))
        if signum:
            if self.last_path:
                trainer.save_checkpoint(self.last_path)
            raise Interrupted(signum)

    # last.ckpt at the end of every epoch, after its validation. train_pl.py's ModelCheckpoint
    # (TopKAndLast) links last.ckpt to each top-k file it saves; in Lightning 2.6 it would
    # rewrite last.ckpt only in those epochs, so a run whose metric stopped improving would
    # resume from its best epoch. This writes it in the others.
    def on_train_epoch_end(self, trainer, pl_module):
        if not self.last_path or trainer.sanity_checking:
            return
        if any(getattr(c, 'linked_step', None) == trainer.global_step
               for c in trainer.checkpoint_callbacks):
            return  # a top-k file of this very state was saved, and linked as last.ckpt
        trainer.save_checkpoint(self.last_path)

    def restore_signals(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def on_train_end(self, trainer, pl_module):
        self.restore_signals()

    def on_exception(self, trainer, pl_module, exception):
        self.restore_signals()
