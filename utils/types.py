"""Whether a config value fits the argument it goes to, before anything is built: the
argument's annotation, checked by pydantic in strict mode (the string '256' is not an integer,
5 is not a list), else the type of its default, plus the ranges a type cannot say.

A YAML value is plain data, so an annotation's classes that YAML cannot give (a Tensor, an
Accelerator) are left out of a Union, and an argument that takes only such a class is not
checked. pl.Trainer's annotations are read from Lightning's source (`trainer_signature`), so a
mistake in trainer_params is found without importing Lightning.
"""
import ast
import enum
import functools
import importlib.util
import inspect
import json
import numbers
import types
import typing
from collections import abc
from pathlib import Path

ANY = typing.Any
PLAIN = (int, float, str, bool, type(None))
SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.Iterable, abc.Collection,
             abc.MutableSequence)
MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)

def _limit(v):
    """Lightning's limit_*_batches: a count, or a fraction of the split."""
    return v is None or (v >= 0 if isinstance(v, int) else 0 <= v <= 1)


# What a type cannot say: (argument, test, what it must be). Applied wherever an argument of
# that name goes to pl.Trainer, train.py's loop or the checkpoint: section.
RANGES = {
    'max_epochs': (lambda v: v is None or v == -1 or v >= 1, 'at least 1 (or -1: no limit)'),
    'min_epochs': (lambda v: v is None or v >= 0, 'at least 0'),
    'max_steps': (lambda v: v == -1 or v >= 1, 'at least 1 (or -1: no limit)'),
    'log_every_n_steps': (lambda v: v is None or v >= 1, 'at least 1'),
    'check_val_every_n_epoch': (lambda v: v is None or v >= 1, 'at least 1'),
    'accumulate_grad_batches': (lambda v: v >= 1, 'at least 1'),
    'num_sanity_val_steps': (lambda v: v is None or v >= -1, 'at least -1'),
    'gradient_clip_val': (lambda v: v is None or v >= 0, 'at least 0'),
    'gradient_clip_algorithm': (lambda v: v in (None, 'norm', 'value'), "'norm' or 'value'"),
    'limit_train_batches': (lambda v: _limit(v) and v != 0, 'a count of at least 1 or a '
                            'fraction in (0, 1]'),
    'val_check_interval': (lambda v: v is None or (v >= 1 if isinstance(v, int) else 0 < v <= 1),
                           'a count of at least 1 or a fraction in (0, 1]'),
    'limit_val_batches': (_limit, 'a count of at least 0 or a fraction in [0, 1]'),
    'limit_test_batches': (_limit, 'a count of at least 0 or a fraction in [0, 1]'),
    'limit_predict_batches': (_limit, 'a count of at least 0 or a fraction in [0, 1]'),
    'save_top_k': (lambda v: v >= -1, 'at least -1 (-1: every one)'),
    'every_n_epochs': (lambda v: v is None or v >= 0, 'at least 0'),
    'every_n_train_steps': (lambda v: v is None or v >= 0, 'at least 0'),
}


class _Unknown:
    """A name in an annotation that could not be resolved: some class YAML cannot give."""


