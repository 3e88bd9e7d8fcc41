"""Optimizers and lr schedulers from specs, shared by every task.

    optim_spec: {name: Adam, args: {lr: 1.e-3},                 torch.optim class or dotted path
                 no_decay: true,                                no weight decay on biases and
                                                                norm weights (or a pattern list)
                 param_groups: [{pattern: 'backbone.*', lr_mult: 0.1}],
                 freeze: ['features.*']}                        not trained at all
    sched_spec: {name: StepLR, args: {step_size: 10},           torch.optim.lr_scheduler class
                 interval: epoch, frequency: 1, monitor: val/loss}
    sched_spec: {name: SequentialLR, args: {milestones: [2], schedulers: [
                   {name: LinearLR, args: {start_factor: 0.1, total_iters: 2}},
                   {name: CosineAnnealingLR, args: {T_max: 8}}]}}   nested specs: same optimizer
    sched_spec: {name: warmup_cosine, args: {warmup: 2, total: ${trainer_params.max_epochs}}}

Patterns are fnmatch patterns over parameter names, matched whole (`model.fc.weight`) or
without their first part (`fc.weight`, the name inside a task's network). A pattern that
matches no parameter is an error. Steps, totals and warmups count in the spec's `interval`
(epochs or optimizer steps); `${run.steps_per_epoch}` and `${run.total_steps}` give the run's
(run_lengths).
"""
import fnmatch
import inspect
import math
import sys

import torch

import utils

GROUP_KEYS = ('no_decay', 'param_groups', 'freeze')  # an optim_spec's, about the parameters
optimizers = utils.Registry('torch.optim optimizers', spec_keys=GROUP_KEYS)
schedulers = utils.Registry('torch.optim.lr_scheduler schedulers',
                            spec_keys=['interval', 'frequency', 'monitor'])  # how to step it

for _name, _obj in vars(torch.optim).items():
    if inspect.isclass(_obj) and issubclass(_obj, torch.optim.Optimizer) and \
            _obj is not torch.optim.Optimizer:
        optimizers.register(_name)(_obj)
for _name, _obj in vars(torch.optim.lr_scheduler).items():
    if inspect.isclass(_obj) and issubclass(_obj, torch.optim.lr_scheduler.LRScheduler) and \
            _obj is not torch.optim.lr_scheduler.LRScheduler and not _name.startswith('_'):
        schedulers.register(_name)(_obj)


@schedulers.register('warmup_cosine')
class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """lr x start_factor rising linearly to lr over `warmup` steps, then a half cosine down to
    lr x min_factor at step `total`, and there after it. A step is an epoch or an optimizer
    step, by the spec's interval; a float warmup below 1 is that fraction of total (rounded).
    At step s < warmup the factor is
    start_factor + (1 - start_factor) s / warmup; after, with p = (s - warmup) / (total - warmup),
    min_factor + (1 - min_factor) (1 + cos(pi p)) / 2."""

    def __init__(self, optimizer, warmup: int | float, total: int, start_factor: float = 0.01,
                 min_factor: float = 0.0, last_epoch: int = -1):
        if isinstance(warmup, float):
            if not 0 <= warmup < 1:
                raise ValueError(f'a float warmup is a fraction of total, in [0, 1), but got '
                                 f'{warmup}')
            warmup = round(warmup * total)
        if not 0 <= warmup < total:
            raise ValueError(f'needs 0 <= warmup < total, but got warmup {warmup}, total {total}')
        self.warmup, self.total = warmup, total
        self.start_factor, self.min_factor = start_factor, min_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, step):
        if step < self.warmup:
            return self.start_factor + (1 - self.start_factor) * step / self.warmup
        progress = min(1.0, (step - self.warmup) / (self.total - self.warmup))
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * progress)) / 2

    def get_lr(self):
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]


