"""Sweep a config's hyper-parameters on Ray Tune: the config's `search:` section names the
metric, the space and how to search it; every trial is an ordinary run folder.

    python tune.py --config configs/search/digits-lr.yaml --name NAME [--gpu 0,1]
                   [--address auto|HOST:PORT] [--resume] [--dry-run] [--max-concurrent N]
                   [KEY=VALUE ...]

    search:
      metric: val/acc                   # what a trial reports every epoch and the sweep ranks by
      mode: max
      num_samples: 8                    # samples of the space (each run for every grid value)
      space:                            # dotted paths, as on the command line
        train_wrapper.args.optim_spec.args.lr: {loguniform: [1.0e-4, 1.0e-1]}
        seed: {grid: [0, 1]}            # also: choice, uniform, randint, quniform
      scheduler: {name: asha, grace_period: 2, max_t: 20}     # or fifo: every trial to the end
      search_alg: optuna                # or random, grid (every choice becomes a grid)
      resources: {cpu: 1, gpu: 0}       # per trial; gpu: 0.5 puts two trials on a GPU
      max_failures: 1                   # retries of a crashed trial (it resumes from last.ckpt)

save/NAME/ holds sweep.json (what --resume continues: the same trials again, each resuming
its run folder or, if it finished, ending at once; Ray's pickled experiment state is never
read, so a shared save/ runs no code), finished.json, one run folder per trial
(config.yaml, src/, ckpt/, TensorBoard events, log.txt: train_pl.py --resume and test.py --run
take it), and at the end results.csv, curves.png and best.yaml, a plain config of the best
trial that train_pl.py --config retrains.
"""
import argparse
import copy
import csv
import itertools
import json
import os
import socket
import sys
from pathlib import Path

import utils

SPACES = ('grid', 'choice', 'uniform', 'loguniform', 'randint', 'quniform')
SEARCH_KEYS = ('metric', 'mode', 'num_samples', 'space', 'scheduler', 'search_alg', 'resources',
               'max_failures')
SCHEDULERS = {'asha': ('grace_period', 'max_t', 'reduction_factor'), 'fifo': ()}
SEARCH_ALGS = ('random', 'grid', 'optuna')


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'must be a count of at least 1, but got {text!r}')
    return int(text)


def parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', help='a config with a search: section')
    p.add_argument('--name', required=True, help='the sweep folder: save/NAME')
    p.add_argument('--save-dir', default='save')
    p.add_argument('--gpu', help='GPUs the trials share, e.g. 0,1 (default: CPU only)')
    p.add_argument('--address', help='join this Ray cluster (auto, or HOST:PORT) instead of '
                                     'starting one on this machine')
    p.add_argument('--resume', action='store_true', help='continue the interrupted sweep NAME')
    p.add_argument('--dry-run', action='store_true', help='print the trials, train nothing')
    p.add_argument('--max-concurrent', type=positive, help='trials at once (default: as many as '
                                                      'the resources allow)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE')
    return p


