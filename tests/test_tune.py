"""tune.py: sweeps on Ray Tune, each trial an ordinary run folder."""
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import train_pl
import tune
import utils
from conftest import ROOT, run_command, scalars, tree

SWEEP = ['--config', 'configs/search/digits-lr.yaml']
# Four trials one after another: two good learning rates, then two hopeless ones, which ASHA
# (halving at epoch 1) must stop; three epochs each.
LR = 'train_wrapper.args.optim_spec.args.lr'
SMALL = ['search.search_alg=random', 'search.num_samples=1', '+search.max_failures=0',
         f'search.space={{{LR}: {{grid: [0.02, 1.0e-6]}}, seed: {{grid: [0, 1]}}}}',
         'search.scheduler={name: asha, grace_period: 1, max_t: 3, reduction_factor: 2}',
         'trainer_params.max_epochs=3', '+trainer_params.limit_train_batches=6']


def results(folder):
    with open(folder / 'results.csv', newline='') as f:
        return {row['trial']: row for row in csv.DictReader(f)}


def sweep(tmp_path, name, *extra):
    result = run_command('tune.py', *SWEEP, *SMALL, *extra, '--max-concurrent', '1',
                         '--name', name, '--save-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / name, result.stdout


def test_a_sweep_whose_every_trial_fails_exits_non_zero(tmp_path):
    result = run_command('tune.py', *SWEEP, *SMALL, f'search.space={{{LR}: {{grid: [-1.0]}}}}',
                         '--name', 'bad', '--save-dir', str(tmp_path))
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith('error: every trial failed')
    assert [r['status'] for r in results(tmp_path / 'bad').values()] == ['failed']
    # what stopped the trial, in one line, and the traceback Ray kept in its folder
    said = re.search(r'^(trial-\S+) failed: (.*) \(traceback: (.*)\)$', result.stderr, re.M)
    assert said and 'lr' in said[2], result.stderr[-2000:]
    assert Path(said[3]).is_file() and Path(said[3]).parent.name == said[1]
    assert 'no trial logged val/acc: no best config' in result.stdout  # none was written
    assert not (tmp_path / 'bad' / 'best.yaml').exists()


@pytest.mark.slow
def test_random_samples_are_the_same_for_every_grid_value_and_as_the_dry_run_says(tmp_path):
    space = [f'search.space={{{LR}: {{loguniform: [1.0e-3, 1.0e-1]}}, seed: {{grid: [0, 1]}}}}',
             'search.num_samples=2', 'search.scheduler={name: fifo}',
             'trainer_params.max_epochs=1']
    dry = run_command('tune.py', *SWEEP, *SMALL, *space, '--dry-run', '--name', 'rs',
                      '--save-dir', str(tmp_path))
    said = sorted(float(v) for v in re.findall(rf'{re.escape(LR)}=(\S+)', dry.stdout))
    folder, _ = sweep(tmp_path, 'rs', *space)
    ran = sorted(float(r[LR]) for r in results(folder).values())
    assert len(ran) == 4 and len(set(ran)) == 2  # 2 samples, each with both seeds
    assert ran == pytest.approx(said)


@pytest.mark.slow
def test_a_sweep_ranks_its_trials_stops_the_poor_ones_and_each_trial_is_a_run(tmp_path):
    # a trial whose worker crashes is retried once (from its last.ckpt), as a sweep's default is
    folder, out = sweep(tmp_path, 'lr', 'search.max_failures=1')
    rows = results(folder)
    assert len(rows) == 4 and all(r['status'] != 'failed' for r in rows.values()), \
        [p.read_text()[-2000:] for p in folder.glob('*/error.txt')]
    stopped = [t for t, r in rows.items() if r['status'] == 'stopped early']
    assert all(int(rows[t]['epochs']) < 3 for t in stopped)  # at one of ASHA's rungs
    assert {t for t, r in rows.items() if r[LR] == '1e-06'} <= set(stopped)  # both hopeless
    best = max(rows.values(), key=lambda r: float(r['val/acc best']))
    assert list(rows.values())[0] is best  # sorted by the metric, best first
    for trial, row in rows.items():  # an ordinary run folder each
        run = folder / trial
        assert (run / 'ckpt' / 'last.ckpt').is_file() and (run / 'src').is_dir()
        assert len(scalars(run, 'val/acc')) == int(row['epochs'])
        if row['status'] == 'done':  # it reached ASHA's max_t, and ran its test split
            assert len(scalars(run, 'test/acc')) == 1
        config = utils.load_config(run / 'config.yaml')
        assert 'search' not in config and config['seed'] == int(row['seed'])
        assert config['train_wrapper']['args']['optim_spec']['args']['lr'] == float(row[LR])
    assert (folder / 'curves.png').stat().st_size > 10_000
    lines = out.splitlines()
    header = max(i for i, line in enumerate(lines) if line.startswith('trial '))
    assert lines[header + 1].startswith(best['trial'])  # the printed table, best first

    # best.yaml is a plain config that retrains the best trial
    best_config = yaml.safe_load((folder / 'best.yaml').read_text())
    assert 'search' not in best_config
    retrain = run_command('train_pl.py', '--config', str(folder / 'best.yaml'), '--name', 'again',
                          '--save-dir', str(tmp_path))
    assert retrain.returncode == 0, retrain.stderr[-2000:]
    assert max(v for _, v in scalars(tmp_path / 'again', 'val/acc')) == \
        pytest.approx(float(best['val/acc best']), abs=0.02)

    # a trial folder continues with train_pl.py --resume and is evaluated by test.py
    assert run_command('train_pl.py', '--resume', str(folder / best['trial']),
                       'trainer_params.max_epochs=4').returncode == 0
    assert run_command('test.py', '--run', str(folder / best['trial'])).returncode == 0


@pytest.mark.slow
def test_a_trial_that_raises_fails_alone(tmp_path):
    # lr -1: torch refuses it when the trial builds its optimizer
    folder, _ = sweep(tmp_path, 'bad', f'search.space={{{LR}: {{grid: [0.02, -1.0]}}}}')
    statuses = {r[LR]: r['status'] for r in results(folder).values()}
    assert statuses == {'0.02': 'done', '-1.0': 'failed'}


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_redoing_finished_trials(tmp_path):
    argv = [sys.executable, 'tune.py', *SWEEP, *SMALL, '--max-concurrent', '1', '--name', 'cut',
            '--save-dir', str(tmp_path)]
    driver = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    folder = tmp_path / 'cut'
    deadline = time.time() + 300
    while not any('epoch 3/3' in p.read_text() for p in folder.glob('trial-*/log.txt')):
        assert time.time() < deadline and driver.poll() is None
        time.sleep(0.5)
    time.sleep(3)  # Ray saves the experiment state every few seconds
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    subprocess.run([str(ROOT / '.venv' / 'bin' / 'ray'), 'stop', '--force'],
                   capture_output=True)  # what the killed driver left running
    finished = {p.parent.parent.name: p.stat().st_mtime_ns
                for p in folder.glob('trial-*/ckpt/last.ckpt')
                if 'epoch 3/3' in (p.parent.parent / 'log.txt').read_text()}
    assert finished
    result = run_command('tune.py', '--resume', '--name', 'cut', '--save-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = results(folder)
    assert len(rows) == 4 and all(r['status'] in ('done', 'stopped early') for r in rows.values())
    for trial, mtime in finished.items():  # not trained again
        assert (folder / trial / 'ckpt' / 'last.ckpt').stat().st_mtime_ns == mtime


def test_dry_run_prints_the_trials_and_starts_nothing(tmp_path, capsys):
    utils.run_cli(tune.main, [*SWEEP, *SMALL, '--dry-run', '--name', 'dry',
                              '--save-dir', str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == '4 trials (1 samples x 4 grid combinations), random search, ranked by ' \
                     'val/acc (max):'
    assert out[1:] == [f'  trial {i}: train_wrapper.args.optim_spec.args.lr={lr}  seed={seed}'
                       for i, (lr, seed) in enumerate([(0.02, 0), (0.02, 1), (1e-06, 0),
                                                       (1e-06, 1)])]
    assert tree(tmp_path) == {}


@pytest.mark.parametrize('override, message', [
    (f'search.space={{{LR}r: {{grid: [0.1]}}}}',
     r"search.space.train_wrapper.args.optim_spec.args.lrr: .*'lrr'.*did you mean 'lr'"),
    ('search.search_alg=bayes',
     r"search.search_alg: must be one of random, grid, optuna, but got 'bayes'"),
    ('search.space={seed: {grid: 3}}', r'search.space.seed.grid: must be a list of values, but got 3'),
    ('search.num_samples=-1', r'search.num_samples: must be an integer >= 1, but got -1$'),
    ('search.num_samples=abc', r"search.num_samples: must be an integer >= 1, but got 'abc'$"),
    ('+search.resources.cpu=0', r'search.resources.cpu: must be a number above 0, but got 0$'),
    (f'search.space={{{LR}: {{loguniform: [0.1, -1]}}}}',
     r'search.space.train_wrapper.args.optim_spec.args.lr.loguniform: must have low < high and '
     r'low > 0, but got \[0.1, -1\]$'),
    (f'search.space={{{LR}: {{uniform: [0.1]}}}}',
     r'search.space.train_wrapper.args.optim_spec.args.lr.uniform: must be \[low, high\], '
     r'numbers, but got \[0.1\]$'),
])
def test_a_sweep_mistake_is_one_line_before_anything_starts(override, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(tune.main, [*SWEEP, override, '--name', 'typo', '--save-dir', str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1, err
    assert re.match(r'^error: configs/search/digits-lr.yaml: ' + message, err), err
    assert tree(tmp_path) == {}


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(tune.main, [*SWEEP, '--address', f'127.0.0.1:{port}', '--name', 'far',
                                  '--save-dir', str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.startswith(
        f'error: --address 127.0.0.1:{port}: no Ray cluster answers there'), err
    assert tree(tmp_path) == {}


def test_train_pl_refuses_a_sweep_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        utils.run_cli(train_pl.main, [*SWEEP, '--save-dir', str(tmp_path)])
    assert capsys.readouterr().err.strip() == (
        'error: configs/search/digits-lr.yaml: search: a sweep config; run it with tune.py '
        '(or leave the sweep out with ~search)')


@pytest.mark.slow
def test_a_sweep_on_a_ray_head_reads_data_by_a_relative_path(tmp_path, mnist_root):
    """A Ray head on 127.0.0.1 (`ray start --head`), tune.py --address auto from a folder whose
    config reads ./mnist: the trial finds the files, and its src/ has the git commit."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).parent / 'ray')
    started = subprocess.run([ray, 'start', '--head', '--port', str(port), '--node-ip-address',
                              '127.0.0.1', '--num-cpus', '2', '--include-dashboard', 'false',
                              '--disable-usage-stats'], capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        (tmp_path / 'sweep.yaml').write_text(yaml.safe_dump({
            '_base_': str(ROOT / 'configs' / 'mnist-classification.yaml'),
            'data_module': {'args': {'root_dir': './mnist', 'val_size': 16}},
            'train_wrapper': {'args': {'model_spec': {'name': 'lenet5'}}},
            'trainer_params': {'max_epochs': 1, 'limit_train_batches': 2},
            'search': {'metric': 'val/acc', 'num_samples': 1, 'search_alg': 'random',
                       'space': {'seed': {'grid': [0]}}, 'max_failures': 0}}))
        result = run_command(str(ROOT / 'tune.py'), '--config', 'sweep.yaml', '--address',
                             'auto', '--name', 'far', '--save-dir', 'save',
                             '~trainer_params.strategy', cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = results(tmp_path / 'save' / 'far')
        assert [r['status'] for r in rows.values()] == ['done']
        trial = tmp_path / 'save' / 'far' / next(iter(rows))
        assert (trial / 'src' / 'git_commit.txt').read_text().strip() == \
            subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True,
                           text=True).stdout.strip()
    finally:
        subprocess.run([ray, 'stop', '--force'], capture_output=True)


@pytest.mark.slow
def test_a_cluster_that_refuses_the_token_is_one_line(tmp_path):
    """A head with token authentication, joined with another token (a stale one)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).parent / 'ray')
    env = {**os.environ, 'RAY_AUTH_MODE': 'token', 'RAY_AUTH_TOKEN': '0123456789abcdef' * 2}
    started = subprocess.run([ray, 'start', '--head', '--port', str(port), '--node-ip-address',
                              '127.0.0.1', '--num-cpus', '1', '--include-dashboard', 'false',
                              '--disable-usage-stats'], capture_output=True, text=True, env=env)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        result = subprocess.run([sys.executable, 'tune.py', *SWEEP, '--address', 'auto',
                                 '--name', 'far', '--save-dir', str(tmp_path)], cwd=ROOT,
                                capture_output=True, text=True, timeout=300,
                                env={**env, 'RAY_AUTH_TOKEN': 'f' * 32})
        assert result.returncode == 2, result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith('error: --address auto: cannot join the Ray cluster') and \
            'RAY_AUTH_TOKEN' in last, last
        assert tree(tmp_path) == {}
    finally:
        subprocess.run([ray, 'stop', '--force'], capture_output=True, env=env)