def make_optimizer(spec, params):
    """The optimizer of `spec` over `params`: named parameters (module.named_parameters()),
    grouped by the spec's no_decay, param_groups and freeze; or plain tensors, one group.
    Frozen parameters get requires_grad False; parameters that already have it are left out."""
    params = list(params)
    if not isinstance(spec, dict) or not any(k in spec for k in GROUP_KEYS):
        tensors = [p for _, p in params] if params and isinstance(params[0], tuple) else params
        return optimizers.make(spec, args={'params': [p for p in tensors if p.requires_grad]})
    if params and not isinstance(params[0], tuple):
        raise utils.ConfigError('no_decay, param_groups and freeze need the named parameters '
                                '(the task passes module.parameters())')
    plain = {k: v for k, v in spec.items() if k not in GROUP_KEYS}
    target = optimizers.get(plain.get('name'))
    defaults = {**(utils.accepted_args(target) or {}), **(plain.get('args') or {})}
    return optimizers.make(plain, args={'params': param_groups(spec, params, defaults)})


def check_optimizer(spec):
    """An optim_spec's name and arguments, checked before any parameter exists (its groups
    are checked against the parameters when it is built)."""
    plain = {k: v for k, v in spec.items() if k not in GROUP_KEYS} if isinstance(spec, dict) \
        else spec
    optimizers.check(plain, args={'params': []})


def check_scheduler(spec):
    """A sched_spec's name and arguments, checked before its optimizer exists (a nested spec
    of args.schedulers is checked when it is built)."""
    schedulers.check(spec, args={'optimizer': None})
    if isinstance(spec, dict):
        check_stepping(spec)


def check_stepping(spec):
    """How a sched_spec is stepped: `interval` epoch or step, every `frequency` of them."""
    interval = spec.get('interval', 'epoch')
    if interval not in ('epoch', 'step'):
        raise utils.ConfigError(f"must be 'epoch' or 'step', but got {interval!r}", key='interval')
    frequency = spec.get('frequency', 1)
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        raise utils.ConfigError(f'must be an integer >= 1 (every how many {interval}s), but got '
                                f'{frequency!r}', key='frequency')


def param_groups(spec, named, defaults):
    """torch's param groups for an optim_spec: the frozen parameters out, each other one in
    the group of the first `param_groups` pattern it matches (lr x lr_mult, its own
    weight_decay), and within each group the `no_decay` ones apart, with weight_decay 0."""
    rules = _group_rules(spec.get('param_groups'))
    freeze = _patterns(spec.get('freeze'), 'freeze')
    no_decay = spec.get('no_decay', False)
    if not isinstance(no_decay, bool):
        no_decay = _patterns(no_decay, 'no_decay')
    used = set()
    groups = {}  # name -> group
    for name, p in named:
        frozen = [f for f in freeze if matches(f, name)]
        if frozen:
            used.add(('freeze', freeze.index(frozen[0])))
            p.requires_grad_(False)
            continue
        if not p.requires_grad:
            continue
        rule = next(((i, r) for i, r in enumerate(rules) if matches(r['pattern'], name)), None)
        settings, label = {}, 'default'
        if rule:
            used.add(('param_groups', rule[0]))
            label = rule[1]['pattern']
            settings = {k: v for k, v in rule[1].items() if k in ('weight_decay',)}
            if 'lr_mult' in rule[1]:
                settings['lr'] = defaults['lr'] * rule[1]['lr_mult']
        if no_decay is True and p.ndim <= 1 or \
                isinstance(no_decay, list) and any(matches(q, name) for q in no_decay):
            if isinstance(no_decay, list):
                used.update(('no_decay', i) for i, q in enumerate(no_decay) if matches(q, name))
            settings, label = {**settings, 'weight_decay': 0.0}, f'{label}/no_decay'
        group = groups.setdefault(label, {'name': label, 'params': [], **settings})
        group['params'].append(p)
    for key, patterns in (('freeze', freeze), ('param_groups', [r['pattern'] for r in rules]),
                          ('no_decay', no_decay if isinstance(no_decay, list) else [])):
        for i, pattern in enumerate(patterns):
            if (key, i) not in used:
                where = f'{key}.{i}.pattern' if key == 'param_groups' else f'{key}.{i}'
                raise utils.ConfigError(f"'{pattern}' matches no parameter (they are named like "
                                        f"{', '.join(n for n, _ in named[:3])}, ...)", key=where)
    if not groups:
        raise utils.ConfigError('freezes every parameter: nothing is left to train', key='freeze')
    return list(groups.values())


def matches(pattern, name):
    """A parameter name matches whole (model.fc.weight) or without its first part (fc.weight)."""
    return fnmatch.fnmatchcase(name, pattern) or \
        '.' in name and fnmatch.fnmatchcase(name.split('.', 1)[1], pattern)