def read_search(cfg):
    """The search: section, checked: {metric, mode, ..., space: {path: (kind, values)}}."""
    search = cfg.pop('search', None)
    if not isinstance(search, dict):
        raise utils.ConfigError('required: a sweep needs its search: section', key='search')
    with utils.at_key('search'):
        for key in search:
            if key not in SEARCH_KEYS:
                raise utils.ConfigError(f'unknown key{utils.close_matches(key, SEARCH_KEYS)} '
                                        f"(known: {', '.join(SEARCH_KEYS)})", key=key)
        for key in ('metric', 'space'):
            if key not in search:
                raise utils.ConfigError('is required', key=key)
        search.setdefault('mode', 'max' if 'acc' in search['metric'] else 'min')
        if search['mode'] not in ('min', 'max'):
            raise utils.ConfigError(f"must be 'min' or 'max', but got {search['mode']!r}",
                                    key='mode')
        search.setdefault('search_alg', 'random')
        if search['search_alg'] not in SEARCH_ALGS:
            raise utils.ConfigError(f"must be one of {', '.join(SEARCH_ALGS)}, but got "
                                    f"{search['search_alg']!r}", key='search_alg')
        search.setdefault('num_samples', 1)
        search.setdefault('max_failures', 1)
        search['scheduler'] = scheduler = dict(search.get('scheduler') or {'name': 'fifo'})
        if scheduler.get('name') not in SCHEDULERS:
            raise utils.ConfigError(f"must be one of {', '.join(SCHEDULERS)}, but got "
                                    f"{scheduler.get('name')!r}", key='scheduler.name')
        for key in scheduler:
            if key != 'name' and key not in SCHEDULERS[scheduler['name']]:
                raise utils.ConfigError(f"unknown setting for {scheduler['name']}; known: "
                                        f"{', '.join(SCHEDULERS[scheduler['name']])}",
                                        key=f'scheduler.{key}')
        search['resources'] = {'cpu': 1, 'gpu': 0, **(search.get('resources') or {})}
        for key, value, least in (('num_samples', search['num_samples'], 1),
                                  ('max_failures', search['max_failures'], -1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise utils.ConfigError(f'must be an integer >= {least}, but got {value!r}',
                                        key=key)
        for key, value in search['resources'].items():
            if key not in ('cpu', 'gpu'):
                raise utils.ConfigError("unknown resource (known: cpu, gpu)",
                                        key=f'resources.{key}')
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                    (key == 'cpu' and value == 0):
                raise utils.ConfigError(f'must be a number{" above" if key == "cpu" else " >="}'
                                        f' 0, but got {value!r}', key=f'resources.{key}')
        space = search['space']
        if not isinstance(space, dict) or not space:
            raise utils.ConfigError('must map dotted config paths to {kind: values}', key='space')
        search['space'] = {path: read_domain(cfg, path, spec) for path, spec in space.items()}
    return search


def read_domain(cfg, path, spec):
    """(kind, values) of one space entry, whose path must exist in the base config."""
    with utils.at_key(f'space.{path}'):
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACES:
            raise utils.ConfigError(f"must be one of {{{', '.join(f'{s}: [...]' for s in SPACES)}}}"
                                    f', but got {spec!r}')
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise utils.ConfigError(f'must be a list of values, but got {values!r}', key=kind)
        if kind in ('uniform', 'loguniform', 'randint', 'quniform'):
            check_range(kind, values)
    # the path as an override would set it: a typo fails here, with the close key
    with utils.at_key('space'):
        try:
            utils.apply_overrides(copy.deepcopy(cfg), [f'{path}={json.dumps(values[0])}'])
        except utils.ConfigError as e:
            raise utils.ConfigError(e.message.replace(f"override '{path}={json.dumps(values[0])}'",
                                                      f"'{path}'"), key=path) from None
    return kind, values


def check_range(kind, values):
    """[low, high] (quniform: [low, high, q]) of a sampled space entry, as Ray needs them."""
    size = 3 if kind == 'quniform' else 2
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if len(values) != size or not numbers:
        raise utils.ConfigError(f"must be [low, high{', q' if size == 3 else ''}], numbers, but "
                                f'got {values!r}', key=kind)
    low, high = values[:2]
    if not low < high or (kind == 'loguniform' and low <= 0) or (size == 3 and values[2] <= 0):
        raise utils.ConfigError(f"must have low < high{' and low > 0' if kind == 'loguniform' else ''}"
                                f"{' and q > 0' if size == 3 else ''}, but got {values!r}", key=kind)


def grid_combinations(search):
    grids = {p: v for p, (kind, v) in search['space'].items()
             if kind == 'grid' or (kind == 'choice' and search['search_alg'] == 'grid')}
    return list(grids), list(itertools.product(*grids.values()))


def param_space(search):
    """Ray Tune's search space for what is sampled; the grid is handled by grid_combinations."""
    from ray import tune
    grid_paths, _ = grid_combinations(search)
    space = {}
    for path, (kind, values) in search['space'].items():
        if path not in grid_paths:
            space[path] = getattr(tune, kind)(values) if kind == 'choice' else \
                getattr(tune, kind)(*values)
    return space


def draw_samples(search, seed):
    """[{path: value}] of a random search's `num_samples` samples, drawn here from `seed`:
    every grid combination trains with the same samples, and --dry-run shows what will run
    (Ray's own sampler would draw new values for every grid value)."""
    import numpy as np
    if search['search_alg'] != 'random':
        return None
    random = np.random.RandomState(seed)
    sampled = param_space(search)
    return [{path: to_plain(domain.sample(random_state=random)) for path, domain in
             sampled.items()} for _ in range(search['num_samples'])]


def to_plain(value):
    """A NumPy scalar as the Python number it is (for YAML, JSON and the command line)."""
    return value.item() if hasattr(value, 'item') else value


def dry_run(search, draws):
    """The trials a random or grid search would start: every grid combination for each sample
    (optuna's samples depend on results, so they are shown as their ranges)."""
    grid_paths, combos = grid_combinations(search)
    n = 1 if search['search_alg'] == 'grid' else search['num_samples']
    print(f"{n * len(combos)} trials ({n} samples x {len(combos)} grid combinations), "
          f"{search['search_alg']} search, ranked by {search['metric']} ({search['mode']}):")
    trial = 0
    for i in range(n):
        drawn = draws[i] if draws else {path: '{}{}'.format(*search['space'][path])
                                        for path in param_space(search)}
        for combo in combos:
            values = {**drawn, **dict(zip(grid_paths, combo))}
            print(f'  trial {trial}: ' + '  '.join(f'{p}={v}' for p, v in values.items()))
            trial += 1


def trial_values(config, grid_paths, combos, draws=None):
    """{path: value} of one trial, from the config Ray Tune gave it (its grid combination is
    the __trial_index__ the grid search or the Repeater set; a random search's sample is the
    __sample__ of the samples draw_samples drew)."""
    values = {p: v for p, v in config.items() if not p.startswith('__')}
    if draws and '__sample__' in config:
        values.update(draws[config['__sample__']])
    if grid_paths:
        values.update(zip(grid_paths, combos[config.get('__trial_index__', 0)]))
    return values


def trial_name(config, trial_id, search_alg):
    """A trial's folder: named by its sample and grid combination, so that --resume, which
    starts the same trials afresh, finds each one's folder again (optuna's samples depend on
    the results: Ray's trial id)."""
    if search_alg == 'optuna':
        return f'trial-{trial_id}'
    return f"trial-{config.get('__sample__', 0):03d}-{config.get('__trial_index__', 0):03d}"


def finished_trials(folder):
    path = Path(folder) / 'finished.json'
    return json.loads(path.read_text()) if path.is_file() else []


def run_trial(config, sweep):
    """One trial: train_pl.py on the sweep's config with this trial's values, into the trial's
    folder (Ray's trial directory), reporting every epoch to Ray Tune. A retried trial resumes
    from its last.ckpt."""
    from ray import tune

    import train_pl
    from callbacks.tune_report import TuneReport
    if Path(sweep['cwd']).is_dir():  # relative paths (load/...) as on the tune.py command line
        os.chdir(sweep['cwd'])
    # the trial's folder under save/NAME/, where Ray keeps its results of the trial too
    folder = Path(sweep['folder']) / trial_name(config, tune.get_context().get_trial_id(),
                                                sweep['search_alg'])
    reporter = TuneReport(folder / 'tune_last.json')
    if folder.name in finished_trials(sweep['folder']):  # --resume: it ended before
        return reporter.finish()  # its last report again, as Ray has forgotten it
    argv = ['--config', sweep['config'], *sweep['overrides'], '~search',
            *[f'{path}={json.dumps(value)}' for path, value in
              trial_values(config, sweep['grid_paths'], sweep['combos'],
                           sweep.get('draws')).items()],
            '--name', folder.name, '--save-dir', str(folder.parent), '--resume', 'auto',
            '+trainer_params.enable_progress_bar=false']
    if sweep['gpu']:
        argv += ['--gpu', '0']  # Ray sets CUDA_VISIBLE_DEVICES to this trial's share
    if sweep.get('max_t'):  # the trial ends at ASHA's last rung by itself, and runs its test
        argv.append(f"trainer_params.max_epochs={sweep['max_t']}")
    try:
        train_pl.main(argv, extra_callbacks=[reporter])
    finally:
        utils.wait_for_writes()  # a trial Ray stops: its last checkpoint on disk, whole
    reporter.finish()


def make_tuner(search, sweep, folder, args):
    from ray import tune
    from ray.tune import Callback
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    class RecordFinished(Callback):
        """finished.json: the trials Ray ended (done, or stopped by ASHA), which a --resume
        does not train again."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            names = finished_trials(folder)
            name = trial_name(trial.config, trial.trial_id, search['search_alg'])
            utils.write_text(folder / 'finished.json', json.dumps(sorted({*names, name})))

    trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=sweep),
                                    {'cpu': search['resources']['cpu'],
                                     'gpu': search['resources']['gpu']})
    scheduler = dict(search['scheduler'])
    scheduler = ASHAScheduler(time_attr='epoch', **{k: v for k, v in scheduler.items()
                                                    if k != 'name'}) \
        if scheduler.pop('name') == 'asha' else FIFOScheduler()
    _, combos = grid_combinations(search)
    num_samples = search['num_samples']
    space = param_space(search)
    if search['search_alg'] == 'optuna':
        from ray.tune.search import Repeater
        from ray.tune.search.optuna import OptunaSearch
        # every optuna sample runs once per grid combination (seeds): Repeater hands out
        # __trial_index__ and reports their mean to optuna
        search_alg = Repeater(OptunaSearch(), repeat=len(combos), set_index=True)
        num_samples *= len(combos)
    else:
        search_alg = None  # Ray's variant generator: the grid for every sample
        if combos != [()]:
            space['__trial_index__'] = tune.grid_search(list(range(len(combos))))
        if sweep.get('draws'):  # every sample (drawn by draw_samples) with every combination
            space = {'__sample__': tune.grid_search(list(range(len(sweep['draws'])))),
                     **{k: v for k, v in space.items() if k.startswith('__')}}
            num_samples = 1
        if search['search_alg'] == 'grid':
            num_samples = 1
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric=search['metric'], mode=search['mode'],
                                    num_samples=num_samples, scheduler=scheduler,
                                    search_alg=search_alg,
                                    max_concurrent_trials=args.max_concurrent,
                                    trial_dirname_creator=lambda t: trial_name(
                                        t.config, t.trial_id, search['search_alg'])),
        run_config=tune.RunConfig(name=folder.name, storage_path=str(folder.parent.resolve()),
                                  failure_config=tune.FailureConfig(
                                      max_failures=search['max_failures']),
                                  # Ray's result files, not its TensorBoard logger: the trial
                                  # folders hold runyard's own events
                                  callbacks=[JsonLoggerCallback(), CSVLoggerCallback(),
                                             RecordFinished()],
                                  verbose=1))


def report(results, search, folder, grid_paths, combos, draws):
    """The table (printed and results.csv), every trial's curve (curves.png) and best.yaml."""
    metric, mode = search['metric'], search['mode']
    best_of = max if mode == 'max' else min
    rows = []
    for result in results:
        history = result.metrics_dataframe
        values = list(history[metric].dropna()) if history is not None and \
            metric in history else []
        trial = Path(result.path).name
        status = 'failed' if result.error else 'done'
        epochs = int(history['epoch'].max()) if values else 0
        if not result.error and epochs < (search['scheduler'].get('max_t') or epochs):
            status = 'stopped early'
        params = trial_values(result.config or {}, grid_paths, combos, draws)
        rows.append({'trial': trial, 'status': status, 'epochs': epochs,
                     f'{metric} best': best_of(values) if values else None,
                     f'{metric} last': values[-1] if values else None, **params,
                     'history': values, 'path': result.path})
    rows.sort(key=lambda r: (r[f'{metric} best'] is None,
                             -(r[f'{metric} best'] or 0) if mode == 'max' else
                             (r[f'{metric} best'] or 0)))
    columns = [c for c in rows[0] if c not in ('history', 'path')] if rows else []

    def write_csv(tmp):
        with open(tmp, 'w', newline='') as f:
            writer = csv.DictWriter(f, columns, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(rows)
    utils.replace_atomically(folder / 'results.csv', write_csv)
    shown = [[c.rsplit('.', 1)[-1] for c in columns]] + \
        [[f'{r[c]:.4g}' if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(columns))]
    for row in shown:
        print('  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    draw_curves(rows, metric, folder / 'curves.png')
    finished = [r for r in rows if r[f'{metric} best'] is not None]
    if finished:
        best = finished[0]
        text = ''.join(line for line in (Path(best['path']) / 'config.yaml').open()
                       if not line.startswith('# '))
        utils.write_text(folder / 'best.yaml', (
            f"# the best trial of sweep {folder.name}: {best['trial']}, {metric} "
            f"{best[f'{metric} best']:.4g}; retrain with\n"
            f'#   python train_pl.py --config {folder}/best.yaml --name NAME\n' + text))
    best = f', best config: {folder}/best.yaml' if finished else \
        f' (no trial logged {metric}: no best config)'
    print(f'results: {folder}/results.csv, {folder}/curves.png{best}')
    for result in results:  # what stopped each failed trial, and where its traceback is
        if result.error:
            last = [line.strip() for line in str(result.error).splitlines() if line.strip()]
            print(f'{Path(result.path).name} failed: {last[-1] if last else repr(result.error)} '
                  f'(traceback: {Path(result.path) / "error.txt"})', file=sys.stderr)
    if rows and all(r['status'] == 'failed' for r in rows):
        raise utils.TrainingStopped(f'every trial failed: see the error in each trial\'s folder '
                                    f'under {folder}/')


def draw_curves(rows, metric, path):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4.5), layout='constrained')
    ax = fig.subplots()
    for row in rows:
        if row['history']:
            ax.plot(range(1, len(row['history']) + 1), row['history'], marker='.',
                    label=f"{row['trial']} ({row['status']})")
    ax.set(xlabel='epoch', ylabel=metric, title=f'{metric} of every trial')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1, 0.5))
    utils.replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format='png'))


