"""Train a config with a plain PyTorch loop: no Lightning, every line here to read and edit.

    python train.py --config configs/digits.yaml [--name NAME] [--gpu 0,1] [KEY=VALUE ...]
    torchrun --nproc-per-node 2 train.py --config configs/digits.yaml   # DDP (gloo on CPU)
    python train.py --resume save/NAME [trainer_params.max_epochs=40]

Same configs, tasks (models/task.py) and run folder as train_pl.py: config.yaml, src/,
ckpt/last.ckpt, TensorBoard events, log.txt. The run's guards are the plain modules of utils/
(guards, checkpoints, early_stopping, progress) that train_pl.py wraps as callbacks.
"""
import difflib
import importlib.metadata
import itertools
import os
import signal
import subprocess
import sys
from contextlib import nullcontext
from types import SimpleNamespace

import torch
import torch.distributed as dist

import loggers
import models
import utils
from models.build import build_run
from models.optim import limit_batches, max_epochs, step_schedulers
from models.task import to_device, training_losses

HONORED = {'max_epochs', 'max_steps', 'precision', 'gradient_clip_val', 'gradient_clip_algorithm',
           'accumulate_grad_batches', 'check_val_every_n_epoch', 'log_every_n_steps',
           'limit_train_batches', 'limit_val_batches', 'limit_test_batches', 'deterministic',
           'benchmark',  # cudnn.benchmark
           'nan_policy',  # runyard's own: stop (default) or skip a batch whose loss is NaN/Inf
           'tf32',        # runyard's own: TF32 matmuls (utils/speed.py)
           # decided by --gpu / torchrun, or about Lightning's display: nothing to do here
           'accelerator', 'devices', 'strategy', 'enable_progress_bar', 'enable_model_summary',
           'num_sanity_val_steps'}
AUTOCAST = {'32': None, '32-true': None, '16-mixed': torch.float16, 'bf16-mixed': torch.bfloat16,
            '16': torch.float16, 'bf16': torch.bfloat16}  # Lightning's short names
try:  # read from the package metadata: importing Lightning is what train.py avoids
    LIGHTNING_VERSION = importlib.metadata.version('pytorch-lightning')
except importlib.metadata.PackageNotFoundError:
    LIGHTNING_VERSION = None
# What train.py does of the `callbacks:` list; the others are Lightning's (a warning names them).
LOOP_CALLBACKS = ('eta', 'metrics_csv', 'early_stopping')


def check_settings(params):
    """What train.py supports of trainer_params (their keys and types, with Lightning's
    meaning, are checked by models.build)."""
    precision = str(params.get('precision', '32'))
    if precision not in AUTOCAST:
        raise utils.ConfigError(f"train.py supports precision {', '.join(AUTOCAST)}, but got "
                                f'{precision!r}', key='trainer_params.precision')


def loop_callbacks(specs, master):
    """(write metrics.csv?, the early stopping rule or None) of the `callbacks:` list."""
    names, stopper, ignored = set(), None, []
    for i, spec in enumerate(specs or []):
        spec = {'name': spec} if isinstance(spec, str) else spec
        name = spec.get('name') if isinstance(spec, dict) else None
        with utils.at_key(f'callbacks.{i}'):
            if not isinstance(name, str):
                raise utils.ConfigError(f'must be a callbacks spec {{name: ..., args: {{...}}}}, '
                                        f'but got {spec!r}')
            typo = difflib.get_close_matches(name, LOOP_CALLBACKS, n=1, cutoff=0.85)
            if name not in LOOP_CALLBACKS and typo:  # would train on without it, silently
                raise utils.ConfigError(f"unknown callback '{name}'; did you mean '{typo[0]}'?",
                                        key='name')
            names.add(name)
            if name == 'early_stopping':
                args = dict(spec.get('args') or {})
                utils.check_args(utils.EarlyStopping, args, "callback 'early_stopping'")
                with utils.at_key('args'):
                    stopper = utils.EarlyStopping(**args)
            elif name not in LOOP_CALLBACKS:
                ignored.append(name)
    if ignored and master:
        print(f"warning: train.py ignores callbacks {', '.join(ignored)} (train_pl.py runs them)",
              file=sys.stderr)
    return 'metrics_csv' in names, stopper


