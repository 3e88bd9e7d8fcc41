"""The metric names a config monitors (checkpoint:, a callback's `monitor`, a plateau
scheduler's, a sweep's `search.metric`), checked by --check against what one train and one
val batch logged: a typo is found before a run ends on it."""
from .errors import ConfigError, Mistakes, close_matches, listing


def monitored(cfg, schedules=()):
    """[(key, metric name)] of every name the config monitors; `schedules`: the built
    scheduler settings (a plateau scheduler monitors val/loss unless told otherwise)."""
    found = []
    monitor = (cfg.get('checkpoint') or {}).get('monitor')
    if monitor:
        found.append(('checkpoint.monitor', monitor))
    for i, spec in enumerate(cfg.get('callbacks') or []):
        if not isinstance(spec, dict):
            continue
        args = spec.get('args') if isinstance(spec.get('args'), dict) else {}
        if 'monitor' in args:
            found.append((f'callbacks.{i}.args.monitor', args['monitor']))
        elif spec.get('name') == 'early_stopping':  # its default
            found.append((f'callbacks.{i}.name', 'val/loss'))
    for settings in schedules:
        if settings and settings.get('monitor'):
            found.append(('train_wrapper.args.sched_spec.monitor', settings['monitor']))
    metric = (cfg.get('search') or {}).get('metric')
    if metric:
        found.append(('search.metric', metric))
    return found


def check_monitors(cfg, logged, schedules=()):
    """Every monitored name is one that `logged` (the names one train and one val batch
    logged) holds: all the misses as ConfigErrors, each with its closest names."""
    logged = sorted(logged)
    mistakes = Mistakes()
    for key, name in monitored(cfg, schedules):
        if name not in logged and not str(name).startswith('test/'):
            with mistakes.part():
                raise ConfigError(f"monitors '{name}', which this run does not log"
                                  f'{close_matches(name, logged)}{listing(logged, "it logs")}',
                                  key=key)
    mistakes.raise_them()
