"""Tasks: what one kind of training does, in plain PyTorch. train.py's loop and train_pl.py's
Lightning adapter (models/lightning.py) both drive a task; the config's `train_wrapper:` names
one in `models.wrappers`:

    @models.wrappers.register('mixup')         # in models/mixup.py, imported in models/__init__.py
    class Mixup(models.Classification): ...    # or any Task; or a dotted path, no registering

The engines own the loop: batches to the device, backward passes, optimizer and scheduler
steps, precision, DDP, logging, checkpoints and the run's guards. A task owns what is specific
to it, and nothing of an engine.
"""
import contextlib

import torch
import torch.nn as nn

import utils
from models import ema
from models.metrics import make_metrics
from models.optim import check_optimizer, check_scheduler, make_optimizer, make_scheduler


class Task(nn.Module):
    """The base class of every task. What the engines call:

    __init__(**train_wrapper.args)
        Builds the networks, losses and metrics from their specs (models.make, losses.make,
        make_metrics). Pass `optim_spec` and `sched_spec` on to Task.__init__ for the default
        configure_optimizers.
    training_step(batch) -> loss
        `batch` is what the data module's train loader yields, already on the device. Returns
        the scalar loss to minimise. A task with several optimizers makes it a generator that
        yields one loss per optimizer, in configure_optimizers' order: the engine backpropagates
        each loss and steps its optimizer before it asks for the next one (a GAN's generator
        loss needs the discriminator that was just updated). Either way the engine checks each
        loss (trainer_params.nan_policy) before its backward pass.
    validation_step(batch) -> {'loss': tensor, ..., 'preds': tensor, 'target': tensor}
        Every entry but preds and target is a batch mean, averaged over the split by batch size
        and logged as val/<name>; preds and target update every metric in self.metrics, logged
        as val/<its name>. Leave it out for a task that does not validate.
    test_step(batch)
        The same, logged as test/<name>; the default is validation_step.
    predict_step(x) -> outputs for a batch of inputs (the default: self(x)), and
    prediction_table(outputs) -> (header, rows) for test.py --predict's CSV.
    configure_optimizers() -> [(optimizer, scheduler settings or None), ...]
        One pair per loss of training_step. The default: `optim_spec` over every parameter,
        with `sched_spec`. Scheduler settings are make_scheduler's {scheduler, interval,
        frequency, monitor}.
    epoch_images() -> {name: image tensor C x H x W in [0, 1]}
        Written after every training epoch to TensorBoard and to <run>/<name>/epoch=E.png.
    epoch_texts() -> {name: str}
        Written after every training epoch to TensorBoard's TEXT tab and to log.txt (a
        language model's sample). Draw with a torch.Generator of its own: torch's global
        random state is the run's, and an exact resume needs it untouched.

    `train_losses` names training_step's losses, one per optimizer (logged as train/<name>).

    Before a run writes anything, check_fits runs validation_step (training_step, for a task
    that does not validate) once on two train samples, under torch.no_grad() and in eval mode:
    keep side effects of a step (a counter, a running average) out of those, or skip them
    when torch.is_grad_enabled() is False.
    """
    train_losses = ('loss',)
    eval_scalars = ('loss',)  # the validation_step entries besides preds and target

    def __init__(self, optim_spec=None, sched_spec=None):
        super().__init__()
        self.optim_spec, self.sched_spec = optim_spec, sched_spec
        self.metrics = nn.ModuleDict()
        self.ema = None  # the weights' average (models/ema.py), when the spec asks for one

    def training_step(self, batch):
        raise NotImplementedError(f'{type(self).__name__} has no training_step')

    def validation_step(self, batch):
        raise NotImplementedError(f'{type(self).__name__} does not validate')

    def test_step(self, batch):
        return self.validation_step(batch)

    def predict_step(self, x):
        return self(x)

    def prediction_table(self, outputs):
        """One column per output value: `output`, or output_0, output_1, ..."""
        flat = outputs.reshape(len(outputs), -1)
        header = ['output'] if flat.shape[1] == 1 else [f'output_{i}' for i in
                                                        range(flat.shape[1])]
        return header, [[f'{v:.6g}' for v in row] for row in flat.tolist()]

    def configure_optimizers(self):
        if self.optim_spec is None:
            raise utils.ConfigError('is required', key='optim_spec')
        with utils.at_key('optim_spec'):
            optimizer = make_optimizer(self.optim_spec, self.named_parameters())
        scheduler = None
        if self.sched_spec:
            with utils.at_key('sched_spec'):
                scheduler = make_scheduler(self.sched_spec, optimizer)
        return [(optimizer, scheduler)]

    def epoch_images(self):
        return {}

    def epoch_texts(self):
        return {}

    @property
    def validates(self):
        return overrides(self, 'validation_step')

    def summary_metrics(self):
        """What TensorBoard's HParams view puts beside the run's config."""
        if not self.validates:
            return [f'train/{name}' for name in self.train_losses]
        return [f'{split}/{name}' for split in ('val', 'test')
                for name in (*self.metrics, *self.eval_scalars)]