def plain(value):
    """True for what YAML gives: scalars, and lists and mappings of them."""
    if isinstance(value, PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False


NEVER = object()  # what no YAML value is: a Tensor, a Module, a function


def yaml_type(annotation):
    """The part of an annotation that YAML data can be: a type pydantic checks, or Any (not
    checked: a class the library may build from a string, like an Enum or a path)."""
    kind = _yaml_type(annotation)
    return ANY if kind is NEVER else kind


def _yaml_type(annotation):
    if annotation is ANY or annotation is inspect.Parameter.empty or annotation is _Unknown:
        return ANY
    if annotation in PLAIN:
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return annotation if all(isinstance(a, PLAIN) for a in args) else ANY
    if origin in (typing.Union, types.UnionType):
        kept = [k for k in (_yaml_type(a) for a in args) if k is not NEVER]
        if ANY in kept or not [k for k in kept if k is not type(None)]:
            return ANY
        return typing.Union[tuple(kept)]
    if origin is abc.Callable or annotation is abc.Callable:
        return NEVER
    if annotation in SEQUENCES or origin in SEQUENCES:
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple[yaml_type(args[0]), ...]
            return tuple[tuple(yaml_type(a) for a in args)]
        return list[yaml_type(args[0])] if args else list
    if annotation in MAPPINGS or origin in MAPPINGS:
        return dict[str, yaml_type(args[1])] if len(args) == 2 else dict
    if isinstance(annotation, type):
        if issubclass(annotation, numbers.Integral):
            return int
        if issubclass(annotation, numbers.Number):
            return float
        if annotation.__module__.split('.')[0] == 'torch' and \
                not issubclass(annotation, enum.Enum):
            return NEVER  # a Tensor, a Module, an Optimizer: made at run time, not YAML
    return ANY


def from_default(default):
    """The type an argument without an annotation takes, from its default."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):  # 0.1 where the default is 5000: a fraction, maybe
        return float
    if isinstance(default, str):
        return str
    if isinstance(default, (list, tuple)):
        return list
    return ANY


@functools.lru_cache(maxsize=None)
def _adapter(annotation):
    from pydantic import TypeAdapter
    return TypeAdapter(annotation)


# pydantic's strict JSON checks of the scalar types, without building its validators (a tenth
# of a second each, in every run's start-up)
_SCALARS = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
            type(None): lambda v: v is None}


def _scalar_fits(annotation, value):
    """fits() of a scalar type, a Literal or a Union of them; None for any other annotation."""
    if annotation in _SCALARS:
        return _SCALARS[annotation](value)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        found = [_scalar_fits(a, value) for a in args]
        return None if None in found else any(found)
    return None


def fits(annotation, value):
    """True when a plain value is of the (yaml_type of the) annotation, strictly."""
    if annotation is ANY:
        return True
    quick = _scalar_fits(annotation, value)
    if quick is not None:
        return quick
    from pydantic import ValidationError
    try:
        _adapter(annotation).validate_json(json.dumps(value), strict=True)
        return True
    except ValidationError:
        return False
    except Exception:  # an annotation pydantic cannot build a checker for: not checked
        return True


def describe(annotation):
    """'an integer', 'a list of numbers', "'min' or 'max'", 'an integer or null'."""
    if annotation is ANY:
        return 'anything'
    names = {int: 'an integer', float: 'a number', str: 'a string', bool: 'true or false',
             type(None): 'null'}
    if annotation in names:
        return names[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return ' or '.join(repr(a) for a in args)
    if origin is typing.Union:
        if float in args:  # int | float reads as a number
            args = [a for a in args if a is not int]
        return ' or '.join(dict.fromkeys(describe(a) for a in args))
    if annotation is list or origin is list:
        return f'a list of {_plural(args[0])}' if args and args[0] is not ANY else 'a list'
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f'a list of {_plural(args[0])}'
        same = len(set(args)) == 1
        return f'a list of {len(args)} {_plural(args[0])}' if same else \
            f"a list of ({', '.join(describe(a) for a in args)})"
    if annotation is dict or origin is dict:
        return 'a mapping'
    return str(annotation)


def _plural(annotation):
    plurals = {int: 'integers', float: 'numbers', str: 'strings', bool: 'true/false values'}
    return plurals.get(annotation, f'({describe(annotation)})')


def parameters(target):
    """{name: (annotation, default)} of what target(**kwargs) accepts by keyword, with
    annotations evaluated where they can be (else Any)."""
    function = target.__init__ if inspect.isclass(target) else target
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # one name it cannot resolve: evaluate the others one by one below
        hints = {}
    out = {}
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return out
    for p in params:
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            annotation = hints.get(p.name, p.annotation)
            if isinstance(annotation, str):  # `from __future__ import annotations`
                annotation = _evaluate(annotation, getattr(function, '__globals__', {}))
            out[p.name] = (annotation, p.default)
    return out


def _evaluate(text, namespace):
    """A string annotation of a library's function, in its module's names (Any if it names
    something that module does not have)."""
    try:
        return eval(text, {**_NAMES, **namespace})
    except Exception:
        return ANY


def problem(name, annotation, default, value):
    """What is wrong with `value` for the argument `name` (a phrase, 'must be ...'), or None."""
    if not plain(value):
        return None  # a value made at run time, not read from YAML
    if isinstance(annotation, str):  # an annotation that could not be evaluated
        annotation = inspect.Parameter.empty
    kind = yaml_type(annotation) if annotation is not inspect.Parameter.empty else \
        from_default(default)
    if kind is not ANY and default is None and annotation is inspect.Parameter.empty:
        kind = ANY
    if kind is not ANY and value is None and default is None:
        return None  # the default itself
    if not fits(kind, value):
        return f'must be {describe(kind)}, but got {value!r}'
    if name in RANGES and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        ok, what = RANGES[name]
        try:
            good = ok(value)
        except TypeError:
            good = True  # the type check has spoken
        if not good:
            return f'must be {what}, but got {value!r}'
    return None


@functools.lru_cache(maxsize=None)
def trainer_signature():
    """{name: (annotation, default)} of pl.Trainer's arguments, read from the installed
    Lightning's source without importing it (that import is most of a start-up); None when
    Lightning is not installed or its source is not where expected."""
    spec = importlib.util.find_spec('pytorch_lightning')
    if spec is None or not spec.origin:
        return None
    source = Path(spec.origin).parent / 'trainer' / 'trainer.py'
    try:
        tree = ast.parse(source.read_text())
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == 'Trainer':
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef)
                         and n.name == '__init__'), None)
            break
    else:
        return None
    if init is None:
        return None
    args = init.args
    out = {}
    positional = args.args[1:]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    for arg, default in pairs:
        try:
            value = ast.literal_eval(default) if default is not None else inspect.Parameter.empty
        except ValueError:
            value = inspect.Parameter.empty
        out[arg.arg] = (_annotation(arg.annotation), value)
    return out


class _Names(dict):
    """The names an annotation may use: typing's and the builtins'; any other is _Unknown."""

    def __missing__(self, key):
        return _Unknown


_NAMES = _Names({'Optional': typing.Optional, 'Union': typing.Union, 'Literal': typing.Literal,
                 'Any': ANY, 'Iterable': abc.Iterable, 'Sequence': abc.Sequence,
                 'Mapping': abc.Mapping, 'list': list, 'dict': dict, 'tuple': tuple, 'int': int,
                 'float': float, 'str': str, 'bool': bool, 'None': None})


def _annotation(node):
    if node is None:
        return inspect.Parameter.empty
    try:
        return eval(compile(ast.Expression(node), '<annotation>', 'eval'),
                    {'__builtins__': {}}, _NAMES)
    except Exception:
        return ANY


def check_trainer_params(params, own=()):
    """trainer_params against pl.Trainer's arguments (plus runyard's `own` keys, checked by
    their users): every unknown key and mistyped value, as ConfigErrors, without importing
    Lightning. Both engines read these settings with Lightning's meaning."""
    from .errors import ConfigError, Mistakes, close_matches, listing
    signature = trainer_signature()
    if signature is None:
        return
    mistakes = Mistakes()
    for key, value in params.items():
        if key in own:
            continue
        with mistakes.part():
            if key not in signature:
                typo = close_matches(key, signature)
                raise ConfigError(f'unknown pl.Trainer argument{typo}'
                                  f"{listing(sorted(signature), 'accepted', short=typo)}",
                                  key=f'trainer_params.{key}')
            wrong = problem(key, *signature[key], value)
            if wrong:
                raise ConfigError(wrong, key=f'trainer_params.{key}')
    mistakes.raise_them()
