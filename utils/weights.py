"""Weights from earlier runs: which checkpoint a run folder means, loading it with
`weights_only=True` (tensors and plain containers only, never code), and fitting its state
dict into a model whose keys may sit under another wrapper's prefix.

    model_spec: {name: mlp, args: {...}, init_from: save/NAME}   # or a path to a .ckpt

A checkpoint of either entrypoint is Lightning-shaped: {'state_dict': {'model.net.1.weight':
...}, 'epoch', 'global_step', ...}; train_pl.py keeps ModelCheckpoint's state (best_model_path)
in 'callbacks', train.py its own in 'checkpoints' (best_path).
"""
import copy
import fnmatch
import re
import sys
from pathlib import Path

import torch

from . import writer
from .errors import ConfigError

EMA_PREFIX = 'ema.module.'  # a task's averaged copy (models/ema.py), in its state_dict


def load_checkpoint(path, what=None, mmap=False):
    """The checkpoint at `path` as a dict with a 'state_dict', or a one-line ConfigError that
    starts with `what` (the flag that named it). A bare state dict ({name: tensor}, as
    torch.save(model.state_dict()) writes) is taken as {'state_dict': it}. `mmap`: tensors stay
    on disk until read, so checking that a large file loads is cheap."""
    writer.wait()  # a checkpoint this process saved is whole on disk
    path = Path(path)
    if not path.is_file():
        raise ConfigError(_said(what, f'no checkpoint file at {path}'))
    if path.stat().st_size == 0:
        raise ConfigError(_said(what, f'{path} is empty (0 bytes): not a checkpoint'))
    try:
        state = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as e:  # not a torch file, truncated, or pickled objects beyond tensors
        raise ConfigError(_said(what, f'cannot load {path} ({_reason(e)})')) from None
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        state = {'state_dict': state}
    if not isinstance(state, dict) or not isinstance(state.get('state_dict'), dict):
        raise ConfigError(_said(what, f'cannot load {path} (it has no state_dict: not a '
                                      'training checkpoint)'))
    return state


def _said(what, message):
    return f'{what}: {message}' if what else message


def _reason(error):
    text = str(error)
    refused = re.search(r'Unsupported global: GLOBAL (\S+)', text)
    if refused:
        return f'it holds a {refused.group(1)}, which loading with weights_only=True refuses'
    if 'mmap can only be used with files saved with' in text or \
            'failed finding central directory' in text:  # not the zip file torch.save writes
        return 'not a file torch.save wrote: truncated, or another kind of file'
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if 'Weights only load failed' in text:  # torch's advice first, the cause last
        lines = [line for line in lines if not line.startswith('Check the documentation')]
        return f'not a torch checkpoint: {lines[-1]}' if lines else 'not a torch checkpoint'
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def find_checkpoint(target, what=None):
    """A run folder -> its ckpt/last.ckpt; a file -> itself."""
    path = Path(target)
    if path.is_dir():
        if not (path / 'ckpt' / 'last.ckpt').is_file():
            raise ConfigError(_said(what, f'no checkpoint at {path / "ckpt" / "last.ckpt"}'))
        return path / 'ckpt' / 'last.ckpt'
    if not path.is_file():
        raise ConfigError(f'{what}: no such run folder or checkpoint file' if what else
                          f'no such run folder or checkpoint file: {target}')
    return path


def best_checkpoint(state, run_dir, monitor):
    """The best checkpoint by `monitor` that the run recorded in `state` (its last.ckpt), or
    None. Recorded paths are as the run saw them (maybe relative to another working directory,
    or before the folder moved), so the file is looked up in the run's own ckpt/."""
    best = (state.get('checkpoints') or {}).get('best_path')  # train.py
    for key, callback in (state.get('callbacks') or {}).items():  # train_pl.py
        if key.startswith('ModelCheckpoint') and callback.get('monitor') == monitor:
            best = callback.get('best_model_path') or best
    return Path(run_dir) / 'ckpt' / Path(best).name if best else None


def without_init_from(spec):
    """A deep copy of a config section with every `init_from` removed: for rebuilding a model
    whose weights come from its own checkpoint (the run it started from may be gone)."""
    if isinstance(spec, dict):
        return {k: without_init_from(v) for k, v in spec.items() if k != 'init_from'}
    if isinstance(spec, list):
        return [without_init_from(v) for v in spec]
    return copy.deepcopy(spec)


