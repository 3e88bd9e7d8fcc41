"""Train a config with a plain PyTorch loop: no Lightning, every line here to read and edit.

    python train.py --config configs/digits.yaml [--name NAME] [--gpu 0,1] [KEY=VALUE ...]
    torchrun --nproc-per-node 2 train.py --config configs/digits.yaml   # DDP (gloo on CPU)
    python train.py --resume save/NAME [trainer_params.max_epochs=40]

Same configs and run folder as train_pl.py: config.yaml, src/, ckpt/last.ckpt, TensorBoard
events (train/loss, val/loss, val/acc, test/*), log.txt. It trains the `base` wrapper
(supervised classification); other wrappers need train_pl.py.
"""
import difflib
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
from tensorboardX import SummaryWriter
from torch.nn.parallel import DistributedDataParallel as DDP

import datasets
import losses
import models
import utils
from models.optim import make_optimizer, make_scheduler

HONORED = {'max_epochs', 'precision', 'gradient_clip_val', 'gradient_clip_algorithm',
           'accumulate_grad_batches', 'check_val_every_n_epoch', 'log_every_n_steps',
           'limit_train_batches', 'limit_val_batches', 'limit_test_batches', 'deterministic',
           'benchmark',  # cudnn.benchmark
           'nan_policy',  # runyard's own: stop (default) or skip a batch whose loss is NaN/Inf
           'tf32',        # runyard's own: TF32 matmuls (utils/speed.py)
           # decided by --gpu / torchrun, or about Lightning's display: nothing to do here
           'accelerator', 'devices', 'strategy', 'enable_progress_bar', 'enable_model_summary',
           'num_sanity_val_steps'}
AUTOCAST = {'32': None, '32-true': None, '16-mixed': torch.float16, 'bf16-mixed': torch.bfloat16}
try:  # read from the package metadata: importing Lightning is what train.py avoids
    LIGHTNING_VERSION = importlib.metadata.version('pytorch-lightning')
except importlib.metadata.PackageNotFoundError:
    LIGHTNING_VERSION = None
WRAPPER_ARGS = ('model_spec', 'loss_spec', 'optim_spec', 'sched_spec', 'num_classes')


def check_supported(cfg):
    wrapper = cfg['train_wrapper']
    if wrapper.get('name') != 'base':
        raise utils.ConfigError(f"train.py trains the 'base' wrapper only, but got "
                                f"{wrapper.get('name')!r}; run this config with train_pl.py",
                                key='train_wrapper.name')
    for key in wrapper.get('args') or {}:
        if key not in WRAPPER_ARGS:
            raise utils.ConfigError(f"unknown argument{utils.close_matches(key, WRAPPER_ARGS)} "
                                    f"(accepted: {', '.join(WRAPPER_ARGS)})",
                                    key=f'train_wrapper.args.{key}')
    params = cfg.get('trainer_params') or {}
    for key in sorted(set(params) - HONORED):
        typo = difflib.get_close_matches(key, HONORED, n=1, cutoff=0.85)
        if typo:  # a misspelt setting that train.py honors would change the run without a word
            raise utils.ConfigError(f"unknown setting; did you mean '{typo[0]}'?",
                                    key=f'trainer_params.{key}')
    if params.get('nan_policy', 'stop') not in ('stop', 'skip'):
        raise utils.ConfigError(f"must be 'stop' or 'skip', but got {params['nan_policy']!r}",
                                key='trainer_params.nan_policy')
    precision = str(params.get('precision', '32'))
    if precision not in AUTOCAST:
        raise utils.ConfigError(f"train.py supports precision {', '.join(AUTOCAST)}, but got "
                                f'{precision!r}', key='trainer_params.precision')


