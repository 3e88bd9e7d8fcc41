"""scipy.signal, matplotlib and torchvision imported when first used, not at torchmetrics' import.

torchmetrics imports all three at its top: scipy.signal (torchmetrics/__init__.py and its audio
packages) only to give one audio metric `scipy.signal.hamming`, matplotlib with pyplot
(torchmetrics/utilities/plot.py) for `Metric.plot()`, and torchvision for the three names two
image metrics call (`resnet50`, `vgg16`, `VGG16_Weights`). On 2 CPU cores that is 1.5 s, 0.6 s and
0.2 s of every start-up, more than the rest of torchmetrics (benchmarks/RESULTS.md); a run on
torchvision's models or datasets imports torchvision itself, where it builds them.

defer_imports() puts a placeholder module in the place of each: it holds the few names
torchmetrics reads at its import (stand-ins: a function that calls the real one, a class
whose isinstance() asks the real class, pyplot's `style.context` as a lazy decorator). Any
other name read from a placeholder, or a submodule imported (a finder first on sys.meta_path
sees to that), imports the real package: its modules take the placeholders' places in
sys.modules and on their parents, and each placeholder then holds all the real module's names,
for whoever kept a reference to it.
"""
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types

_lock = threading.RLock()  # an import under load() that reads a placeholder: no deadlock


class _Deferred(types.ModuleType):
    def __getattr__(self, name):  # a name the placeholder does not hold: the real module's
        return getattr(load(self.__name__), name)


class _StandInType(type):
    """A class named in torchmetrics' type hints and isinstance() checks, or whose attributes
    it reads when called (`VGG16_Weights.DEFAULT`): used as a class, it is the real one."""
    def __getattr__(cls, name):
        return getattr(cls.real(), name)

    def __call__(cls, *args, **kwargs):
        return cls.real()(*args, **kwargs)

    def __getitem__(cls, key):
        return cls.real()[key]

    def __iter__(cls):
        return iter(cls.real())

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls.real())

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls.real())


def stand_in_class(module, name):
    return _StandInType(name, (), {'real': staticmethod(lambda: getattr(load(module), name))})


def stand_in_function(module, path):
    def call(*args, **kwargs):
        target = load(module)
        for name in path.split('.'):
            target = getattr(target, name)
        return target(*args, **kwargs)
    call.__name__ = path.rsplit('.', 1)[-1]
    return call


class _StyleContext(contextlib.ContextDecorator):
    """pyplot.style.context(...), used as a decorator at torchmetrics' import: matplotlib is
    imported when a decorated function is first called."""
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def _recreate_cm(self):
        return _StyleContext(*self.args, **self.kwargs)

    def __enter__(self):
        self.cm = load('matplotlib.pyplot').style.context(*self.args, **self.kwargs)
        return self.cm.__enter__()

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


# package: {module: {name: stand-in}}, the modules in the order the real ones are imported
GROUPS = {
    'scipy.signal': {
        'scipy.signal': {'hamming': lambda: stand_in_function('scipy.signal', 'windows.hamming')},
    },
    'matplotlib': {
        'matplotlib': {},
        'matplotlib.axes': {'Axes': lambda: stand_in_class('matplotlib.axes', 'Axes')},
        'matplotlib.colors': {'Colormap': lambda: stand_in_class('matplotlib.colors', 'Colormap')},
        'matplotlib.pyplot': {
            'Figure': lambda: stand_in_class('matplotlib.pyplot', 'Figure'),
            'style': lambda: types.SimpleNamespace(context=_StyleContext)},
    },
    'torchvision': {
        'torchvision': {},
        'torchvision.transforms': {},
        'torchvision.models': {
            'resnet50': lambda: stand_in_function('torchvision.models', 'resnet50'),
            'vgg16': lambda: stand_in_function('torchvision.models', 'vgg16'),
            'VGG16_Weights': lambda: stand_in_class('torchvision.models', 'VGG16_Weights')},
    },
}
_group_of = {module: group for group, modules in GROUPS.items() for module in modules}


def defer_imports():
    """Install the placeholders of each group, unless a module of it is imported already or
    the package is missing."""
    for group, modules in GROUPS.items():
        if any(name in sys.modules for name in modules):
            continue
        specs = _specs(modules)
        if specs is None:
            continue
        for name, names in modules.items():
            placeholder = _Deferred(name)
            # what the import system, and inspect.getmodule going through sys.modules (torch.library
            # does, at torchvision's import), read of every module: held, so that reading it does
            # not import the real one
            spec = specs[name]
            placeholder.__spec__, placeholder.__loader__ = spec, spec.loader
            placeholder.__package__ = name if spec.submodule_search_locations else spec.parent
            placeholder.__file__ = spec.origin
            if spec.submodule_search_locations is not None:  # a package: read by submodules'
                placeholder.__path__ = spec.submodule_search_locations  # imports, see _Finder
            for attr, make in names.items():
                setattr(placeholder, attr, make())
            sys.modules[name] = placeholder
            parent, _, child = name.rpartition('.')
            if parent:
                setattr(sys.modules[parent], child, placeholder)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


class _Finder(importlib.abc.MetaPathFinder):
    """`import matplotlib.figure` while `matplotlib` is a placeholder: the real package is
    imported, then the submodule in its place (as the real package's attribute too), once."""
    def find_spec(self, name, path=None, target=None):
        parents = [m for m in _group_of if name.startswith(m + '.')
                   and isinstance(sys.modules.get(m), _Deferred)]
        if not parents:
            return None
        load(parents[0])
        module = importlib.import_module(name)  # now with the real package: the usual finders
        spec = importlib.util.spec_from_loader(name, _Imported(module))
        # the import system takes the spec of a module in sys.modules, and would run it again
        module.__spec__ = spec
        return spec


class _Imported(importlib.abc.Loader):
    """The loader of a module imported already: it is the import's result, as it is."""
    def __init__(self, module):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec  # its own again


def _specs(modules):
    """Each module's spec, found without importing it (its parents' __path__ is enough)."""
    specs = {}
    for name in modules:
        parent, _, _ = name.rpartition('.')
        try:
            if parent in specs:
                spec = importlib.machinery.PathFinder.find_spec(
                    name, specs[parent].submodule_search_locations)
            else:
                spec = importlib.util.find_spec(name)  # imports parent packages (scipy: light)
        except ImportError:
            return None
        if spec is None:
            return None
        specs[name] = spec
    return specs


def load(name):
    """The real module `name`, its whole group imported once, in the placeholders' places."""
    with _lock:
        group = GROUPS[_group_of[name]]
        if not any(isinstance(sys.modules.get(m), _Deferred) for m in group):
            return sys.modules[name]
        placeholders = {m: sys.modules.pop(m) for m in group}
        try:
            real = {m: importlib.import_module(m) for m in group}
        except BaseException:
            sys.modules.update(placeholders)
            raise
        for m, module in real.items():
            for attr, stand_in in vars(placeholders[m]).items():
                if attr in group[m] and not hasattr(module, attr):
                    # a name torchmetrics reads that this version lacks (scipy 1.13+ has no
                    # signal.hamming; torchmetrics would have set it): the stand-in, kept
                    setattr(module, attr, stand_in)
            placeholders[m].__dict__.update(module.__dict__)
        return real[name]