def init_from(model, target):
    """Load the weights of `target` into `model`, where they fit. `target` is a run folder, a
    checkpoint of either entrypoint, or a plain state_dict file (torchvision's and timm's
    weights files); or {path, exclude: [patterns], strict: true}. The file's keys may carry
    its task's prefix ('model.' in a classification task, 'generator.' in a GAN...): the prefix
    among its first key parts that fits the model best is dropped. A run trained with `ema`
    gives its averaged weights. `exclude` leaves out the model's tensors that match (fc.*: a
    new head); strict: false skips tensors of another shape, in one warning, where strict
    makes them an error. Missing and unexpected keys are a warning."""
    options = target if isinstance(target, dict) else {'path': target}
    unknown = sorted(set(options) - {'path', 'exclude', 'strict'})
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' (known: path, exclude, strict)",
                          key=unknown[0])
    if not isinstance(options.get('path'), str):
        raise ConfigError(f"must be a run folder or a weights file, but got "
                          f"{options.get('path')!r}", key='path' if 'path' in options else None)
    exclude, strict = options.get('exclude') or [], options.get('strict', True)
    if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
        raise ConfigError(f'must be a list of name patterns, but got {exclude!r}', key='exclude')
    if not isinstance(strict, bool):
        raise ConfigError(f'must be true or false, but got {strict!r}', key='strict')
    path = find_checkpoint(options['path'])
    state_dict = load_checkpoint(path)['state_dict']
    averaged = {k[len(EMA_PREFIX):]: v for k, v in state_dict.items() if k.startswith(EMA_PREFIX)}
    state_dict = averaged or state_dict
    own = model.state_dict()
    prefix = best_prefix(state_dict, own)
    found = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    for i, pattern in enumerate(exclude):
        if not any(fnmatch.fnmatchcase(k, pattern) for k in found):
            raise ConfigError(f"'{pattern}' matches none of the tensors of {path} (they are "
                              f"named like {_names(found)})", key=f'exclude.{i}')
    found = {k: v for k, v in found.items()
             if not any(fnmatch.fnmatchcase(k, p) for p in exclude)}
    matching = [k for k in found if k in own]
    if not matching:
        raise ConfigError(f'no weights in {path} fit {type(model).__name__} (its keys: '
                          f'{_names(list(own))}; the checkpoint\'s: {_names(list(state_dict))})')
    shapes = [f'{k} {list(found[k].shape)} in the file, {list(own[k].shape)} in the model'
              for k in matching if found[k].shape != own[k].shape]
    if shapes and strict:
        raise ConfigError(f'{path}: {len(shapes)} tensors have another shape ({_names(shapes, 2)});'
                          ' leave them out with exclude: [patterns], or skip them with '
                          'strict: false')
    found = {k: v for k, v in found.items() if k not in own or v.shape == own[k].shape}
    missing, unexpected = model.load_state_dict(found, strict=False)
    skipped = {s.split(' ')[0] for s in shapes}
    missing = [k for k in missing if k not in skipped and  # said apart, or asked for
               not any(fnmatch.fnmatchcase(k, p) for p in exclude)]
    loaded = len(matching) - len(shapes)
    from .run import is_rank_zero  # run.py imports this module
    if (missing or unexpected or shapes) and is_rank_zero():
        said = [f'{len(missing)} missing ({_names(missing)})' if missing else '',
                f'{len(unexpected)} unexpected ({_names(unexpected)})' if unexpected else '',
                f'{len(shapes)} of another shape skipped ({_names(shapes, 2)})' if shapes else '']
        print(f'warning: init_from {path}: loaded {loaded} of {len(own)} tensors of '
              f"{type(model).__name__}; {', '.join(s for s in said if s)}", file=sys.stderr)
    return model


def best_prefix(state_dict, own):
    """'' or 'part.' (a first key part of the checkpoint) under which the most checkpoint
    tensors have a name and shape of the model's (then: the most names); the first on a tie."""
    candidates = [''] + list(dict.fromkeys(k.split('.')[0] + '.' for k in state_dict if '.' in k))

    def fits(prefix):
        names = [(k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix)
                 and k[len(prefix):] in own]
        return sum(v.shape == own[k].shape for k, v in names), len(names)
    return max(candidates, key=fits)


def _names(keys, shown=3):
    keys = list(keys)
    return ', '.join(keys[:shown]) + (', ...' if len(keys) > shown else '') if keys else 'none'



def check_resumable(task, pairs, state, what):
    """A one-line ConfigError, starting with `what`, unless the checkpoint `state` continues
    in what the config builds: its weights load into `task` strictly, and its optimizer and lr
    scheduler states are those of the config's [(optimizer, schedule)] `pairs`. A resume
    checks this before the run folder is touched (another model's config or checkpoint would
    fail only after that, or an optimizer would step on another's settings)."""
    own, saved = task.state_dict(), state['state_dict']
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [f'{k} {list(saved[k].shape)} in the checkpoint, {list(v.shape)} in the model'
              for k, v in own.items() if k in saved and hasattr(saved[k], 'shape')
              and saved[k].shape != v.shape]
    found = [f'{len(missing)} missing ({_names(missing)})' if missing else '',
             f'{len(unexpected)} unexpected ({_names(unexpected)})' if unexpected else '',
             f'other shapes: {_names(shapes, shown=2)}' if shapes else '']
    if any(found):
        raise ConfigError(f'{what}: its weights do not fit the model of this config: '
                          f"{'; '.join(f for f in found if f)}")
    optimizers = [o for o, _ in pairs]
    schedulers = [s['scheduler'] for _, s in pairs if s]
    saved_optimizers = state.get('optimizer_states') or []
    if len(saved_optimizers) != len(optimizers):
        raise ConfigError(f'{what}: it holds {len(saved_optimizers)} optimizer states, but this '
                          f'config has {len(optimizers)} optimizers')
    for i, (optimizer, saved) in enumerate(zip(optimizers, saved_optimizers)):
        if not _same_settings(optimizer.state_dict(), saved, 'param_groups'):
            raise ConfigError(f'{what}: its optimizer {i} state does not fit this config\'s '
                              f'{type(optimizer).__name__} (other settings or parameters); '
                              'resume with the optimizer it was trained with')
    for i, (scheduler, saved) in enumerate(zip(schedulers, state.get('lr_schedulers') or [])):
        if set(saved) - set(scheduler.state_dict()):
            raise ConfigError(f'{what}: its lr scheduler {i} state does not fit this config\'s '
                              f'{type(scheduler).__name__}; resume with the scheduler it was '
                              'trained with')


def _same_settings(own, saved, key):
    """Optimizer states of one kind: as many groups of as many parameters, and no setting in
    the saved groups that this optimizer lacks (a newer torch may add settings: those are
    filled in by load_state_dict). 'initial_lr' is an lr scheduler's, not the optimizer's."""
    own_groups, saved_groups = own[key], saved.get(key) or []
    return [len(g['params']) for g in own_groups] == [len(g['params']) for g in saved_groups] \
        and all(not set(b) - set(a) - {'initial_lr'} for a, b in zip(own_groups, saved_groups))
