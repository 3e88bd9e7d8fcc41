"""One registry mechanism for every folder: names -> classes, `make(spec)` builds one."""
import copy
import fnmatch
import importlib
import inspect
import re
import sys
from pathlib import Path

from . import types
from .errors import ConfigError, Mistakes, at_key, close_matches, first_line, listing


class Registry:
    """Names -> classes or functions, filled by the `register` decorator.

    `make({'name': ..., 'args': {...}}, args=None)` builds one; `args` adds run-time values on
    top of a deep copy of the spec's args. A spec holds no other keys than `spec_keys`. A
    dotted name that is not registered is imported (`torch.nn.CrossEntropyLoss`). `modules` are imported on first use: registries whose
    entries need heavy imports (Lightning) stay cheap for code that never asks for them.
    `folder`: the package folder whose files register here, searched when a name is unknown
    (a file that registers it but is not imported yet is named in the error).
    """

    def __init__(self, kind, spec_keys=(), folder=None):
        self.kind, self.folder = kind, folder
        # what a spec may hold besides name and args (a model spec's init_from): any other key
        # is a typo that would otherwise be dropped without a word
        self.spec_keys = ('name', 'args', *spec_keys)
        self._entries = {}

    def register(self, name):
        def decorator(obj):
            first = self._entries.get(name)
            if first is not None and first is not obj:
                raise ValueError(f"{self.kind} name '{name}' is already registered by "
                                 f'{_where(first)}; pick another name for {_where(obj)}')
            self._entries[name] = obj
            return obj
        return decorator

    def list(self, pattern='*'):
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name):
        if not isinstance(name, str) or not name:
            raise ConfigError(f'must be a {self.kind} name, but got {name!r}', key='name')
        if name in self._entries:
            return self._entries[name]
        if '.' in name:
            return import_path(name)
        known = self.list()
        typo = close_matches(name, known)
        raise ConfigError(f"unknown {self.kind} name '{name}'{typo}{listing(known, short=typo)}"
                          f'{self.how_to_register(name, typo)}', key='name')

    def how_to_register(self, name, typo=''):
        """What to do about an unknown name, when the registry knows its folder: the file that
        registers it is not imported yet, or (for a name that is no near-miss) how to add one."""
        if not self.folder:
            return ''
        folder = Path(self.folder)
        package = folder.name
        pattern = re.compile(r"""register\(\s*['"]""" + re.escape(name) + r"""['"]\s*\)""")
        for file in sorted(folder.glob('*.py')):
            if f'{package}.{file.stem}' not in sys.modules and \
                    pattern.search(file.read_text(errors='replace')):
                return (f'; {package}/{file.name} registers it but is not imported: add '
                        f"{file.stem} to the import line in {package}/__init__.py")
        if typo:
            return ''
        return (f'; to add one, register it in a file in {package}/ and add that file to the '
                f'import line in {package}/__init__.py, or name it by its dotted path '
                f'(my_module.MyClass)')

    def make(self, spec, args=None):
        target, kwargs, label = self.check(spec, args)
        try:
            with at_key('args'):  # errors from nested specs: args.model_spec.name
                return target(**kwargs)
        except ValueError as e:  # torch's way of rejecting a value: lr=-1, betas=[2, 0]
            raise ConfigError(f'{label} rejected its arguments: {e}', key='args') from None
        except (RuntimeError, TypeError) as e:  # a size torch cannot make (num_classes: -3),
            # an argument a class takes through **kwargs; --debug shows where
            raise ConfigError(f'{label} cannot be built from its arguments: '
                              f"{type(e).__name__}: {first_line(e).rstrip(': ')}", key='args') from e

    def check(self, spec, args=None):
        """(class, its arguments, label) of a spec, checked without building anything: its
        keys, its name, and its own arguments' names and types (nested specs are checked by
        the class that builds them)."""
        if isinstance(spec, str):
            spec = {'name': spec}
        if not isinstance(spec, dict) or 'name' not in spec:
            raise ConfigError(f"must be a {self.kind} spec {{name: ..., args: {{...}}}}, "
                              f'but got {spec!r}')
        for key in spec:
            if key not in self.spec_keys:
                raise ConfigError(f'unknown key in a {self.kind} spec'
                                  f"{close_matches(key, self.spec_keys)} "
                                  f"(known: {', '.join(self.spec_keys)})", key=key)
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
        return target, kwargs, label


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
    """Every unknown, missing or mistyped argument (utils/types.py), as ConfigErrors: all of
    them at once."""
    accepted = accepted_args(target)
    if accepted is None:
        return
    typed = types.parameters(target)
    mistakes = Mistakes()
    for name, value in kwargs.items():
        with mistakes.part():
            if name not in accepted:
                typo = close_matches(name, accepted)
                raise ConfigError(f"unknown argument '{name}' for {label}{typo}"
                                  f'{listing(sorted(accepted), "accepted", short=typo)}',
                                  key=prefix + name)
            annotation, default = typed.get(name, (inspect.Parameter.empty, accepted[name]))
            wrong = types.problem(name, annotation, default, value)
            if wrong:
                raise ConfigError(wrong, key=prefix + name)
    for name, default in accepted.items():
        if default is inspect.Parameter.empty and name not in kwargs:
            with mistakes.part():
                raise ConfigError(f"{label} needs argument '{name}'",
                                  key=prefix.rstrip('.') or None)
    mistakes.raise_them()