def overrides(task, method):
    return getattr(type(task), method) is not getattr(Task, method)


def training_losses(task, batch):
    """[(name, loss)] of training_step, lazily: a generator task computes its next loss only
    after the engine has stepped the optimizer of the one before."""
    result = task.training_step(batch)
    if isinstance(result, torch.Tensor):
        result = [result]
    return zip(task.train_losses, result)


def optimizers_of(task, params):
    """The task's [(optimizer, scheduler)], checked against what the engine can do with them:
    one per loss, and the settings that act on a single optimizer step only with one."""
    with utils.at_key('train_wrapper.args'):
        pairs = task.configure_optimizers()
    if len(pairs) != len(task.train_losses):
        raise utils.ConfigError(f'{type(task).__name__}.configure_optimizers gives {len(pairs)} '
                                f'optimizers for {len(task.train_losses)} losses '
                                f'({", ".join(task.train_losses)}): it needs one per loss',
                                key='train_wrapper')
    if len(pairs) > 1:  # (trainer_params' types and ranges: utils.check_trainer_params)
        for key, neutral in (('gradient_clip_val', None), ('accumulate_grad_batches', 1)):
            if params.get(key, neutral) not in (neutral, 0):
                raise utils.ConfigError(
                    f'{type(task).__name__} steps {len(pairs)} optimizers in turn, so it cannot '
                    f'honour {key}: {params[key]!r}; do it in its training_step',
                    key=f'trainer_params.{key}')
    return pairs


def batch_size(batch):
    """The number of samples in a batch: a tensor, or a tuple/list/dict whose first is one."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, dict):
        batch = list(batch.values())
    return batch_size(batch[0])


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


class Evaluation:
    """One pass over a val or test split: step(batch) runs the task's validation (or test)
    step, sums its scalars with their batch sizes and updates the metrics. compute() sums over
    every rank under DDP (sums and counts, not means of means), so the result equals one
    process over the same data. A task with an EMA is evaluated with the averaged weights
    (val/...) and with the trained ones (val_raw/...)."""

    def __init__(self, task, split):
        self.parts = [_Pass(ema.averaged(task), split)]
        if task.ema is not None:
            self.parts.append(_Pass(task, f'{split}_raw'))
        self.split = split

    def step(self, batch):
        n = batch_size(batch)
        for part in self.parts:
            run = part.task.validation_step if self.split == 'val' else part.task.test_step
            part.update(run(batch), n)

    def compute(self):
        """{split/name: value}; {} when no rank saw a batch."""
        return {k: v for part in self.parts for k, v in part.compute().items()}


class _Pass:
    """The sums and metrics of one set of weights over a split."""

    def __init__(self, task, split):
        self.task, self.split = task, split
        self.sums, self.count = {}, 0
        for metric in task.metrics.values():
            metric.reset()

    def update(self, outputs, n):
        outputs = dict(outputs)
        preds, target = outputs.pop('preds', None), outputs.pop('target', None)
        for name, value in outputs.items():
            value = value.detach().double() * n
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.count += n
        if preds is not None:
            for metric in self.task.metrics.values():
                metric.update(preds.detach(), target)

    def compute(self):
        """{split/name: value}; {} when no rank saw a batch."""
        shares = [({n: v.item() for n, v in self.sums.items()}, self.count)]
        if utils.guards.distributed():  # a rank may have had no batch: objects, not tensors
            shares = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(shares, ({n: v.item() for n, v in
                                                          self.sums.items()}, self.count))
        count = sum(n for _, n in shares)
        if count == 0:
            return {}
        names = sorted({name for sums, _ in shares for name in sums})
        values = {f'{self.split}/{name}': sum(sums.get(name, 0.0) for sums, _ in shares) / count
                  for name in names}
        for name, metric in self.task.metrics.items():  # torchmetrics syncs ranks itself
            values[f'{self.split}/{name}'] = float(metric.compute())
        return values


def check_task(spec):
    """What of a `train_wrapper:` spec can be checked without building the task: it names a
    Task, and the Task's own arguments (its nested specs are checked as it builds them)."""
    import models
    if isinstance(spec, dict) and isinstance(spec.get('name'), str):
        target = models.wrappers.get(spec['name'])
        if not (isinstance(target, type) and issubclass(target, Task)):
            raise utils.ConfigError(f"'{spec['name']}' is not a task: a train_wrapper is a "
                                    'subclass of models.Task (models/task.py)', key='name')
    mistakes = utils.Mistakes()
    with mistakes.part():
        models.wrappers.check(spec)
    args = spec.get('args') if isinstance(spec, dict) else None
    for key, check in (('optim_spec', check_optimizer), ('sched_spec', check_scheduler)):
        # the base Task's own; one that needs ${run.total_steps} is checked once that is known
        if isinstance(args, dict) and args.get(key) is not None and \
                not utils.uses_run_values(args[key]):
            with mistakes.part(), utils.at_key(f'args.{key}'):
                check(args[key])
    mistakes.raise_them()


