"""The guards of a training run, in plain PyTorch for both engines (train.py calls them,
callbacks/run_state.py and models/lightning.py wrap them for Lightning):

- stop signals: SIGTERM and SIGUSR1 (what SLURM and cloud schedulers send before a kill) and
  SIGINT (Ctrl-C) are only noted; the engine saves last.ckpt at the next step and exits;
- the NaN/Inf policy: a loss that is not finite stops the run before its backward pass
  (`trainer_params.nan_policy: stop`, the default; last.ckpt stays the last good state) or
  skips the batch (`skip`);
- agreement: under DDP every rank takes the same decision, or the ranks would deadlock.
"""
import os
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
    """True when `loss` may be backpropagated. A NaN or Inf loss (on any rank) is skipped
    (False) under `policy: skip`, and stops the run under `stop`. `epoch` counts from 1,
    `step` is the optimizer steps done, `batch` the batch's index in its epoch."""
    if not agreed(not torch.isfinite(loss).all(), loss.device):
        return True
    if policy == 'skip':
        if master:
            print(f'warning: skipped batch {batch} of epoch {epoch}: the loss is {loss.item()}',
                  file=sys.stderr)
        return False
    raise TrainingStopped(f'the loss is {loss.item()} at epoch {epoch}, step {step}; the run '
                          f'stopped and {last_path or "last.ckpt"} is the last good checkpoint')


class StopSignals:
    """Notes SIGTERM, SIGUSR1 and SIGINT instead of dying of them; `signum` is the last one
    (0: none). Installed only in the main thread (a Ray Tune trial runs in another)."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum, self.previous = 0, {}

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.note) for s in self.SIGNALS}
        return self

    def note(self, signum, frame):
        self.signum = signum

    def agreed(self, device):
        """The signal any rank received (0: none), the same on every rank."""
        return int(agreed(self.signum, device))

    def restore(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


def stopped_message(signum, epoch, step, entry, run_dir):
    from .run import launch_prefix
    again = ' '.join([*launch_prefix(entry), entry, '--resume', str(run_dir)])
    return (f'stopped by {signal.Signals(signum).name} at epoch {epoch}, step {step}; continue '
            f'with: {again}')
