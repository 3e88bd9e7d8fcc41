"""Configs: YAML files that compose, command-line overrides, `${a.b}` interpolation, the
section schema, and a record of where every value came from (for --explain).

    _base_: ../digits.yaml          # or a list of files, relative to this one; this file wins
    train_wrapper:
      args:
        model_spec:
          _delete_: true            # replace the inherited mapping instead of merging into it
          name: lenet5
        sched_spec: {name: CosineAnnealingLR, args: {T_max: '${trainer_params.max_epochs}'}}

Order: bases (depth first, in list order), the file, overrides, --seed, then interpolation
(OmegaConf), so `trainer_params.max_epochs=5` on the command line also moves T_max above.
"""
import contextlib
import copy
import os
import re
from pathlib import Path

import yaml

from .errors import ConfigError, at_key, close_matches, each

SECTIONS = {'data_module': dict, 'train_wrapper': dict, 'trainer_params': dict,
            'checkpoint': dict, 'callbacks': list, 'loggers': list, 'seed': int, 'test': bool,
            'search': dict}  # a sweep, for tune.py
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


def shown(path):
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(os.path.normpath(path))
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_yaml(path):
    """(mapping, {key path: line number}) of one YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError('config file not found', file=path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise ConfigError(f'not a text file (byte {e.start} is not UTF-8)', file=path) from None
    except OSError as e:
        raise ConfigError(f'cannot read it: {e.strerror}', file=path) from None
    loader = Loader(text)
    try:  # one parse: the node tree gives the key lines, then the values
        node = loader.get_single_node()
        cfg = loader.construct_document(node) if node is not None else None
        lines = _key_lines(node)
    except DuplicateKey as e:
        raise ConfigError(f"duplicate key '{e.key}' (first on line {e.first}): YAML keeps the "
                          'last one without a word; keep one', file=f'{path}:{e.line}') from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f'{path}:{mark.line + 1}' if mark else str(path)
        raise ConfigError(f"invalid YAML: {getattr(e, 'problem', e)}", file=where) from None
    finally:
        loader.dispose()
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f'must be a mapping at the top level, but got {type(cfg).__name__}',
                          file=path)
    return cfg, lines


def load_yaml(path):
    return read_yaml(path)[0]


class DuplicateKey(Exception):
    def __init__(self, key, first, line):
        self.key, self.first, self.line = key, first, line


def _key_lines(node, path=(), out=None):
    """{key path: line} of a YAML node tree; a key twice in one mapping is a DuplicateKey."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        children = [(str(k.value), k, v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(i), v, v) for i, v in enumerate(node.value)]
    else:
        return out
    seen = {}
    for key, key_node, value in children:
        line = key_node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode) and key in seen and key != '<<':
            raise DuplicateKey('.'.join(path + (key,)), seen[key], line)
        seen[key] = line
        out[path + (key,)] = line
        _key_lines(value, path + (key,), out)
    return out


# ---------------------------------------------------------------- provenance

class _Deleted:
    def __repr__(self):
        return '<deleted>'


DELETED = _Deleted()


class Provenance:
    """{key path (tuple of str): [(source, value), ...], oldest first} for every leaf that a
    file, an override or --seed set. `source` is 'configs/x.yaml:12' or "override 'a.b=1'"."""

    def __init__(self):
        self.history = {}
        self.when = {}  # key path -> when it was last set (a count): who set a subtree last
        self.clock = 0

    def _record(self, path, source, value):
        history = self.history.setdefault(path, [])
        if not (value is DELETED and history and history[-1][1] is DELETED):
            history.append((source(path) if callable(source) else source, value))
            self.clock += 1
            self.when[path] = self.clock

    def source(self, key, depth=0, follow=True):
        """Who last set the value at `key` ('a.b.0.c') or anything under it: a file and
        line, an override, --seed; the nearest enclosing key's when `key` itself has none,
        and (`follow`) the referenced key's for a value that is one `${other.key}`."""
        path = tuple(str(key).split('.')) if key else ()
        while path:
            under = [p for p in self.history if p[:len(path)] == path]
            if under:
                break
            path = path[:-1]
        if not path:  # a key no source has set (a missing section): the config file's
            return None
        last = max(under, key=lambda p: self.when.get(p, -1))
        source, raw = self.history[last][-1]
        reference = re.fullmatch(r'\$\{([\w.]+)\}', raw) if isinstance(raw, str) else None
        if follow and reference and depth < 10 and reference.group(1) != key:
            return self.source(reference.group(1), depth + 1) or source
        return source

    @contextlib.contextmanager
    def blamed(self, file):
        """Name, in every ConfigError raised inside, what set the value it is about (an
        override, a file's line) instead of the config file alone."""
        try:
            yield
        except ConfigError as e:
            for one in each(e):
                if one.file is None or str(one.file) == str(file):
                    # a mistake in the key's name is where the key is written, not its value's
                    follow = not one.message.startswith('unknown')
                    one.file = (self.source(one.key, follow=follow) if one.key else None) or file
                    if one.key and _override_key(one.file) == one.key:
                        one.key = None  # the override names the key already
            raise

    def set(self, path, value, source):
        for old in list(self.history):  # what lived under this key is gone
            if old[:len(path)] == path and (len(old) > len(path) or
                                            (isinstance(value, dict) and value)):
                self._record(old, source, DELETED)
        if isinstance(value, dict) and value:
            for key, item in value.items():
                self.set(path + (str(key),), item, source)
        else:
            self._record(path, source, value)

    def delete(self, path, source):
        for old in list(self.history):
            if old[:len(path)] == path:
                self._record(old, source, DELETED)

    def explain(self, cfg, key):
        """Lines saying, for `key` and every leaf under it, its value, who set it and what
        that replaced."""
        path = tuple(key.split('.'))
        found = {p: h for p, h in self.history.items() if p[:len(path)] == path}
        while not found and len(path) > 1:  # inside a list set as a whole: `callbacks.0.name`
            path = path[:-1]
            found = {path: self.history[path]} if path in self.history else {}
        if not found:
            known = sorted({'.'.join(p[:i + 1]) for p in self.history for i in range(len(p))})
            raise ConfigError(f"--explain {key}: no such key in the config"
                              f'{close_matches(key, known)}')
        lines = []
        for p, history in sorted(found.items()):
            present, value = _lookup(cfg, p)
            lines.append(f"{'.'.join(p)}: {_flow(value) if present else '(deleted)'}")
            for i, (source, raw) in enumerate(reversed(history)):
                if i == 0:
                    verb = 'deleted by' if raw is DELETED else 'set by'
                    resolved = '' if raw is DELETED or raw == value or not present \
                        else f' as {_flow(raw)}'
                    lines.append(f'  {verb} {source}{resolved}')
                elif raw is not DELETED:  # a deletion then a value is a replacement
                    lines.append(f'  replacing {_flow(raw)} from {source}')
        return lines


