"""Metrics from the config: any torchmetrics class by name (or a dotted path), each logged
under its `log_as` name, by default a short form of its class name:

    train_wrapper:
      args:
        metrics:
          - {name: MeanAbsoluteError}                       # val/mae, test/mae
          - {name: R2Score, log_as: r2}
          - {name: MulticlassF1Score, args: {average: macro}}   # num_classes from the task

A task passes the values it knows (num_classes) to every metric that accepts them, and brings
its own default list (classification: accuracy).
"""
import inspect
import re

import torch.nn as nn

import utils

utils.defer_imports()  # before anything imports torchmetrics (Lightning does, too)
registry = utils.Registry('torchmetrics metrics', spec_keys=['log_as'])
SHORT = {'Accuracy': 'acc', 'MeanAbsoluteError': 'mae', 'MeanSquaredError': 'mse',
         'R2Score': 'r2', 'F1Score': 'f1', 'AUROC': 'auroc'}
_filled = False


def fill():
    """Every torchmetrics metric class under its class name (torchmetrics loads on first use)."""
    global _filled
    if _filled:
        return
    import torchmetrics
    from torchmetrics import classification, regression
    for module in (torchmetrics, classification, regression):
        for name in getattr(module, '__all__', []):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and issubclass(obj, torchmetrics.Metric):
                registry.register(name)(obj)
    _filled = True


def log_name(class_name):
    """MulticlassAccuracy -> acc, MeanAbsoluteError -> mae, PearsonCorrCoef -> pearson_corr_coef."""
    base = re.sub(r'^(Multiclass|Multilabel|Binary)', '', class_name)
    return SHORT.get(base) or re.sub(r'(?<!^)(?=[A-Z])', '_', base).lower()


def check_log_name(name, built):
    if not isinstance(name, str) or not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', name):
        raise utils.ConfigError(f'must be a name of letters, digits and _, but got {name!r}',
                                key='log_as')
    if name == 'loss' or name in built:
        raise utils.ConfigError(f"'{name}' is logged already (val/{name}); give this metric "
                                'another log_as', key='log_as')


def make_metrics(specs, defaults, known=None):
    """nn.ModuleDict {log name: metric} of the `metrics:` list (None: `defaults`). `known`:
    run-time values each metric gets when it takes an argument of that name."""
    fill()
    specs = defaults if specs is None else specs
    if not isinstance(specs, list):
        raise utils.ConfigError(f'must be a list of metric specs like [{{name: '
                                f'MeanAbsoluteError}}], but got {specs!r}', key='metrics')
    built = nn.ModuleDict()
    for i, spec in enumerate(specs):
        with utils.at_key(f'metrics.{i}'):
            spec = {'name': spec} if isinstance(spec, str) else dict(spec)
            target = registry.get(spec.get('name'))
            name = spec.pop('log_as', None) or log_name(getattr(target, '__name__', 'metric'))
            check_log_name(name, built)
            # the class's own signature: torchmetrics passes **kwargs on to Metric
            accepted = inspect.signature(target).parameters if callable(target) else {}
            given = spec.get('args') or {}
            extra = {k: v for k, v in (known or {}).items() if k in accepted and k not in given}
            built[name] = registry.make(spec, args=extra)
    return built