def _patterns(value, key):
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise utils.ConfigError(f'must be a list of name patterns, but got {value!r}', key=key)
    return value


def _group_rules(value):
    value = [] if value is None else value
    if not isinstance(value, list):
        raise utils.ConfigError(f'must be a list of {{pattern, lr_mult, weight_decay}}, but got '
                                f'{value!r}', key='param_groups')
    for i, rule in enumerate(value):
        with utils.at_key(f'param_groups.{i}'):
            if not isinstance(rule, dict) or not isinstance(rule.get('pattern'), str):
                raise utils.ConfigError(f'must be {{pattern: str, lr_mult, weight_decay}}, but '
                                        f'got {rule!r}')
            for key, v in rule.items():
                if key not in ('pattern', 'lr_mult', 'weight_decay'):
                    raise utils.ConfigError(f"unknown key{utils.close_matches(key, ['lr_mult'])}"
                                            ' (known: pattern, lr_mult, weight_decay)', key=key)
                if key != 'pattern' and (isinstance(v, bool) or not isinstance(v, (int, float))
                                         or v < 0):
                    raise utils.ConfigError(f'must be a number >= 0, but got {v!r}', key=key)
    return value


def describe_groups(task, optimizers):
    """'default: 4 tensors, 17,674 values, lr 0.01, weight_decay 0; ...; frozen: ...', the
    param groups of every optimizer, for --check."""
    parts = []
    for optimizer in optimizers:
        for i, group in enumerate(optimizer.param_groups):
            values = sum(p.numel() for p in group['params'])
            settings = ', '.join(f'{k} {group[k]:.3g}' for k in ('lr', 'weight_decay')
                                 if k in group)
            parts.append(f"{group.get('name', f'group {i}')}: {len(group['params'])} tensors, "
                         f'{values:,} values, {settings}')
    frozen = [p for name, p in task.named_parameters()
              if not p.requires_grad and not name.startswith('ema.')]
    if frozen:
        parts.append(f'frozen: {len(frozen)} tensors, {sum(p.numel() for p in frozen):,} values')
    return '; '.join(parts)


def make_scheduler(spec, optimizer):
    """The scheduler and how to step it: {'scheduler', 'interval', 'frequency', 'monitor'},
    the dict Lightning's configure_optimizers takes. The specs in args.schedulers
    (SequentialLR, ChainedScheduler) are built on the same optimizer."""
    if not isinstance(spec, dict):
        raise utils.ConfigError(f'must be a scheduler spec {{name, args, interval}}, but got {spec!r}')
    check_stepping(spec)
    interval = spec.get('interval', 'epoch')
    extra = {'optimizer': optimizer}
    inner = (spec.get('args') or {}).get('schedulers') if isinstance(spec.get('args'), dict) \
        else None
    if isinstance(inner, list) and all(isinstance(s, (dict, str)) for s in inner):
        extra['schedulers'] = []
        for i, nested in enumerate(inner):
            with utils.at_key(f'args.schedulers.{i}'):
                outer = sorted(set(nested) - {'name', 'args'}) if isinstance(nested, dict) else []
                if outer:
                    raise utils.ConfigError(f"{', '.join(outer)} belongs on the outer scheduler "
                                            'spec: a nested one has only name and args',
                                            key=outer[0])
                extra['schedulers'].append(schedulers.make(nested, args={'optimizer': optimizer}))
    scheduler = schedulers.make(spec, args=extra)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    settings = {'scheduler': scheduler, 'interval': interval, 'frequency': spec.get('frequency', 1)}
    monitor = spec.get('monitor', 'val/loss' if plateau else None)
    if monitor:
        settings['monitor'] = monitor
    return settings


def limit_batches(n_batches, value):
    """Lightning's limit_*_batches: an int is a count, a float a fraction."""
    if value is None:
        return n_batches
    return min(n_batches, value if isinstance(value, int) else int(n_batches * value))