def check_reachable(address):
    """A HOST:PORT where nothing listens is an error now: ray.init would retry it for ever."""
    if address == 'auto':
        return
    host, _, port = address.split('://')[-1].rpartition(':')
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise utils.ConfigError(f'--address {address}: no Ray cluster answers there ({e}); start '
                                'one with `ray start --head`, or give its HOST:PORT') from None


def start_ray(args, gpus, folder):
    import ray
    # Ray's loggers are chosen in make_tuner; trials stay in the repository, so that relative
    # paths (load/...) resolve as on the command line
    os.environ.update(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS='1', RAY_CHDIR_TO_TRIAL_DIR='0')
    env = {'env_vars': {'PYTHONPATH': str(utils.ROOT), 'TUNE_DISABLE_AUTO_CALLBACK_LOGGERS': '1',
                        'RAY_CHDIR_TO_TRIAL_DIR': '0'}}
    if args.address:  # the code travels to the cluster's nodes; save/ must be shared storage
        env['working_dir'] = str(utils.ROOT)
        env['excludes'] = ['save/', 'load/', '.venv/', '.git/']
        # without .git there, the trials' src/ takes the commit and diff from the sweep folder
        env['env_vars']['RUNYARD_GIT_STATE'] = str(folder.resolve())
        check_reachable(args.address)
        try:
            ray.init(address=args.address, runtime_env=env, log_to_driver=False)
        except Exception as e:  # no cluster there, or one that refuses us (a stale token)
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise utils.ConfigError(
                f'--address {args.address}: cannot join the Ray cluster ({type(e).__name__}: '
                f"{lines[0] if lines else ''}); check that `ray status` answers there, and, for a "
                'cluster with RAY_AUTH_MODE=token, that RAY_AUTH_TOKEN (or the file '
                'RAY_AUTH_TOKEN_PATH names, by default ~/.ray/auth_token) holds its token, '
                'not an old one') from None
    else:
        # a sweep on this machine: Ray's node address is the loopback one
        ray.init(num_cpus=os.cpu_count(), num_gpus=len(gpus), runtime_env=env,
                 include_dashboard=False, log_to_driver=False, _node_ip_address='127.0.0.1')