class EarlyStopping:
    """`early_stopping` as Lightning means it: stop when `monitor` has not improved by more than
    `min_delta` for `patience` validations in a row."""

    def __init__(self, monitor, mode='min', patience=3, min_delta=0.0):
        if mode not in ('min', 'max'):
            raise utils.ConfigError(f"must be 'min' or 'max', but got {mode!r}", key='args.mode')
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.sign = 1 if mode == 'min' else -1  # compare signed values: lower is better
        self.best, self.wait = float('inf'), 0

    def should_stop(self, metrics):
        if self.monitor not in metrics:
            if 'val/loss' in metrics:  # a validation ran without it: a typo, as Lightning says
                raise utils.TrainingStopped(
                    f"early_stopping monitors '{self.monitor}', which this run does not log "
                    f"(it logs {', '.join(sorted(metrics))})")
            return False
        value = self.sign * metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.wait >= self.patience

    def state_dict(self):
        return {'best': self.best, 'wait': self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state['best'], state['wait']


LOOP_CALLBACKS = ('eta', 'metrics_csv', 'early_stopping')


def loop_callbacks(specs, master):
    """What train.py does of the `callbacks:` list: `eta` is always on, `metrics_csv` writes
    metrics.csv and `early_stopping` stops the run (monitor, mode, patience, min_delta); the
    others are Lightning's business, named in one warning."""
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
                known = {k: args.pop(k) for k in ('monitor', 'mode', 'patience', 'min_delta')
                         if k in args}
                utils.check_args(EarlyStopping, known, "callback 'early_stopping'")
                stopper = EarlyStopping(**known)
                ignored += [f'early_stopping.{k}' for k in args]
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
    for signum in StopSignals.SIGNALS:  # a scheduler's SIGTERM reaches the ranks through torchrun
        signal.signal(signum, lambda signum, frame: child.send_signal(signum))
    sys.exit(child.wait())


def setup_distributed(gpus):
    """(rank, local_rank, world_size, device). torchrun sets RANK/LOCAL_RANK/WORLD_SIZE; under
    SLURM's srun they come from SLURM_* (the job script exports MASTER_ADDR/MASTER_PORT)."""
    if 'RANK' not in os.environ and int(os.environ.get('SLURM_NTASKS', 1)) > 1:
        os.environ.update(RANK=os.environ['SLURM_PROCID'], LOCAL_RANK=os.environ['SLURM_LOCALID'],
                          WORLD_SIZE=os.environ['SLURM_NTASKS'])
    if 'RANK' not in os.environ:
        return 0, 0, 1, torch.device(f'cuda:{gpus[0]}' if gpus else 'cpu')
    rank, local_rank = int(os.environ['RANK']), int(os.environ['LOCAL_RANK'])
    if gpus:
        device = torch.device(f'cuda:{gpus[local_rank]}')
        torch.cuda.set_device(device)
    else:
        device = torch.device('cpu')
    dist.init_process_group(backend='nccl' if gpus else 'gloo')
    return rank, local_rank, dist.get_world_size(), device


def limit(n_batches, value):
    """Lightning's limit_*_batches: an int is a count, a float a fraction."""
    if value is None:
        return n_batches
    return min(n_batches, value if isinstance(value, int) else int(n_batches * value))


class Checkpoints:
    """The `checkpoint:` section with ModelCheckpoint's meaning: last.ckpt at the end of every
    epoch (and every `every_n_train_steps` steps within one), and `epoch=E-step=S.ckpt` every
    `every_n_epochs`, keeping the `save_top_k` best by `monitor` (by recency when nothing is
    monitored). Files are written whole or not at all."""
    KEYS = ('monitor', 'mode', 'save_top_k', 'every_n_epochs', 'every_n_train_steps')

    def __init__(self, folder, monitor=None, mode='min', save_top_k=1, every_n_epochs=1,
                 every_n_train_steps=0):
        self.folder, self.monitor, self.mode = folder, monitor, mode
        self.save_top_k, self.every_n_epochs = save_top_k, every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.kept = []  # [(score, path)], best first
        self.best_path = None

    def save(self, state, epoch, step, metrics, end_of_epoch=True):
        path, dropped = None, []
        due = end_of_epoch and self.save_top_k != 0 and (epoch + 1) % self.every_n_epochs == 0
        if due and (not self.monitor or self.monitor in metrics):  # no value: no validation
            path = str(self.folder / f'epoch={epoch}-step={step}.ckpt')
            score = metrics[self.monitor] if self.monitor else step
            kept = sorted(self.kept + [(score, path)], key=lambda k: k[0],
                          reverse=not self.monitor or self.mode == 'max')
            if self.save_top_k > 0:
                kept, dropped = kept[:self.save_top_k], [p for _, p in kept[self.save_top_k:]]
            self.kept, self.best_path = kept, kept[0][1]
        state['checkpoints'] = self.state_dict()  # as it is once these files are written
        self.folder.mkdir(parents=True, exist_ok=True)
        if path is not None and path not in dropped:
            utils.atomic_save(state, path)
            utils.atomic_link(path, self.folder / 'last.ckpt')  # the same bytes: written once
        else:
            utils.atomic_save(state, self.folder / 'last.ckpt')
        for old in dropped:
            if old != path:
                os.remove(old)

    def state_dict(self):
        return {'kept': self.kept, 'best_path': self.best_path}

    def load_state_dict(self, state):
        self.kept, self.best_path = state['kept'], state['best_path']


class StopSignals:
    """SIGTERM and SIGUSR1 (what SLURM and cloud schedulers send before a kill) and SIGINT
    (Ctrl-C) only note the signal; the loop saves at the next step boundary and exits."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum = 0
        self.previous = {s: signal.signal(s, self.note) for s in self.SIGNALS}

    def note(self, signum, frame):
        self.signum = signum

    def restore(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def load_weights(model, path):
    """Load a checkpoint's model weights (Lightning's `model.` prefix dropped); return it all."""
    state = utils.load_checkpoint(path)  # weights_only: tensors and plain containers, no code
    model.load_state_dict({k.removeprefix('model.'): v for k, v in state['state_dict'].items()})
    return state


@torch.no_grad()
def evaluate(model, loader, loss_fn, n_batches, device, autocast, ddp):
    """Mean loss (weighted by batch size, as Lightning's epoch metrics) and accuracy,
    summed over all ranks."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for i, (x, y) in enumerate(loader):
        if i >= n_batches:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast:
            logits = model(x)
            loss = loss_fn(logits, y)
        totals += torch.stack([loss.double() * len(y), (logits.argmax(-1) == y).sum().double(),
                               torch.tensor(float(len(y)), device=device, dtype=torch.float64)])
    if ddp:
        dist.all_reduce(totals)
    model.train()
    return totals[0].item() / max(totals[2].item(), 1), totals[1].item() / max(totals[2].item(), 1)


def check(model, loss_fn, optimizer, scheduler, train_loader, val_loader, device, autocast,
          scaler, speed):
    """--check: one optimizer step on a train batch, one val batch, then a summary."""
    batches = {'train': next(iter(train_loader)), 'val': next(iter(val_loader))}
    x, y = (t.to(device) for t in batches['train'])
    with autocast:
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad(), autocast:
        x, y = (t.to(device) for t in batches['val'])
        val_loss = loss_fn(model(x), y)
    parts = {'optimizer': type(optimizer).__name__,
             'lr scheduler': type(scheduler['scheduler']).__name__ if scheduler else 'none',
             **speed}
    utils.check_report(model, device, batches,
                       {'train/loss': loss.item(), 'val/loss': val_loss.item()}, parts)


def main(argv):
    args, run = utils.start('train.py', __doc__, argv)
    if run is None:  # --print-config, --explain: done
        return
    cfg = run.cfg
    with utils.at_key(None, file=run.config_path):
        check_supported(cfg)
    if len(run.gpus) > 1 and 'RANK' not in os.environ and not args.check:
        launch(run.gpus, argv)

    rank, local_rank, world_size, device = setup_distributed(run.gpus)
    ddp = world_size > 1 or 'RANK' in os.environ
    master = rank == 0  # rank 0 alone logs and writes the run folder
    # Each rank its own seed, so dropout and augmentation differ per rank; DDP copies rank 0's
    # initial weights to all ranks, and the DistributedSampler shares the config's seed.
    utils.seed_everything(cfg['seed'] + rank)
    params = dict(cfg.get('trainer_params') or {})
    if params.get('deterministic'):
        torch.use_deterministic_algorithms(True)
    # cuDNN tries each convolution algorithm on the first batch of a shape and keeps the
    # fastest: worth it when shapes do not change. Lightning's `benchmark` means the same.
    torch.backends.cudnn.benchmark = bool(params.get('benchmark') and
                                          not params.get('deterministic'))
    utils.set_tf32(params.get('tf32'))
    ignored = sorted(set(params) - HONORED)
    if ignored and master:
        print(f"warning: train.py ignores trainer_params {', '.join(ignored)} "
              '(train_pl.py honors them)', file=sys.stderr)

    # Build everything before the run folder exists, so a config mistake leaves no trace.
    wrapper_args = cfg['train_wrapper'].get('args') or {}
    with utils.at_key(None, file=run.config_path):
        with utils.at_key('data_module'):
            data = datasets.make(cfg['data_module'])
        with utils.at_key('train_wrapper.args'):
            for key in ('model_spec', 'loss_spec', 'optim_spec'):
                if key not in wrapper_args:
                    raise utils.ConfigError('is required', key=key)
            with utils.at_key('model_spec'):
                spec = wrapper_args['model_spec']  # on resume, the weights are in the checkpoint
                model = models.make(utils.without_init_from(spec) if run.ckpt else spec).to(device)
            with utils.at_key('loss_spec'):
                loss_fn = losses.make(wrapper_args['loss_spec'])
            with utils.at_key('optim_spec'):
                optimizer = make_optimizer(wrapper_args['optim_spec'], model.parameters())
            scheduler = None
            if wrapper_args.get('sched_spec'):
                with utils.at_key('sched_spec'):
                    scheduler = make_scheduler(wrapper_args['sched_spec'], optimizer)
        with utils.at_key('checkpoint'):
            section = cfg.get('checkpoint') or {}
            known = {k: v for k, v in section.items() if k in Checkpoints.KEYS}
            known['folder'] = run.dir / 'ckpt'
            utils.check_args(Checkpoints, known, 'checkpoint', prefix='')
            checkpoints = Checkpoints(**known)
        write_csv, stopper = loop_callbacks(cfg.get('callbacks'), master)
        ignored = sorted(set(section) - set(Checkpoints.KEYS))
        if ignored and master:
            print(f"warning: train.py ignores checkpoint {', '.join(ignored)}", file=sys.stderr)
        data.setup()

    max_epochs = params.get('max_epochs', 1000)  # Lightning's default
    accumulate = params.get('accumulate_grad_batches', 1)
    clip = params.get('gradient_clip_val')
    clip_by_value = params.get('gradient_clip_algorithm', 'norm') == 'value'
    val_every = params.get('check_val_every_n_epoch', 1)
    log_every = params.get('log_every_n_steps', 50)
    amp_dtype = AUTOCAST[str(params.get('precision', '32'))]
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    # Loss scaling only where fp16 gradients can underflow; a no-op otherwise.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)

    # The train order depends on the seed and epoch alone, split among ranks; val and test are
    # sharded without padding, so metrics summed over ranks are those of one process.
    train_loader = data.train_dataloader(cfg['seed'], rank, world_size, device)
    val_loader = data.val_dataloader(rank, world_size, device)
    test_loader = data.test_dataloader(rank, world_size, device)
    if ddp:
        model = DDP(model, device_ids=[device.index] if run.gpus else None)
    raw_model = model.module if ddp else model
    if args.check:
        return check(model, loss_fn, optimizer, scheduler, train_loader, val_loader, device,
                     autocast, scaler, utils.speed_settings(cfg))

    epoch, step, batches_done = 0, 0, 0  # where training starts: epoch, optimizer step, batch
    if run.ckpt:
        try:
            state = load_weights(raw_model, run.ckpt)
            optimizer.load_state_dict(state['optimizer'])
            if scheduler:
                scheduler['scheduler'].load_state_dict(state['scheduler'])
            scaler.load_state_dict(state['scaler'])
            checkpoints.load_state_dict(state['checkpoints'])
            if stopper and state.get('early_stopping'):
                stopper.load_state_dict(state['early_stopping'])
            rng = state['rng'][rank]
        except Exception as e:  # a foreign, truncated or other model's file
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise utils.ConfigError(f'--resume {run.ckpt}: not a train.py checkpoint of this '
                                    f'config ({type(e).__name__}: {reason})') from None
        epoch, step, batches_done = state['epoch'], state['global_step'], state['batches_done']
        if batches_done is None:  # saved at the end of its epoch
            epoch, batches_done = epoch + 1, 0
        utils.set_rng_state(rng)
        train_loader.skip(epoch, batches_done)
        loss = torch.tensor(state.get('train_loss', float('nan')))  # the rest of the epoch, in the same order

    if master:
        run.create()
        # tensorboardX names event files by the second and the host: a resume within the same
        # second would overwrite the first file without a suffix of its own.
        n_files = len(list(run.dir.glob('events.out.tfevents.*')))
        writer = SummaryWriter(str(run.dir), filename_suffix=f'.{os.getpid()}.{n_files}')
        if not run.resuming:
            utils.write_hparams(writer, cfg, models.CLASSIFICATION_METRICS)
    start, first_epoch = time.time(), epoch
    epochs_done = epoch  # a resumed run has done `epoch` of them
    n_train = limit(len(train_loader), params.get('limit_train_batches'))
    n_val = limit(len(val_loader), params.get('limit_val_batches'))
    nan_policy = params.get('nan_policy', 'stop')
    metrics = {}
    # log.txt gets the first step's time: after the start-up, and its own (compilation, autotuning)
    first_step, step_started = True, None
    stop = StopSignals()  # SIGTERM, SIGUSR1, SIGINT: save at the next step, then exit

    def save(epoch, batches_done, metrics):
        """last.ckpt (and what `checkpoint:` keeps) of the state after `batches_done` batches
        of `epoch` (None: the whole epoch). Every rank calls it: each one's RNG is saved."""
        rngs = [None] * world_size
        if ddp:
            dist.all_gather_object(rngs, utils.rng_state())
        else:
            rngs = [utils.rng_state()]
        if not master:
            return
        state = {
            'epoch': epoch, 'global_step': step, 'batches_done': batches_done, 'config': cfg,
            # Lightning's layout, so BaseWrapper.load_from_checkpoint reads it too
            'state_dict': {f'model.{k}': v for k, v in raw_model.state_dict().items()},
            'hyper_parameters': utils.without_init_from(wrapper_args),
            'pytorch-lightning_version': LIGHTNING_VERSION,
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler['scheduler'].state_dict() if scheduler else None,
            'scaler': scaler.state_dict(), 'rng': rngs, 'train_loss': loss.item(),
            'early_stopping': stopper.state_dict() if stopper else None}
        checkpoints.save(state, epoch, step, metrics, end_of_epoch=batches_done is None)

    try:
        for epoch in range(epoch, max_epochs):
            train_loader.sampler.set_epoch(epoch)  # a new order each epoch, the same on all ranks
            model.train()
            for i, (x, y) in enumerate(train_loader, start=batches_done):
                if i >= n_train:
                    break
                if step_started is None:
                    step_started = time.perf_counter()
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                last_micro_step = (i + 1) % accumulate == 0 or i + 1 == n_train
                if ddp:
                    # Sync gradients only on the micro-step that ends an accumulation: the others
                    # would all-reduce for nothing.
                    model.require_backward_grad_sync = last_micro_step
                with autocast:
                    loss = loss_fn(model(x), y)
                # One look at the loss and the signals per batch, agreed by all ranks, so they all
                # skip, stop or go on together.
                nonfinite, signum = bool(not torch.isfinite(loss)), stop.signum
                if ddp:
                    flags = torch.tensor([float(nonfinite), signum], device=device)
                    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                    nonfinite, signum = bool(flags[0]), int(flags[1])
                if nonfinite:
                    if nan_policy == 'skip':
                        optimizer.zero_grad(set_to_none=True)
                        if master:
                            print(f'warning: skipped batch {i} of epoch {epoch + 1}: the loss is '
                                  f'{loss.item()}', file=sys.stderr)
                        continue
                    raise utils.TrainingStopped(
                        f'the loss is {loss.item()} at epoch {epoch + 1}, step {step}; the run '
                        f'stopped and {run.dir}/ckpt/last.ckpt is the last good checkpoint')
                scaler.scale(loss / accumulate).backward()
                if not last_micro_step:
                    continue
                if clip:
                    scaler.unscale_(optimizer)
                    if clip_by_value:
                        torch.nn.utils.clip_grad_value_(model.parameters(), clip)
                    else:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if first_step:
                    first_step = False
                    if device.type == 'cuda':
                        torch.cuda.synchronize(device)  # the step's kernels have run
                    if master:
                        run.log(utils.first_step_line(utils.process_age(),
                                                      time.perf_counter() - step_started))
                # TensorBoard's x-axis counts the steps taken before this one, as Lightning's does.
                if master and (step + 1) % log_every == 0:
                    writer.add_scalar('train/loss', loss.item(), step)
                step += 1
                if scheduler and scheduler['interval'] == 'step' and \
                        step % scheduler['frequency'] == 0:
                    scheduler['scheduler'].step()
                if signum or (checkpoints.every_n_train_steps and
                                step % checkpoints.every_n_train_steps == 0 and i + 1 < n_train):
                    save(epoch, i + 1, {})
                if signum:
                    if master:
                        writer.close()
                        message = (f'stopped by {signal.Signals(signum).name} at epoch {epoch + 1}, '
                                   f'step {step}; continue with: python train.py --resume {run.dir}')
                        print(message, file=sys.stderr)
                        run.log(message)
                    if ddp:
                        dist.destroy_process_group()
                    sys.exit(128 + signum)
            batches_done = 0
            metrics = {'train/loss': loss.item()}

            if (epoch + 1) % val_every == 0:
                val_loss, val_acc = evaluate(model, val_loader, loss_fn, n_val, device, autocast, ddp)
                metrics.update({'val/loss': val_loss, 'val/acc': val_acc})
                if master:
                    writer.add_scalar('val/loss', val_loss, step - 1)
                    writer.add_scalar('val/acc', val_acc, step - 1)
            # Epoch schedulers step after validation, as in Lightning (a plateau scheduler needs
            # the metric; skipped, as there, in epochs without validation).
            if scheduler and scheduler['interval'] == 'epoch' and \
                    (epoch + 1) % scheduler['frequency'] == 0:
                if 'monitor' not in scheduler:
                    scheduler['scheduler'].step()
                elif scheduler['monitor'] in metrics:
                    scheduler['scheduler'].step(metrics[scheduler['monitor']])

            stopping = stopper is not None and stopper.should_stop(metrics)
            save(epoch, None, metrics)
            epochs_done = epoch + 1
            if master:
                line = utils.eta_line(epoch + 1, max_epochs, metrics, time.time() - start,
                                      epoch + 1 - first_epoch)
                print(line, flush=True)
                run.log(line)
                if write_csv:
                    utils.record_metrics(utils.metrics_csv_path(run.dir), epoch + 1, step, metrics)
            if stopping:
                if master:
                    run.log(f'early stopping: {stopper.monitor} has not improved for '
                            f'{stopper.patience} validations (best {stopper.sign * stopper.best:.4g})')
                break
    finally:
        stop.restore()

    if cfg.get('test', True):
        if checkpoints.monitor and checkpoints.best_path:
            load_weights(raw_model, checkpoints.best_path)
        n_test = limit(len(test_loader), params.get('limit_test_batches'))
        test_loss, test_acc = evaluate(model, test_loader, loss_fn, n_test, device, autocast, ddp)
        if master:
            writer.add_scalar('test/loss', test_loss, step)
            writer.add_scalar('test/acc', test_acc, step)
            print(f'test/acc {test_acc:.4g}  test/loss {test_loss:.4g}')
            if write_csv:
                utils.record_metrics(utils.metrics_csv_path(run.dir), epochs_done, step,
                                     {'test/acc': test_acc, 'test/loss': test_loss})
    if master:
        writer.close()
        run.announce()
    if ddp:
        dist.destroy_process_group()


if __name__ == '__main__':
    utils.run_cli(main, sys.argv[1:])