def make_task(spec, checked=False):
    """The task of a `train_wrapper:` spec: a registered name or the dotted path of a Task,
    with its weights' average when the spec has `ema:` (models/ema.py). `checked`: the caller
    has run check_task on it."""
    import models
    if not checked:
        check_task(spec)
    task = models.wrappers.make(spec)
    with utils.at_key('ema'):
        return ema.attach(task, spec.get('ema') if isinstance(spec, dict) else None)


def load_task(path, what=None):
    """A task rebuilt from a checkpoint alone (its train_wrapper spec and weights), no YAML."""
    state = utils.load_checkpoint(path, what)
    spec = (state.get('hyper_parameters') or {}).get('spec')
    if spec is None:
        raise utils.ConfigError(f'{path}: no train_wrapper spec in it (hyper_parameters.spec)')
    task = make_task(utils.without_init_from(spec))
    task.load_state_dict(state['state_dict'])
    return task



def check_fits(task, data, device='cpu'):
    """Before a run writes anything: the train split gives batches, and the task's networks
    take its samples (a dry validation step on two of them, or a training step for a task
    that does not validate, without gradients, in eval mode, with torch's random state kept). A mismatch is one line naming the spec and the batch, not
    a traceback from deep inside the model."""
    settings = data.loader_settings['train']
    n, size = len(data.splits['train']), settings['batch_size']
    if (n // size if settings['drop_last'] else -(-n // size)) == 0:
        raise utils.ConfigError(
            f"the train split gives no batches ({n} samples, batch_size {size}, drop_last "
            f"{settings['drop_last']})",
            key='data_module')
    try:
        samples = [data.splits['train'][i] for i in range(min(2, len(data.splits['train'])))]
    except (OSError, ValueError, RuntimeError, EOFError) as e:  # a file that is not an image
        raise utils.ConfigError(f'a train sample cannot be read: {type(e).__name__}: '
                                f'{utils.first_line(e)}', key='data_module') from e
    was_training = task.training
    with torch.random.fork_rng(devices=[]), torch.no_grad(), _eager():
        batch = to_device(torch.utils.data.default_collate(samples), device)
        task.eval()
        try:  # validation_step has no side effects to undo (a training_step may count calls)
            if task.validates:
                task.validation_step(batch)
            else:
                for _ in training_losses(task, batch):
                    pass
        except utils.ConfigError:
            raise
        except Exception as e:
            reason = utils.first_line(e)
            raise utils.ConfigError(f'does not fit the data: {reason[:120]} (a train batch of '
                                    f'{len(samples)} is {utils.describe(batch)})',
                                    key=_model_key(task)) from None
        finally:
            task.train(was_training)


def _eager():
    """Compiled modules run as plain PyTorch (no compilation for a two-sample batch)."""
    stance = getattr(torch.compiler, 'set_stance', None)
    return stance('force_eager') if stance else contextlib.nullcontext()


def _model_key(task):
    """The key of the spec to blame: the model's, when the task has one."""
    return 'train_wrapper.args.model_spec' if hasattr(task, 'model') else 'train_wrapper'