def main(argv):
    args = parser().parse_intermixed_args(argv)
    utils.check_name(args.name)
    folder = Path(args.save_dir) / args.name
    state = folder / 'sweep.json'
    if args.resume:
        if not state.is_file():
            raise utils.ConfigError(f'--resume: no sweep to continue in {folder} '
                                    f'(no {state.name})')
        sweep = json.loads(state.read_text())
    else:
        if not args.config:
            raise utils.ConfigError('--config is required (or --resume a sweep)')
        if folder.exists() and not args.dry_run:
            raise utils.ConfigError(f'sweep folder {folder} already exists; continue it with '
                                    f'--resume, or pick another --name')
        sweep = {'config': str(Path(args.config).resolve()), 'overrides': args.overrides}
    sweep.update(folder=str(folder.resolve()), cwd=os.getcwd())
    gpus = utils.parse_gpus(args.gpu)
    with utils.at_key(None, file=args.config or sweep['config']):
        cfg = utils.load_config(sweep['config'], sweep['overrides'])
        search = read_search(cfg)
    if args.resume and search['search_alg'] == 'optuna':
        raise utils.ConfigError('--resume continues random and grid searches, whose trials are '
                                'known before they start; an optuna sweep\'s next samples live '
                                'in Ray\'s pickled state, which tune.py does not load (a shared '
                                'save/ would run its code): start a new sweep',
                                key='search.search_alg')
    if search['resources']['gpu'] and not gpus and not args.address:
        raise utils.ConfigError('search.resources.gpu needs GPUs: give them with --gpu 0,1')
    grid_paths, combos = grid_combinations(search)
    draws = draw_samples(search, cfg.get('seed', 0))
    max_t = search['scheduler'].get('max_t')
    max_epochs = (cfg.get('trainer_params') or {}).get('max_epochs')
    sweep.update(grid_paths=grid_paths, combos=combos, gpu=search['resources']['gpu'],
                 search_alg=search['search_alg'],
                 draws=draws, max_t=max_t if max_t and max_epochs and max_t < max_epochs
                 else None)
    if args.dry_run:
        return dry_run(search, draws)

    if gpus:
        os.environ['CUDA_VISIBLE_DEVICES'] = ','.join(map(str, gpus))
    start_ray(args, gpus, folder)  # first: a cluster that cannot be joined leaves no folder
    if not args.resume:
        folder.mkdir(parents=True)
        state.write_text(json.dumps({'config': sweep['config'], 'overrides': sweep['overrides']}))
    if args.address:
        utils.write_git_state(folder)
    tuner = make_tuner(search, sweep, folder, args)  # --resume: the same trials, afresh
    results = tuner.fit()
    report(results, search, folder, grid_paths, combos, draws)


if __name__ == '__main__':
    utils.run_cli(main, sys.argv[1:])