def _override_key(source):
    """The KEY of a source "override '[+]KEY=VALUE'" (None for any other source)."""
    match = re.fullmatch(r"override '\+?([^=]*)=.*'", str(source), re.S)
    return match.group(1) if match else None


def _lookup(cfg, path):
    node = cfg
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _flow(value):
    text = yaml.safe_dump(value, default_flow_style=True, width=float('inf')).strip()
    return text.removesuffix('...').strip()


# ---------------------------------------------------------------- composition

def _merge(base, new, provenance, source, path=()):
    for key, value in new.items():
        if key == '_delete_':
            continue
        p = path + (str(key),)
        if isinstance(value, dict):
            replace = value.get('_delete_', False)
            if not isinstance(replace, bool):
                raise ConfigError(f'must be true or false, but got {replace!r}',
                                  key='.'.join(p + ('_delete_',)))
            if isinstance(base.get(key), dict) and not replace:
                _merge(base[key], value, provenance, source, p)
                continue
            if replace:
                where = source(p + ('_delete_',)) if callable(source) else source
                provenance.delete(p, f'{where} (_delete_)')
            value = _without_delete(value)
        base[key] = copy.deepcopy(value)
        provenance.set(p, value, source)


def _without_delete(value):
    if isinstance(value, dict):
        return {k: _without_delete(v) for k, v in value.items() if k != '_delete_'}
    if isinstance(value, list):
        return [_without_delete(v) for v in value]
    return value


def _compose(path, out, provenance, stack):
    cfg, lines = read_yaml(path)
    bases = cfg.pop('_base_', [])
    base_line = f"{shown(path)}:{lines.get(('_base_',), '?')}"
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'must be a file path or a list of them, but got {bases!r}',
                          key='_base_', file=base_line)
    for base in bases:
        base_path = Path(os.path.normpath(path.parent / base))
        if not base_path.is_file():
            raise ConfigError(f'file not found: {shown(base_path)}', key='_base_', file=base_line)
        chain = [*stack, path]
        if base_path.resolve() in [p.resolve() for p in chain]:
            cycle = ' -> '.join(shown(p) for p in [*chain, base_path])
            raise ConfigError(f'include cycle: {cycle}', key='_base_', file=base_line)
        _compose(base_path, out, provenance, chain)
    _merge(out, cfg, provenance, lambda p: f"{shown(path)}:{lines.get(p, '?')}")


def interpolate(cfg):
    """Resolve `${a.b}` (and OmegaConf's resolvers, like `${oc.env:HOME}`) into plain values.
    `${run.NAME}` stays as it is: the engines fill it in once the data is built
    (resolve_run_values)."""
    if '${' not in repr(cfg):
        return cfg
    resolved = _resolve_references(cfg)
    if resolved is not None:
        return resolved
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    try:  # OmegaConf leaves an escaped \${...} as the text ${...}
        return OmegaConf.to_container(OmegaConf.create(_map_strings(
            cfg, lambda s: RUN_VALUE.sub(lambda m: '\\' + m.group(0), s))), resolve=True)
    except OmegaConfBaseException as e:
        message = str(e).strip().splitlines()[0]
        raise ConfigError(f'cannot resolve: {message}', key=getattr(e, 'full_key', None)) \
            from None