def launch(gpus, argv):
    """--gpu 0,1 outside torchrun: start one process per GPU with torchrun itself."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
           f'--nproc-per-node={len(gpus)}', os.path.abspath(__file__), *argv]
    child = subprocess.Popen(cmd)
    for signum in utils.StopSignals.SIGNALS:  # a scheduler's SIGTERM reaches the ranks
        signal.signal(signum, lambda signum, frame: child.send_signal(signum))
    sys.exit(child.wait())


def setup_distributed(gpus):
    """(rank, world_size, device). torchrun sets RANK/LOCAL_RANK/WORLD_SIZE; under SLURM's
    srun they come from SLURM_* (the job script exports MASTER_ADDR/MASTER_PORT). utils.start
    has joined the process group already (utils/guards.py: join_launcher)."""
    if 'RANK' not in os.environ:
        return 0, 1, torch.device(f'cuda:{gpus[0]}' if gpus else 'cpu')
    device = torch.device(f'cuda:{gpus[int(os.environ["LOCAL_RANK"])]}' if gpus else 'cpu')
    if not dist.is_initialized():
        raise utils.ConfigError('several processes, but no MASTER_ADDR and MASTER_PORT to meet '
                                'at: export them in the job script (see the README)')
    return dist.get_rank(), dist.get_world_size(), device


def build(run, device, rank, world_size):
    """Everything a run needs, as one namespace `t`, built before the run folder exists so
    that a config mistake leaves no trace."""
    master = rank == 0
    b = build_run(run, world_size, device=device, check_settings=check_settings, parts={
        'policy': lambda cfg: utils.CheckpointPolicy.from_config(cfg, run.dir / 'ckpt'),
        'callbacks': lambda cfg: loop_callbacks(cfg.get('callbacks'), master),
        'trackers': loggers.from_config})
    cfg, params, data, task, pairs, policy = b.cfg, b.params, b.data, b.task, b.pairs, b.policy
    write_csv, stopper = b.callbacks
    amp_dtype = AUTOCAST[str(params.get('precision', '32'))]
    if amp_dtype is torch.float16 and device.type == 'cpu':
        amp_dtype = torch.bfloat16  # as Lightning does: the CPU's autocast is bfloat16
    # The train order depends on the seed and epoch alone, split among ranks; val and test are
    # sharded without padding, so metrics summed over ranks are those of one process.
    loaders = {'train': data.train_dataloader(cfg['seed'], rank, world_size, device),
               'val': data.val_dataloader(rank, world_size, device),
               'test': data.test_dataloader(rank, world_size, device)}
    return SimpleNamespace(
        run=run, cfg=cfg, params=dict(params), task=task, device=device, rank=rank, master=master,
        world_size=world_size, ddp=utils.guards.distributed(),
        optimizers=[o for o, _ in pairs], schedules=[s for _, s in pairs if s],
        loaders=loaders, policy=policy, stopper=stopper, write_csv=write_csv, trackers=b.trackers,
        autocast=torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext(),
        # Loss scaling only where fp16 gradients can underflow; a no-op otherwise.
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16),
        max_epochs=max_epochs(params),  # -1: no limit
        max_steps=params.get('max_steps', -1),  # optimizer steps; -1: no limit
        accumulate=params.get('accumulate_grad_batches', 1),
        n_train=limit_batches(len(loaders['train']), params.get('limit_train_batches')),
        epoch=0, step=0, batches_done=0, losses={}, signals=utils.StopSignals(), grad_flags={},
        checks=utils.LossChecks(params.get('nan_policy', 'stop'), policy.last_path, master))


def average_gradients(t, optimizer):
    """What DDP's backward hooks do, for any task and any number of optimizers: every rank
    ends with the mean of all ranks' gradients, in one all-reduce per optimizer step (DDP
    would overlap it with the backward pass). A parameter without a gradient on every rank
    keeps none, so the optimizer leaves it alone, as it would in one process. The host reads
    which ones have a gradient only when this rank lacks one (no device read otherwise)."""
    params = [p for group in optimizer.param_groups for p in group['params'] if p.requires_grad]
    local = tuple(p.grad is not None for p in params)
    if local not in t.grad_flags:  # a copy to the device waits for it: once per pattern
        t.grad_flags[local] = torch.tensor(local, dtype=torch.float32, device=t.device)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params] + [t.grad_flags[local]])
    dist.all_reduce(flat)
    has_grad = local if all(local) else flat[-len(params):].tolist()  # some rank's, or none
    offset = 0
    for p, has in zip(params, has_grad):
        p.grad = flat[offset:offset + p.numel()].view_as(p) / t.world_size if has else None
        offset += p.numel()


def sync_weights(t, buffers_only=False):
    """Rank 0's weights (and BatchNorm statistics) on every rank: at the start, as DDP does,
    and its buffers before every evaluation and save (DDP runs every rank on rank 0's)."""
    if t.ddp:
        for tensor in (t.task.buffers() if buffers_only else t.task.state_dict().values()):
            dist.broadcast(tensor, 0)


def train_step(t, batch, i):
    """One batch: each of the task's losses checked, backpropagated and, at the end of an
    accumulation, its optimizer stepped. Returns True when the optimizers stepped."""
    first_micro = i % t.accumulate == 0
    last_micro = (i + 1) % t.accumulate == 0 or i + 1 == t.n_train
    with t.autocast:
        losses = training_losses(t.task, batch)  # a generator task runs at each next()
    for k, optimizer in enumerate(t.optimizers):
        with t.autocast:
            name, loss = next(losses)
        if not t.checks.usable(loss, t.epoch + 1, t.step, i):
            optimizer.zero_grad(set_to_none=True)
            if k and last_micro:
                t.scaler.update()  # the optimizers before this one have stepped
            return False
        if first_micro:
            optimizer.zero_grad(set_to_none=True)
        t.scaler.scale(loss / t.accumulate if t.accumulate > 1 else loss).backward()
        t.losses[name] = loss.detach()
        if last_micro:
            step_optimizer(t, optimizer)
    if last_micro:
        t.scaler.update()
        step_schedulers(t.schedules, 'step', t.step // len(t.optimizers))
        if t.task.ema is not None:
            t.task.ema.update(t.task)
    return last_micro


def step_optimizer(t, optimizer):
    if t.ddp:
        average_gradients(t, optimizer)
    clip = t.params.get('gradient_clip_val')
    if clip:
        t.scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group['params']]
        if t.params.get('gradient_clip_algorithm', 'norm') == 'value':
            torch.nn.utils.clip_grad_value_(params, clip)
        else:
            torch.nn.utils.clip_grad_norm_(params, clip)
    t.scaler.step(optimizer)
    t.step += 1  # optimizer steps, as Lightning's global_step counts them


def train_epoch(t):
    """The epoch `t.epoch` from batch `t.batches_done`; saves last.ckpt within it when due,
    and saves and exits on a stop signal. Returns False when max_steps ends the run within it:
    `t.batches_done` is where, and a resume with a higher limit goes on from there."""
    loader, log_every = t.loaders['train'], t.params.get('log_every_n_steps', 50)
    loader.sampler.set_epoch(t.epoch)  # a new order each epoch, the same on all ranks
    t.task.train()
    # zip stops at the limit before it asks the loader for one more batch, as Lightning does:
    # that batch's random transforms would draw from the run's RNG
    for i, batch in zip(range(t.batches_done or 0, t.n_train), loader):
        t.progress.batch_start()
        step_before = t.step
        if not train_step(t, to_device(batch, t.device), i):
            continue
        t.progress.step_done(t.device)
        # TensorBoard's x-axis counts the batches that stepped before this one, as Lightning's
        # does (the optimizer steps, with one optimizer; a GAN steps two a batch).
        stepped = step_before // len(t.optimizers)
        if (stepped + 1) % log_every == 0:
            losses = mean_losses(t)
            if t.master:
                t.trackers.log_metrics({f'train/{k}': v for k, v in losses.items()}, stepped)
        signum = t.signals.agreed(t.device, t.step, log_every)  # under DDP, at log steps
        reached = utils.steps_reached(t.step, t.max_steps)
        within = i + 1 < t.n_train
        if signum or (within and (reached or t.policy.due_within_epoch(t.step))):
            t.batches_done = i + 1
            t.policy.save_last(lambda path: save_state(t, path), t.master)
        if signum:
            stop(t, signum)
        if reached and within:
            return False
        if reached:
            break
    t.batches_done = None  # the epoch is whole
    return True


def mean_losses(t):
    """{name: float} of the last batch's losses, averaged over the ranks: what every rank
    logs, ranks checkpoints and stops early by. The NaN checks are read with them."""
    t.checks.read()
    names = sorted(t.losses)
    if not t.ddp or not names:
        return {name: t.losses[name].item() for name in names}
    values = torch.stack([t.losses[name].float() for name in names])
    dist.all_reduce(values)
    return dict(zip(names, (values / t.world_size).tolist()))


def stop(t, signum):
    utils.wait_for_writes()  # the checkpoint just saved is on disk before the message says so
    if t.master:
        t.trackers.close(stopped=True)  # MLflow: KILLED, until a --resume
        message = utils.stopped_message(signum, t.epoch + 1, t.step, 'train.py', t.run.dir)
        print(message, file=sys.stderr)
        t.run.log(message)
    utils.leave_group()
    sys.exit(128 + signum)


@torch.no_grad()
def evaluate(t, split, n_batches=None):
    """{split/name: value} of the task's validation (or test) step over the split, summed
    over all ranks."""
    sync_weights(t, buffers_only=True)
    t.task.eval()
    evaluation = models.Evaluation(t.task, split)
    n = n_batches or limit_batches(len(t.loaders[split]), t.params.get(f'limit_{split}_batches'))
    for i, batch in enumerate(t.loaders[split]):
        if i >= n:
            break
        with t.autocast:
            evaluation.step(to_device(batch, t.device))
    t.task.train()
    return evaluation.compute()


def save_state(t, path):
    """The checkpoint at `path`, of the state after `t.batches_done` batches of `t.epoch`
    (None: the whole epoch). Every rank calls it: each one's RNG is saved."""
    t.checks.read()  # a bad loss since the last read: the run stops, this is not saved
    sync_weights(t, buffers_only=True)
    rngs = utils.all_rng_states()
    if not t.master:
        return
    utils.atomic_save({
        'epoch': t.epoch, 'global_step': t.step, 'batches_done': t.batches_done,
        'config': t.cfg, 'state_dict': t.task.state_dict(),
        # Lightning's keys, so TaskModule.load_from_checkpoint and models.load_task read it
        'hyper_parameters': {'spec': utils.without_init_from(t.cfg['train_wrapper']),
                             'nan_policy': t.params.get('nan_policy', 'stop')},
        'pytorch-lightning_version': LIGHTNING_VERSION,
        'optimizer_states': [o.state_dict() for o in t.optimizers],
        'lr_schedulers': [s['scheduler'].state_dict() for s in t.schedules],
        'scaler': t.scaler.state_dict(), 'rng': rngs, 'checkpoints': t.policy.state_dict(),
        'train_losses': {k: v.item() for k, v in t.losses.items()},
        'early_stopping': t.stopper.state_dict() if t.stopper else None}, path)


def resume(t):
    """The state of `t.run.ckpt`, continued exactly: weights, optimizers, schedulers, the
    checkpoint list, early stopping, this rank's RNG and the place in the epoch."""
    try:
        state = utils.load_checkpoint(t.run.ckpt)  # weights_only: no code from the file
        t.task.load_state_dict(state['state_dict'])
        for optimizer, saved in zip(t.optimizers, state['optimizer_states'], strict=True):
            optimizer.load_state_dict(saved)
        for schedule, saved in zip(t.schedules, state['lr_schedulers'], strict=True):
            schedule['scheduler'].load_state_dict(saved)
        t.scaler.load_state_dict(state['scaler'])
        t.policy.load_state_dict(state['checkpoints'])
        if t.stopper and state.get('early_stopping'):
            t.stopper.load_state_dict(state['early_stopping'])
        rng = state['rng'][t.rank]
    except Exception as e:  # a foreign, truncated or other model's file
        reason = utils.first_line(e)
        raise utils.ConfigError(f'--resume {t.run.ckpt}: not a train.py checkpoint of this '
                                f'config ({type(e).__name__}: {reason})') from None
    t.epoch, t.step, t.batches_done = state['epoch'], state['global_step'], state['batches_done']
    t.losses = {k: torch.tensor(v) for k, v in state['train_losses'].items()}
    if t.batches_done is None:  # saved at the end of its epoch
        t.epoch, t.batches_done = t.epoch + 1, 0
    for note in models.optim.resume_notes(t.run.saved_cfg, t.cfg, t.epoch, t.schedules):
        if t.master:
            print(note, file=sys.stderr)
    utils.set_rng_state(rng)
    t.loaders['train'].skip(t.epoch, t.batches_done)  # the rest of the epoch, in the same order


def end_epoch(t):
    """After the epoch's batches: validation, epoch schedulers, images, early stopping, the
    checkpoints and the ETA line. Returns True when early stopping ends the run."""
    metrics = {f'train/{name}': loss for name, loss in mean_losses(t).items()}
    if t.task.validates and (t.epoch + 1) % t.params.get('check_val_every_n_epoch', 1) == 0:
        metrics.update(evaluate(t, 'val'))
        if t.master:
            t.trackers.log_metrics({k: v for k, v in metrics.items()
                                    if not k.startswith('train/')}, t.step - 1)
    # after validation, as in Lightning (a plateau scheduler needs the metric)
    step_schedulers(t.schedules, 'epoch', t.epoch + 1, metrics)
    if t.master:
        t.trackers.log_images(t.task.epoch_images(), t.epoch + 1)
        t.trackers.log_texts(t.task.epoch_texts(), t.epoch + 1)
    stopping = t.stopper is not None and t.stopper.should_stop(metrics)
    t.policy.end_of_epoch(t.epoch, t.step, metrics, lambda path: save_state(t, path), t.master)
    if t.master:
        print(t.progress.epoch_line(t.epoch + 1, metrics, t.step), flush=True)
        if t.write_csv:
            utils.record_metrics(utils.metrics_csv_path(t.run.dir), t.epoch + 1, t.step, metrics)
        if stopping:
            print(t.stopper.reason(), flush=True)
            t.run.log(t.stopper.reason())
    return stopping


def test(t, epochs_done):
    """The test split, with the best checkpoint's weights when one is monitored, on every
    rank (every rank knows which: the policy runs alike on all)."""
    tested, step = None, t.step
    if t.policy.monitor and t.policy.best_path:
        utils.wait_for_writes()
        if t.ddp:
            dist.barrier()  # rank 0 has written it
        state = utils.load_checkpoint(t.policy.best_path)
        t.task.load_state_dict(state['state_dict'])
        tested, step = t.policy.best_path, state['global_step']
    metrics = evaluate(t, 'test')
    if t.master:
        t.run.log(utils.tested_line(tested, step))  # where plot.py puts the test point
        t.trackers.log_metrics(metrics, t.step)
        print('  '.join(f'{k} {v:.4g}' for k, v in sorted(metrics.items())))
        if t.write_csv:
            utils.record_metrics(utils.metrics_csv_path(t.run.dir), epochs_done, t.step, metrics)


def check(t):
    """--check: one train step and one val batch, then a summary; writes nothing."""
    batches = {'train': next(iter(t.loaders['train']))}
    train_step(t, to_device(batches['train'], t.device), 0)
    t.checks.read()
    logged = {f'train/{k}': v.item() for k, v in t.losses.items()}
    if t.task.validates and len(t.loaders['val']):
        batches['val'] = next(iter(t.loaders['val']))
        logged.update(evaluate(t, 'val', n_batches=1))
    with t.run.blamed():  # a typo in a monitored name, before a run ends on it
        utils.check_monitors(t.cfg, logged, t.schedules)
    losses = {k: v for k, v in logged.items() if k.endswith('loss')}
    parts = {'optimizers': ', '.join(type(o).__name__ for o in t.optimizers),
             'param groups': models.optim.describe_groups(t.task, t.optimizers),
             'lr schedulers': ', '.join(type(s['scheduler']).__name__ for s in t.schedules)
             or 'none', **utils.speed_settings(t.cfg)}
    utils.check_report(t.task, t.device, batches, losses, parts)


def main(argv):
    args, run = utils.start('train.py', __doc__, argv)
    if run is None:  # --print-config, --explain: done
        return
    if len(run.gpus) > 1 and not utils.launcher() and not args.check:
        launch(run.gpus, argv)  # under torchrun or srun, --gpu names this node's devices
    rank, world_size, device = setup_distributed(run.gpus)
    # Each rank its own seed, so dropout and augmentation differ per rank; the weights start
    # as rank 0's (sync_weights), and the train order comes from the config's seed.
    utils.seed_everything(run.cfg['seed'] + rank)
    params = run.cfg.get('trainer_params') or {}
    if params.get('deterministic'):
        torch.use_deterministic_algorithms(True)
    # cuDNN tries each convolution algorithm on the first batch of a shape and keeps the
    # fastest: worth it when shapes do not change. Lightning's `benchmark` means the same.
    torch.backends.cudnn.benchmark = bool(params.get('benchmark') and
                                          not params.get('deterministic'))
    utils.set_tf32(params.get('tf32'))
    t = build(run, device, rank, world_size)
    ignored = sorted(set(params) - HONORED)
    if ignored and t.master:
        print(f"warning: train.py ignores trainer_params {', '.join(ignored)} "
              '(train_pl.py honors them)', file=sys.stderr)
    sync_weights(t)
    if args.check:
        return check(t)
    if run.ckpt:
        resume(t)
    if t.master:
        run.create()
        t.trackers = loggers.Trackers(t.trackers, run.dir, run.resuming)
        if not run.resuming:
            t.trackers.log_config(t.cfg, t.task.summary_metrics())
    t.progress = utils.Progress(t.max_epochs, t.epoch, run.log if t.master else None,
                                t.max_steps, t.step)
    epochs_done = t.epoch  # a resumed run has done `epoch` of them
    t.signals.install()  # SIGTERM, SIGUSR1, SIGINT: save at the next step, then exit
    try:
        try:
            epochs = itertools.count(t.epoch) if t.max_epochs == -1 else \
                range(t.epoch, t.max_epochs)
            # a resume of the checkpoint of the epoch that early stopping ended has no epoch left
            done = utils.steps_reached(t.step, t.max_steps) or (
                t.stopper is not None and t.stopper.stopped and not t.batches_done)
            for epoch in (() if done else epochs):
                t.epoch = epoch
                if not train_epoch(t):  # max_steps within the epoch: last.ckpt saved there
                    break
                epochs_done = t.epoch + 1
                if end_epoch(t) or utils.steps_reached(t.step, t.max_steps):
                    break
            if utils.steps_reached(t.step, t.max_steps) and t.master:
                print(t.progress.max_steps_line(t.epoch + 1, t.batches_done), flush=True)
        finally:
            t.signals.restore()
        if t.cfg.get('test', True) and t.task.validates:
            try:
                with utils.signals_raise():  # no step to stop at: now, and --resume tests it
                    test(t, epochs_done)
            except utils.SignalRaised as e:
                stop(t, e.signum)
        utils.wait_for_writes()
    except BaseException:  # an error ended the run: its tracker runs say so (MLflow: FAILED)
        if t.master:  # after a signal's stop: closed already, nothing
            t.trackers.close(failed=True)
            run.undo_config()  # a resume that saved nothing keeps the run's config.yaml
        raise
    if t.master:
        t.trackers.close()
        run.announce()
    utils.leave_group()
    if not t.master:  # it owns no file or tracker: it leaves without the interpreter's
        sys.stdout.flush()  # finalization, where gloo's threads can still abort it (guards.py)
        sys.stderr.flush()
        os._exit(0)


if __name__ == '__main__':
    utils.run_entrypoint(main)
