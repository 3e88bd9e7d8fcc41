"""Plumbing shared by every folder and both entrypoints: the registry, config loading and
command-line overrides, run folders, and the one-line user errors. Imports nothing of the
project, so any module may import it.

A config is a YAML mapping:
    data_module:   {name, args}                     datasets registry
    train_wrapper: {name, args: {model_spec, loss_spec, optim_spec, sched_spec}}
    trainer_params: {...}                           pl.Trainer arguments
    checkpoint:    {...}                            ModelCheckpoint arguments
    callbacks:     [{name, args}, ...]              callbacks registry or dotted paths
    seed: int
    test: bool                                      evaluate the test split after fit
"""

import argparse
import contextlib
import copy
import difflib
import fnmatch
import importlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent


# ---------------------------------------------------------------- errors

class ConfigError(Exception):
    """A user's mistake. Entrypoints print it as one line and exit with status 2."""

    def __init__(self, message, key=None, file=None):
        super().__init__(message)
        self.message, self.key, self.file = message, key, file

    def __str__(self):
        where = [str(p) for p in (self.file, self.key) if p]
        return ': '.join(where + [self.message])


@contextlib.contextmanager
def at_key(key, file=None):
    """Prefix the key path (and name the file) of any ConfigError raised inside."""
    try:
        yield
    except ConfigError as e:
        if key:
            e.key = f'{key}.{e.key}' if e.key else key
        e.file = e.file or file
        raise


def close_matches(word, choices):
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ''


