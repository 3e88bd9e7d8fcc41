"""--check, --print-config and --explain: they look, they never write."""
import pytest
import yaml

import utils
from conftest import ENTRYPOINTS, ROOT, tree

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.yaml'))


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('config', CONFIGS)
def test_check_runs_every_shipped_config(config, script, save_dir, mnist_root, cifar10_root,
                                         capsys):
    argv = ['--config', config, '--check', '--save-dir', str(save_dir)]
    if 'search' in utils.load_config(ROOT / config):  # a sweep: check the config it varies
        argv.append('~search')
    if utils.load_config(ROOT / config)['train_wrapper']['args'].get('model_spec', {}).get(
            'compile'):  # a minute of compiling on 2 cores; tests/test_speed.py compiles for real
        argv.append('train_wrapper.args.model_spec.compile=false')
    roots = {'mnist': mnist_root, 'cifar10': cifar10_root}  # tiny copies in the real format
    dataset = utils.load_config(ROOT / config)['data_module']['name']
    if dataset in roots:
        argv += [f'data_module.args.root_dir={roots[dataset]}', '+data_module.args.val_size=16']
    gan = 'dcgan' in config
    utils.run_cli(ENTRYPOINTS[script], argv)
    out = capsys.readouterr().out
    assert 'check passed' in out
    summary = dict(line.split(': ', 1) for line in out.splitlines()
                   if line.split(': ')[0] in ('model', 'train batch', 'losses'))
    assert int(summary['model'].split()[0].replace(',', '')) > 300
    assert summary['train batch'].startswith('(int64[' if dataset == 'chars' else '(float32[')
    losses = dict(zip(*[iter(summary['losses'].split())] * 2))
    expected = ('train/d_loss', 'train/g_loss') if gan else ('train/loss', 'val/loss')
    assert all(0 < float(losses[name]) < 10 for name in expected)
    assert not save_dir.exists()


def test_check_leaves_an_existing_run_alone(train, save_dir, capsys):
    run = train('--config', 'configs/digits.yaml', 'trainer_params.max_epochs=1')
    before = tree(save_dir)
    utils.run_cli(ENTRYPOINTS['train.py'], ['--config', 'configs/digits.yaml', '--name', 'run',
                                            '--check', '--save-dir', str(save_dir)])
    assert 'check passed' in capsys.readouterr().out
    assert tree(save_dir) == before and run.is_dir()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_print_config_is_the_resolved_config(script, save_dir, capsys):
    utils.run_cli(ENTRYPOINTS[script], ['--config', 'configs/digits-augment.yaml',
                                        '--print-config', 'trainer_params.max_epochs=12',
                                        '--save-dir', str(save_dir)])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == utils.load_config('configs/digits-augment.yaml',
                                        ['trainer_params.max_epochs=12']) | {'seed': 0}
    assert printed['trainer_params']['max_epochs'] == 12
    assert printed['train_wrapper']['args']['sched_spec']['name'] == 'MultiStepLR'
    assert not save_dir.exists()


def test_explain_says_who_set_a_key(save_dir, capsys):
    utils.run_cli(ENTRYPOINTS['train_pl.py'], [
        '--config', 'configs/digits-augment.yaml', '--explain',
        'train_wrapper.args.model_spec.args.hidden', '--explain', 'trainer_params.max_epochs',
        'trainer_params.max_epochs=12', '--save-dir', str(save_dir)])
    assert capsys.readouterr().out.splitlines() == [
        'train_wrapper.args.model_spec.args.hidden: [512, 256]',
        '  set by configs/digits-augment.yaml:19',
        '  replacing [256] from configs/digits.yaml:15',
        'trainer_params.max_epochs: 12',
        "  set by override 'trainer_params.max_epochs=12'",
        '  replacing 30 from configs/digits-augment.yaml:29',
        '  replacing 20 from configs/digits.yaml:30']