RUN_VALUE = re.compile(r'\$\{run\.([A-Za-z_]\w*)\}')
# `${a.b.c}`, an absolute reference to another key (`${a.0}`: a list's item), the only kind the
# configs use: resolved by _resolve_references without importing OmegaConf (a few tenths of a
# second of every start). Everything else is OmegaConf's: resolvers, relative and nested
# references, escapes, and every error.
REFERENCE = re.compile(r'\$\{([A-Za-z_]\w*(?:\.\w+)*)\}')


class _Unresolved(Exception):
    """What _resolve_references leaves to OmegaConf."""


def _resolve_references(cfg):
    """`cfg` with each `${a.b}` resolved as OmegaConf would (a whole value takes the referred
    value, embedded in text its str or int as text), `${run.NAME}` kept; None where OmegaConf
    must decide."""
    resolving = set()

    def lookup(path):
        node = cfg
        for part in path.split('.'):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _Unresolved  # missing: OmegaConf's message names it
        if path in resolving:
            raise _Unresolved  # a cycle
        resolving.add(path)
        try:
            return _map_strings(node, resolve_text)
        finally:
            resolving.discard(path)

    def resolve_text(text):
        if '${' not in text:
            return text
        if '\\' in text or text.count('${') != len(REFERENCE.findall(text)):
            raise _Unresolved  # an escape, a resolver, a relative or a nested reference
        whole = REFERENCE.fullmatch(text)
        if whole:
            return text if RUN_VALUE.fullmatch(text) else lookup(whole.group(1))

        def embedded(match):
            if RUN_VALUE.fullmatch(match.group(0)):
                return match.group(0)
            value = lookup(match.group(1))
            if type(value) not in (str, int):
                raise _Unresolved  # OmegaConf's text of a float, bool, None or container
            return str(value)
        return REFERENCE.sub(embedded, text)

    try:
        return _map_strings(cfg, resolve_text)
    except _Unresolved:
        return None


def _map_strings(obj, fn):
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    return fn(obj) if isinstance(obj, str) else obj


def uses_run_values(cfg):
    return bool(RUN_VALUE.search(repr(cfg)))


def resolve_run_values(cfg, values, path=()):
    """`cfg` with each `${run.NAME}` replaced by values[NAME] (a whole value takes its type).
    The engines call it with models.optim.run_lengths once the data is built."""
    if isinstance(cfg, dict):
        return {k: resolve_run_values(v, values, (*path, k)) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [resolve_run_values(v, values, (*path, i)) for i, v in enumerate(cfg)]
    if not isinstance(cfg, str) or '${run.' not in cfg:
        return cfg
    for name in RUN_VALUE.findall(cfg):
        if name not in values:
            raise ConfigError(f"'${{run.{name}}}' is not known{close_matches(name, values)} "
                              f"(this run knows: {', '.join('${run.%s}' % k for k in values)})",
                              key='.'.join(map(str, path)))
    whole = RUN_VALUE.fullmatch(cfg)
    return values[whole.group(1)] if whole else \
        RUN_VALUE.sub(lambda m: str(values[m.group(1)]), cfg)


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
    seed = cfg.get('seed')
    if seed is not None and not 0 <= seed < 2 ** 32:  # what NumPy's and torch's seeds take
        raise ConfigError(f'must be from 0 to 2**32 - 1, but got {seed}', key='seed')


def load_config(path, overrides=(), seed=None, provenance=None):
    """The resolved config of a file, its overrides and --seed, checked against the schema.
    Pass a Provenance to learn where each value came from."""
    provenance = Provenance() if provenance is None else provenance
    path = Path(path)
    with at_key(None, file=shown(path)):
        cfg = {}
        _compose(path, cfg, provenance, [])
        apply_overrides(cfg, overrides, provenance)
        if seed is not None:
            cfg['seed'] = seed
            provenance.set(('seed',), seed, '--seed')
    with provenance.blamed(shown(path)):
        cfg = interpolate(cfg)
        check_config(cfg)
    return cfg


# ---------------------------------------------------------------- overrides

def apply_overrides(cfg, overrides, provenance=None):
    """`a.b=1` sets an existing key, `+a.b=1` may create it, `~a.b` deletes it. Values are
    parsed as YAML; integer parts index lists (`callbacks.0.name=eta`)."""
    provenance = Provenance() if provenance is None else provenance
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
            problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
            raise ConfigError(f"override '{item}': value is not valid YAML: {problem}") from None
        *parents, last = path.split('.')
        node = cfg
        for i, part in enumerate(parents):
            node = _child(node, part, item, '.'.join(parents[:i]), create)
        key = _key(node, last, item, '.'.join(parents), create and not delete)
        source = f"override '{item}'"
        if delete:
            del node[key]
            provenance.delete(tuple(path.split('.')), source)
        else:
            node[key] = value
            provenance.set(tuple(path.split('.')), value, source)
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