def run_lengths(train_batches, params):
    """{steps_per_epoch, total_steps}: the optimizer steps of an epoch and of the run, from
    this rank's train batches an epoch and trainer_params (limit_train_batches,
    accumulate_grad_batches, max_epochs, max_steps), as both engines count them. What
    `${run.steps_per_epoch}` and `${run.total_steps}` stand for in a config."""
    train_batches = limit_batches(train_batches, params.get('limit_train_batches'))
    per_epoch = -(-train_batches // params.get('accumulate_grad_batches', 1))
    epochs, max_steps = max_epochs(params), params.get('max_steps', -1)
    total = per_epoch * epochs if epochs != -1 else None
    if max_steps not in (None, -1):
        total = max_steps if total is None else min(total, max_steps)
    return {'steps_per_epoch': per_epoch, 'total_steps': total}


def max_epochs(params):
    """trainer_params' max_epochs as Lightning reads it (-1: no limit). Unset or None, it is
    1000, or no limit when max_steps is set: the steps end the run."""
    epochs = params.get('max_epochs')
    if epochs is None:
        return 1000 if params.get('max_steps', -1) in (None, -1) else -1
    return epochs


def with_run_lengths(cfg, data, world_size):
    """The config with its `${run.steps_per_epoch}` and `${run.total_steps}` filled in, and
    the run's lengths. Sets the data up (its size is needed)."""
    data.setup()
    params = cfg.get('trainer_params') or {}
    lengths = run_lengths(data.train_batches(world_size), params)
    if lengths['total_steps'] is None:
        lengths.pop('total_steps')  # max_epochs -1 and no max_steps: a run without an end
    return utils.resolve_run_values(cfg, lengths), lengths


def check_lengths(schedules, lengths, master):
    """A warning for each step scheduler whose length is not the run's: one that ends early
    holds its last lr (OneCycleLR fails), one that is longer never reaches its end."""
    total = lengths.get('total_steps')
    for config in schedules:
        scheduler = config['scheduler']
        own = {'OneCycleLR': 'total_steps', 'CosineAnnealingLR': 'T_max',
               'WarmupCosine': 'total'}.get(type(scheduler).__name__)
        if config['interval'] != 'step' or own is None or total is None:
            continue
        steps = getattr(scheduler, own) * config['frequency']
        if steps != total and master:
            print(f'warning: {type(scheduler).__name__} lasts {steps} optimizer steps, but the '
                  f'run takes {total}: set its {own} to ${{run.total_steps}}', file=sys.stderr)


def resume_notes(saved_cfg, cfg, epochs_done, schedules):
    """What a resume says about itself, in one line each: the run was finished already, or
    its lr schedules keep the length they started with though max_epochs changed."""
    notes = []
    was = max_epochs(saved_cfg.get('trainer_params') or {})
    now = max_epochs(cfg.get('trainer_params') or {})
    if now != -1 and epochs_done >= now:
        notes.append(f'note: the run has done {epochs_done} epochs of trainer_params.max_epochs '
                     f'{now} already: nothing to train; raise it to train on')
    elif was != now and schedules:
        names = ', '.join(type(s['scheduler']).__name__ for s in schedules)
        notes.append(f'note: trainer_params.max_epochs is {now} now, {was} before: the lr '
                     f'schedules ({names}) go on as saved, they are not stretched to the new '
                     'length')
    return notes


def step_schedulers(configs, interval, count, metrics=None):
    """Step the schedulers of `interval` ('step': after an optimizer step; 'epoch': after the
    epoch's validation) whose `frequency` divides `count`, the steps or epochs done. A
    monitored one (ReduceLROnPlateau) gets its metric, and is skipped, as in Lightning, when
    the metric was not logged (an epoch without validation). What train.py does for every
    task and models/lightning.py for tasks with several optimizers."""
    for config in configs:
        if config['interval'] != interval or count % config['frequency']:
            continue
        monitor, metrics = config.get('monitor'), metrics or {}
        if monitor is None:
            config['scheduler'].step()
        elif monitor in metrics:
            config['scheduler'].step(float(metrics[monitor]))
        elif any(k.startswith('val/') for k in metrics):  # a validation ran without it: a typo
            raise utils.ConfigError(f"'{monitor}' is not a metric this run logs"
                                    f'{utils.close_matches(monitor, metrics)} (it logs '
                                    f"{', '.join(sorted(metrics))})",
                                    key='train_wrapper.args.sched_spec.monitor')
