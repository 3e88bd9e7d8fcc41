"""The guards of a training run, in plain PyTorch for both engines (train.py calls them,
callbacks/run_state.py and models/lightning.py wrap them for Lightning):

- stop signals: SIGTERM and SIGUSR1 (what SLURM and cloud schedulers send before a kill) and
  SIGINT (Ctrl-C) are only noted; the engine saves last.ckpt at the next step and exits;
- the NaN/Inf policy: a loss that is not finite stops the run (`trainer_params.nan_policy:
  stop`, the default; last.ckpt stays the last good state) or skips the batch (`skip`);
- agreement: under DDP every rank takes the same decision, or the ranks would deadlock.

Neither reads the device at every step: a read waits for every queued kernel (an accelerator's
queue runs dry) and, under DDP, for an all-reduce. The engines read at their log steps
(`log_every_n_steps`), before every checkpoint and at a stop (LossChecks, StopSignals.agreed).
"""
import os
import contextlib
import signal
import sys
import threading

import torch
import torch.distributed as dist

from .errors import ConfigError, TrainingStopped

NAN_POLICIES = ('stop', 'skip')


def distributed():
    return dist.is_available() and dist.is_initialized()


def agreed(value, device):
    """The largest of `value` over all ranks (itself without DDP)."""
    if not distributed():
        return value
    flag = torch.tensor([float(value)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag.item()


def leave_group():
    """Under DDP: once every rank is here, leave the process group; the last thing a rank does
    before it exits. gloo lets go of a finished collective's tensors on its own worker thread,
    which takes the GIL to do it: a rank that went on to the interpreter's exit at once (every
    rank but 0, after the last all-gather) could abort there ("terminate called without an
    active exception"). In the barrier this thread waits without the GIL, so they finish first."""
    if distributed():
        dist.barrier()
        dist.destroy_process_group()


def join_launcher(gpus):
    """Under torchrun or srun, join the process group now, before anything that can fail on
    one rank only (a run folder missing on one node), so that every rank hears of it (see
    fail_together). gloo on the CPU, NCCL on GPUs. Under srun, RANK, LOCAL_RANK and WORLD_SIZE
    come from SLURM_*, and MASTER_ADDR and MASTER_PORT from the job script; without them the
    group waits for Lightning, which finds them itself."""
    env = os.environ
    if 'RANK' not in env and int(env.get('SLURM_NTASKS', 1)) > 1:
        env.update(RANK=env['SLURM_PROCID'], LOCAL_RANK=env['SLURM_LOCALID'],
                   WORLD_SIZE=env['SLURM_NTASKS'])
    if 'RANK' not in env or 'MASTER_ADDR' not in env or distributed():
        return
    if gpus:
        torch.cuda.set_device(gpus[int(env['LOCAL_RANK'])])
    dist.init_process_group(backend='nccl' if gpus else 'gloo')


def fail_together(error):
    """`error` (a ConfigError or None) on this rank, and under DDP on every rank: a rank whose
    start failed raises its own error; the others, one line that names it, instead of waiting
    for it forever."""
    if distributed():
        messages = [None] * dist.get_world_size()
        dist.all_gather_object(messages, None if error is None else str(error))
        failed = [(rank, m) for rank, m in enumerate(messages) if m is not None]
        if failed and error is None:
            rank, message = failed[0]
            error = ConfigError(f'rank {rank} cannot start: {message}')
    if error is not None:
        raise error


def check_nan_policy(policy):
    if policy not in NAN_POLICIES:
        raise ConfigError(f"must be 'stop' or 'skip', but got {policy!r}",
                          key='trainer_params.nan_policy')
    return policy


def loss_is_usable(loss, policy, epoch, step, batch, last_path, master=True):
    """True when `loss` may be backpropagated, read now (one host sync, and an all-reduce under
    DDP). A NaN or Inf loss (on any rank) is skipped (False) under `policy: skip`, and stops the
    run under `stop`. `epoch` counts from 1, `step` is the optimizer steps done, `batch` the
    batch's index in its epoch."""
    if not agreed(not torch.isfinite(loss).all(), loss.device):
        return True
    if policy == 'skip':
        if master:
            print(f'warning: skipped batch {batch} of epoch {epoch}: the loss is {loss.item()}',
                  file=sys.stderr)
        return False
    raise nan_stop(loss, epoch, step, last_path)


def nan_stop(loss, epoch, step, last_path):
    from . import writer
    writer.settle()  # a save on its way is one
    if last_path is not None and not os.path.exists(last_path):
        kept = 'no checkpoint was saved before it'
    else:
        kept = f'{last_path or "last.ckpt"} is the last good checkpoint'
    return TrainingStopped(f'the loss is {loss.item()} at epoch {epoch}, step {step}; the run '
                           f'stopped and {kept}')


class LossChecks:
    """The NaN/Inf policy of one run, each loss checked on the device. Under `skip` the engine
    must know before the optimizer step whether to take it, so each loss is read at once (one
    flag a step, as GradScaler's fp16 reads its own). Under `stop` (the default) a loss is only
    noted, and read() reads all the noted ones at once: the engines call it at their log
    steps, before every checkpoint is written and before a stop. A bad loss between two reads
    is applied to the weights in memory, but the run stops at the next read, before any of it
    is logged or saved: last.ckpt stays the last good state, and the message names the step the
    loss went bad at."""

    def __init__(self, policy='stop', last_path=None, master=True):
        self.policy, self.last_path, self.master = check_nan_policy(policy), last_path, master
        self.noted = []  # (loss, epoch, step, batch) since the last read

    def usable(self, loss, epoch, step, batch, read=False):
        """True when `loss` may be backpropagated; `read`: read it (and those noted) now."""
        if self.policy == 'skip':
            return loss_is_usable(loss, 'skip', epoch, step, batch, self.last_path, self.master)
        self.noted.append((loss.detach(), epoch, step, batch))
        if read:
            self.read()
        return True

    def read(self):
        """Raises TrainingStopped at the first noted loss that is not finite on some rank. Every
        rank calls it at the same points, with as many losses noted."""
        noted, self.noted = self.noted, []
        if not noted:
            return
        losses = [loss for loss, *_ in noted]
        same_shape = all(loss.shape == losses[0].shape for loss in losses)
        if same_shape and not distributed() and torch.isfinite(torch.stack(losses)).all():
            return  # the usual answer, in one read (which loss went bad is looked for below)
        if same_shape:  # one check for all
            bad = ~torch.isfinite(torch.stack(losses)).reshape(len(losses), -1).all(dim=1)
        else:
            bad = torch.stack([~torch.isfinite(loss).all() for loss in losses])
        bad = bad.float()
        if distributed():
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        for (loss, epoch, step, batch), is_bad in zip(noted, bad.tolist()):
            if is_bad:  # (this rank's value, which another rank's may be the bad one of)
                raise nan_stop(loss, epoch, step, self.last_path)


class StopSignals:
    """Notes SIGTERM, SIGUSR1 and SIGINT instead of dying of them; `signum` is the last one
    (0: none). Installed only in the main thread (a Ray Tune trial runs in another)."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum, self.previous = 0, {}

    def install(self):
        if threading.current_thread() is threading.main_thread() and not self.previous:
            self.previous = {s: signal.signal(s, self.note) for s in self.SIGNALS}
        return self

    def note(self, signum, frame):
        self.signum = signum

    def agreed(self, device, step=0, every=1):
        """The signal any rank received (0: none), the same on every rank. Without DDP it is
        this process's, at once and without a read of the device; under DDP the ranks agree by
        an all-reduce at every `every`-th optimizer `step` (the log steps) and go on elsewhere."""
        if not distributed():
            return self.signum
        return int(agreed(self.signum, device)) if step % every == 0 else 0

    def restore(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


class SignalRaised(Exception):
    """A stop signal where no step comes to stop at (train.py's test pass): at once."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RaisingSignals(StopSignals):
    """StopSignals that raise SignalRaised at once instead of noting the signal."""

    def note(self, signum, frame):
        raise SignalRaised(signum)


@contextlib.contextmanager
def signals_raise():
    """Within: SIGTERM, SIGUSR1 and SIGINT raise SignalRaised in the main thread."""
    signals = RaisingSignals().install()
    try:
        yield
    finally:
        signals.restore()


def stopped_message(signum, epoch, step, entry, run_dir):
    from .run import launch_prefix
    again = ' '.join([*launch_prefix(entry), entry, '--resume', str(run_dir)])
    return (f'stopped by {signal.Signals(signum).name} at epoch {epoch}, step {step}; continue '
            f'with: {again}')
