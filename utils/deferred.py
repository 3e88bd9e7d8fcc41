"""scipy.signal imported when first used, not at torchmetrics' import.

torchmetrics imports scipy.signal at its top (torchmetrics/__init__.py and its audio
packages), only to give one audio metric's dependency `scipy.signal.hamming`; with scipy 1.17
that import is 1.5 s of every start-up on 2 CPU cores, more than the rest of torchmetrics
(benchmarks/RESULTS.md). defer_scipy_signal() puts a placeholder module in its place, which
holds `hamming` (the one name torchmetrics reads); the first other name read from it, or a
submodule imported, imports the real scipy.signal, which takes the placeholder's place in
sys.modules and on the scipy package; the placeholder then holds all the real one's names,
for whoever kept a reference to it.
"""
import importlib
import importlib.util
import sys
import threading
import types

NAME = 'scipy.signal'
_lock = threading.Lock()


class _Deferred(types.ModuleType):
    def __getattr__(self, name):  # a name the placeholder does not hold: the real module's
        return getattr(load(self), name)


def hamming(*args, **kwargs):
    return load(sys.modules[NAME]).windows.hamming(*args, **kwargs)


def defer_scipy_signal():
    """Install the placeholder, unless scipy.signal is imported already or scipy is missing."""
    if NAME in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(NAME)  # imports the light scipy package only
    except ImportError:
        return
    if spec is None:
        return
    placeholder = _Deferred(NAME)
    # what the import system, and inspect.getmodule going through sys.modules (torch.library
    # does, at torchvision's import), read of every module: held, so that reading it does not
    # load the real one
    placeholder.__spec__, placeholder.__loader__, placeholder.__package__ = spec, spec.loader, NAME
    placeholder.__file__ = spec.origin
    placeholder.hamming = hamming
    sys.modules[NAME] = placeholder
    setattr(sys.modules['scipy'], 'signal', placeholder)


def load(placeholder):
    """The real scipy.signal, imported once, in the placeholder's place."""
    with _lock:
        if not isinstance(sys.modules.get(NAME), _Deferred):
            return sys.modules[NAME]
        del sys.modules[NAME]
        try:
            real = importlib.import_module(NAME)
        except BaseException:
            sys.modules[NAME] = placeholder
            raise
        if not hasattr(real, 'hamming'):  # torchmetrics' own patch, as it would have made it
            real.hamming = real.windows.hamming
        placeholder.__dict__.update(real.__dict__)
        return real