def run_cli(main, argv=None):
    """Run an entrypoint's main: a ConfigError becomes one line on stderr and exit status 2
    (the traceback only with --debug)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except ConfigError as e:
        if '--debug' in argv:
            raise
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------- registry

class Registry:
    """Names -> classes or functions, filled by the `register` decorator.

    `make({'name': ..., 'args': {...}}, args=None)` builds one; `args` adds run-time values on
    top of a deep copy of the spec's args. A dotted name that is not registered is imported
    (`torch.nn.CrossEntropyLoss`). `modules` are imported on first use: registries whose
    entries need heavy imports (Lightning) stay cheap for code that never asks for them.
    """

    def __init__(self, kind, modules=()):
        self.kind = kind
        self._entries = {}
        self._pending = list(modules)

    def register(self, name):
        def decorator(obj):
            first = self._entries.get(name)
            if first is not None and first is not obj:
                raise ValueError(f"{self.kind} name '{name}' is already registered by "
                                 f'{_where(first)}; pick another name for {_where(obj)}')
            self._entries[name] = obj
            return obj
        return decorator

    def _load_pending(self):
        while self._pending:
            importlib.import_module(self._pending.pop(0))

    def list(self, pattern='*'):
        self._load_pending()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name):
        self._load_pending()
        if not isinstance(name, str) or not name:
            raise ConfigError(f'must be a {self.kind} name, but got {name!r}', key='name')
        if name in self._entries:
            return self._entries[name]
        if '.' in name:
            return import_path(name)
        known = self.list()
        raise ConfigError(f"unknown {self.kind} name '{name}'{close_matches(name, known)} "
                          f"(known: {', '.join(known)})", key='name')

    def make(self, spec, args=None):
        if isinstance(spec, str):
            spec = {'name': spec}
        if not isinstance(spec, dict) or 'name' not in spec:
            raise ConfigError(f"must be a {self.kind} spec {{name: ..., args: {{...}}}}, "
                              f'but got {spec!r}')
        spec_args = spec.get('args')
        if spec_args is None:
            spec_args = {}
        if not isinstance(spec_args, dict):
            raise ConfigError(f'must be a mapping, but got {spec_args!r}', key='args')
        kwargs = copy.deepcopy(spec_args)
        kwargs.update(args or {})
        target = self.get(spec['name'])
        label = f"{self.kind} '{spec['name']}'"
        check_args(target, kwargs, label)
        try:
            with at_key('args'):  # errors from nested specs: args.model_spec.name
                return target(**kwargs)
        except ValueError as e:  # torch's way of rejecting a value: lr=-1, betas=[2, 0]
            raise ConfigError(f'{label} rejected its arguments: {e}', key='args') from None


def _where(obj):
    try:
        file = inspect.getsourcefile(obj)
        line = inspect.getsourcelines(obj)[1]
        return f'{obj.__module__}.{obj.__qualname__} ({file}:{line})'
    except (TypeError, OSError):
        return repr(obj)


def import_path(name):
    module_name, _, attr = name.rpartition('.')
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import '{name}': {e}", key='name') from None
    if not hasattr(module, attr):
        raise ConfigError(f"'{module_name}' has no attribute '{attr}'"
                          f'{close_matches(attr, dir(module))}', key='name')
    return getattr(module, attr)


def accepted_args(target):
    """{name: default} of what `target(**kwargs)` accepts (inspect.Parameter.empty when
    required), or None when it takes anything. A class whose __init__ passes **kwargs on to
    its parent accepts the parent's arguments too."""
    is_class = inspect.isclass(target)
    inits = [c.__dict__['__init__'] for c in target.__mro__ if '__init__' in c.__dict__] \
        if is_class else [target]
    accepted = {}
    for init in inits:
        try:
            params = list(inspect.signature(init).parameters.values())[1 if is_class else 0:]
        except (TypeError, ValueError):
            return None
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                accepted.setdefault(p.name, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return accepted
        if getattr(init, '__module__', 'builtins').split('.')[0] in ('torch', 'builtins'):
            return None  # a catch-all **kwargs in torch or object says nothing
    return None


def check_args(target, kwargs, label, prefix='args.'):
    """Unknown, missing and non-numeric-where-a-number-is-expected arguments, as ConfigErrors."""
    accepted = accepted_args(target)
    if accepted is None:
        return
    for name, value in kwargs.items():
        if name not in accepted:
            raise ConfigError(f"unknown argument '{name}' for {label}"
                              f'{close_matches(name, accepted)} '
                              f"(accepted: {', '.join(sorted(accepted))})", key=prefix + name)
        default = accepted[name]
        if type(default) in (int, float) and isinstance(value, str):
            raise ConfigError(f'must be a number, but got {value!r}', key=prefix + name)
    for name, default in accepted.items():
        if default is inspect.Parameter.empty and name not in kwargs:
            raise ConfigError(f"{label} needs argument '{name}'", key=prefix.rstrip('.') or None)


# ---------------------------------------------------------------- config

SECTIONS = {'data_module': dict, 'train_wrapper': dict, 'trainer_params': dict,
            'checkpoint': dict, 'callbacks': list, 'seed': int, 'test': bool}
KINDS = {dict: 'a mapping', list: 'a list', int: 'an integer', bool: 'true or false'}
REQUIRED = ('data_module', 'train_wrapper')


class Loader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads `1e-3` as a float (YAML 1.2 does; PyYAML's 1.1 rules
    need `1.0e-3` and would hand the optimizer the string '1e-3')."""


Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'), list('-+0123456789'))


def parse_yaml(text):
    return yaml.load(text, Loader=Loader)


def load_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError('config file not found', file=path)
    try:
        cfg = parse_yaml(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f'{path}:{mark.line + 1}' if mark else str(path)
        raise ConfigError(f"invalid YAML: {getattr(e, 'problem', e)}", file=where) from None
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f'must be a mapping at the top level, but got {type(cfg).__name__}',
                          file=path)
    return cfg


def check_config(cfg):
    for key in cfg:
        if key not in SECTIONS and not str(key).startswith('_'):
            raise ConfigError(f'unknown section{close_matches(key, SECTIONS)} '
                              f"(known: {', '.join(SECTIONS)})", key=key)
    for key in REQUIRED:
        if key not in cfg:
            raise ConfigError('required section is missing', key=key)
    for key, kind in SECTIONS.items():
        value = cfg.get(key)
        if value is not None and (not isinstance(value, kind) or
                                  (kind is int and isinstance(value, bool))):
            raise ConfigError(f'must be {KINDS[kind]}, but got {value!r}', key=key)


def apply_overrides(cfg, overrides):
    """`a.b=1` sets an existing key, `+a.b=1` may create it, `~a.b` deletes it. Values are
    parsed as YAML; integer parts index lists (`callbacks.0.name=eta`)."""
    for item in overrides:
        delete = item.startswith('~')
        path, sep, raw = item.lstrip('~').partition('=')
        create = path.startswith('+')
        path = path.lstrip('+')
        if not path or (not sep and not delete):
            raise ConfigError(f"override '{item}' must look like KEY=VALUE, +KEY=VALUE or ~KEY")
        try:
            value = parse_yaml(raw) if sep else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{item}': value is not valid YAML: {e}") from None
        *parents, last = path.split('.')
        node = cfg
        for i, part in enumerate(parents):
            node = _child(node, part, item, '.'.join(parents[:i]), create)
        _set(node, last, value, item, '.'.join(parents), create, delete)
    return cfg


def _key(node, part, item, where, create):
    if isinstance(node, list):
        if not part.lstrip('-').isdigit() or not -len(node) <= int(part) < len(node):
            raise ConfigError(f"override '{item}': '{where}' is a list of {len(node)}, "
                              f"'{part}' is not an index in it")
        return int(part)
    if not isinstance(node, dict):
        raise ConfigError(f"override '{item}': '{where}' is {node!r}, not a mapping")
    if part not in node and not create:
        inside = f" under '{where}'" if where else ''
        raise ConfigError(f"override '{item}': no key '{part}'{inside}"
                          f'{close_matches(part, node)} (use +KEY=VALUE to add a new key)')
    return part


def _child(node, part, item, where, create):
    key = _key(node, part, item, where, create)
    if isinstance(node, dict) and node.get(key) is None:
        node[key] = {}
    return node[key]


def _set(node, part, value, item, where, create, delete):
    key = _key(node, part, item, where, create and not delete)
    if delete:
        del node[key]
    else:
        node[key] = value


def load_config(path, overrides=(), seed=None):
    with at_key(None, file=path):
        cfg = load_yaml(path)
        apply_overrides(cfg, overrides)
        if seed is not None:
            cfg['seed'] = seed
        check_config(cfg)
    return cfg


# ---------------------------------------------------------------- command line and run folders

def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--config', help='YAML config (default with --resume: the run\'s config.yaml)')
    p.add_argument('--name', help='run folder name under --save-dir (default: config file stem)')
    p.add_argument('--gpu', help='comma-separated GPU ids, e.g. 0,1 (default: CPU)')
    p.add_argument('--resume', metavar='RUN_DIR_OR_CKPT',
                   help='continue save/<name> from ckpt/last.ckpt, or from a .ckpt file')
    p.add_argument('--seed', type=int, help='overrides the config\'s seed')
    p.add_argument('--save-dir', default='save', help='where run folders live (default: save)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of config errors')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='config overrides: a.b=1, +new.key=1, ~drop.key')
    return p


def is_rank_zero():
    """True in the process that owns the run folder. Launchers (torchrun, SLURM, Lightning's
    own DDP launcher) tell the other processes their rank through these variables."""
    return all(int(os.environ.get(k, 0)) == 0
               for k in ('RANK', 'LOCAL_RANK', 'NODE_RANK', 'SLURM_PROCID'))


def check_name(name):
    if not name or name in ('.', '..') or '/' in name or '\\' in name or name.startswith('.'):
        raise ConfigError(f"--name must be a plain folder name, but got '{name}'")


def find_resume(target):
    """--resume RUN_DIR or a .ckpt file -> (run folder, checkpoint file)."""
    path = Path(target)
    if path.is_dir():
        ckpt = path / 'ckpt' / 'last.ckpt'
        if not ckpt.is_file():
            raise ConfigError(f'--resume {target}: no checkpoint at {ckpt}')
        return path, ckpt
    if path.is_file():
        run_dir = path.parent.parent
        if not (run_dir / 'config.yaml').is_file():
            raise ConfigError(f'--resume {target}: not inside a run folder '
                              f'(no {run_dir / "config.yaml"})')
        return run_dir, path
    raise ConfigError(f'--resume {target}: no such run folder or checkpoint file')


class Run:
    """What an entrypoint needs to start or continue one run, resolved from its arguments
    before anything is built or written."""

    def __init__(self, args, argv, entry):
        self.command = ' '.join(shlex.quote(a) for a in ['python', entry, *argv])
        self.resuming = bool(args.resume)
        if self.resuming:
            self.dir, self.ckpt = find_resume(args.resume)
            self.config_path = Path(args.config or self.dir / 'config.yaml')
        else:
            if not args.config:
                raise ConfigError('--config is required (or --resume a run)')
            self.config_path = Path(args.config)
            self.ckpt = None
            name = args.name or self.config_path.stem
            check_name(name)
            self.dir = Path(args.save_dir) / name
            if self.dir.exists() and is_rank_zero():
                raise ConfigError(f'run folder {self.dir} already exists; continue it with '
                                  f'--resume {self.dir}, or pick another --name')
        self.cfg = load_config(self.config_path, args.overrides, args.seed)
        self.cfg.setdefault('seed', 0)
        self.gpus = parse_gpus(args.gpu)

    def create(self):
        """Make (or reopen, on resume) the run folder: config.yaml, src/, log.txt. Rank 0 only."""
        if not self.resuming:
            self.dir.mkdir(parents=True)  # fails rather than reuse a folder made since the check
            snapshot_code(self.dir / 'src')
        history = ''
        old = self.dir / 'config.yaml'
        if old.is_file():
            history = ''.join(l for l in old.read_text().splitlines(True) if l.startswith('# '))
        stamp = time.strftime('%Y-%m-%d %H:%M:%S')
        text = history + f'# {stamp}: {self.command}\n' + yaml.safe_dump(self.cfg, sort_keys=False)
        tmp = self.dir / 'config.yaml.tmp'
        tmp.write_text(text)
        os.replace(tmp, self.dir / 'config.yaml')
        self.log(f"{'resumed' if self.resuming else 'started'} {stamp}: {self.command}")

    def announce(self):
        print(f'run folder: {self.dir}\nsee it in TensorBoard: tensorboard --logdir '
              f'{self.dir.parent}')

    def log(self, line):
        with open(self.dir / 'log.txt', 'a') as f:
            f.write(line + '\n')


def parse_gpus(text):
    if text is None or text == '':
        return []
    try:
        ids = [int(t) for t in str(text).split(',')]
    except ValueError:
        raise ConfigError(f"--gpu must be comma-separated integers like 0,1, but got '{text}'") \
            from None
    import torch
    count = torch.cuda.device_count()
    if count == 0:
        raise ConfigError(f'--gpu {text}: this machine has no CUDA GPU; leave out --gpu to '
                          'train on the CPU')
    bad = [i for i in ids if not 0 <= i < count]
    if bad:
        raise ConfigError(f'--gpu {text}: no GPU {bad[0]}; this machine has GPUs 0-{count - 1}')
    return ids


def snapshot_code(dst):
    """Copy the project's code (git-tracked and untracked-not-ignored files, never load/ or
    save/) to dst, with the git commit and diff when there is a repository."""
    def git(*cmd):
        out = subprocess.run(['git', '-C', str(ROOT), *cmd], capture_output=True, text=True)
        return out.stdout if out.returncode == 0 else None

    listed = git('ls-files', '--cached', '--others', '--exclude-standard', '-z')
    if listed is not None:
        files = [f for f in listed.split('\0') if f]
    else:
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob('*') if p.is_file()
                 and not any(part.startswith(('.', '__pycache__')) for part in
                             p.relative_to(ROOT).parts)]
    for rel in files:
        src = ROOT / rel
        if rel.split('/')[0] in ('load', 'save') or not src.is_file() or \
                src.stat().st_size > 5 * 2**20:  # data and weights are not code
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)
    dst.mkdir(parents=True, exist_ok=True)
    commit = git('rev-parse', 'HEAD')
    if commit:
        (dst / 'git_commit.txt').write_text(commit)
        (dst / 'git_diff.patch').write_text(git('diff', 'HEAD') or '')


def format_duration(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s' if m else f'{s}s'


def eta_line(epoch, max_epochs, metrics, elapsed, epochs_done):
    """One progress line per epoch: `epoch 3/20  train/loss 0.41  val/acc 0.93  ...  ETA 12s`."""
    shown = '  '.join(f'{k} {v:.4g}' for k, v in sorted(metrics.items()))
    if max_epochs and max_epochs > 0:
        eta = format_duration(elapsed / max(epochs_done, 1) * (max_epochs - epoch))
        total = max_epochs
    else:
        eta, total = '?', '?'
    return f'epoch {epoch}/{total}  {shown}  elapsed {format_duration(elapsed)}  ETA {eta}'
