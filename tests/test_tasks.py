"""One task, two engines: every shipped config trains under train.py and train_pl.py, the two
agree epoch by epoch, and a task of one's own keeps the run's guards."""
import csv
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

import models
import utils
from conftest import ENTRYPOINTS, ROOT, SHRINK, run_command
from tasks import finite

# GPU-only (cifar10-fast: bf16, compile, 1024-image batches) and sweep configs are left out.
CONFIGS = ['configs/digits.yaml', 'configs/digits-augment.yaml', 'configs/digits-dcgan.yaml',
           'configs/diabetes-regression.yaml', 'configs/mnist-classification.yaml',
           'configs/cifar10-resnet18.yaml', 'configs/chars-lm.yaml']


def test_the_list_holds_every_config_but_the_gpu_and_sweep_ones():
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / 'configs').glob('*.yaml')}
    assert shipped - set(CONFIGS) == {'configs/cifar10-fast.yaml'}


def read_csv(run):
    with open(run / 'metrics.csv', newline='') as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('config', CONFIGS)
def test_every_shipped_config_trains_two_epochs(config, script, train, request):
    cfg = utils.load_config(ROOT / config)
    dataset = cfg['data_module']['name']
    data = []
    if dataset in ('mnist', 'cifar10'):  # tiny copies in the real on-disk format
        root = request.getfixturevalue(f'{dataset}_root')
        data = [f'data_module.args.root_dir={root}', '+data_module.args.val_size=16']
    if 'strategy' in cfg.get('trainer_params', {}):
        data.append('~trainer_params.strategy')  # one CPU process
    run = train('--config', config, *data, *SHRINK, '+callbacks=[{name: metrics_csv}]',
                script=script)
    rows = read_csv(run)
    assert [row['epoch'] for row in rows] == ['1', '2']
    logged = [k for k in rows[-1] if rows[-1][k] != '']
    task = models.make_task(utils.without_init_from(cfg['train_wrapper']))
    expected = task.summary_metrics() if task.validates else \
        [f'train/{name}' for name in task.train_losses]
    assert set(expected) - {n for n in expected if n.startswith('test/')} <= set(logged)
    assert all(abs(float(rows[-1][k])) < 1e6 for k in logged)  # numbers, not NaN or Inf
    assert (run / 'ckpt' / 'last.ckpt').is_file()
    assert finite(models.load_task(run / 'ckpt' / 'last.ckpt').state_dict())


AGREE = {'configs/digits.yaml': ('val/loss', 'val/acc', 'train/loss'),
         'configs/diabetes-regression.yaml': ('val/loss', 'val/mae', 'val/mse', 'val/r2'),
         'configs/digits-dcgan.yaml': ('train/d_loss', 'train/g_loss')}


@pytest.mark.parametrize('config', AGREE)
def test_the_engines_agree_epoch_by_epoch(config, train):
    argv = ['--config', config, 'trainer_params.max_epochs=3',
            '+trainer_params.limit_train_batches=8', '+trainer_params.enable_progress_bar=false',
            '+trainer_params.enable_model_summary=false', '+test=false',
            '+callbacks=[{name: metrics_csv}]']
    runs = {script: read_csv(train(*argv, name=script, script=script)) for script in ENTRYPOINTS}
    assert len(runs['train.py']) == len(runs['train_pl.py']) == 3
    for plain, lightning in zip(runs['train.py'], runs['train_pl.py']):
        for name in AGREE[config]:
            assert abs(float(plain[name]) - float(lightning[name])) < 1e-4, (name, plain, lightning)


def nan_task(task, at):
    gan = task == 'tests.tasks.GANNaNAt'
    config = 'configs/digits-dcgan.yaml' if gan else 'configs/digits.yaml'
    return ['--config', config, *SHRINK, '+test=false', f'train_wrapper.name={task}',
            f'+train_wrapper.args.nan_at={at}']


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('task', ['tests.tasks.NaNAt', 'tests.tasks.GANNaNAt'])
def test_a_task_with_its_own_training_step_keeps_nan_policy_stop(task, script, train, save_dir,
                                                                 capsys):
    with pytest.raises(SystemExit) as stop:
        train(*nan_task(task, 6), script=script)
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf'error: the loss is nan at epoch 2, step \d+; the run stopped and '
                        rf'{save_dir}/run/ckpt/last.ckpt is the last good checkpoint', err), err
    state = torch.load(save_dir / 'run' / 'ckpt' / 'last.ckpt', weights_only=True)
    assert state['epoch'] == 0 and finite(state['state_dict'])  # the end of epoch 1


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('task', ['tests.tasks.NaNAt', 'tests.tasks.GANNaNAt'])
def test_a_task_with_its_own_training_step_keeps_nan_policy_skip(task, script, train, capsys):
    run = train(*nan_task(task, 6), '+trainer_params.nan_policy=skip', script=script)
    assert 'warning: skipped batch 1 of epoch 2: the loss is nan' in capsys.readouterr().err
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=True)
    assert state['epoch'] == 1 and finite(state['state_dict'])
    assert 'epoch 2/2' in (run / 'log.txt').read_text()


def test_train_py_imports_no_lightning():
    result = subprocess.run([sys.executable, '-X', 'importtime', 'train.py', '--help'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    imported = [line.rsplit('|', 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith('import time:')]
    assert 'torch' in imported and 'models.task' in imported
    assert not [m for m in imported if re.match(r'(pytorch_)?lightning($|\.|_fabric)', m)]


def test_an_unimported_file_that_registers_the_name_is_named(tmp_path):
    folder = tmp_path / 'plugins'
    folder.mkdir()
    (folder / 'mixup.py').write_text("@models.wrappers.register('mixup')\nclass Mixup: ...\n")
    registry = utils.Registry('train wrappers', folder=str(folder))
    with pytest.raises(utils.ConfigError, match=r"unknown train wrappers name 'mixup' \(known: "
                                                r"\); plugins/mixup.py registers it but is not "
                                                r"imported: add mixup to the import line in "
                                                r"plugins/__init__.py"):
        registry.get('mixup')
    with pytest.raises(utils.ConfigError, match=r"unknown train wrappers name 'cutmix' \(known: "
                                                r"\); to add one, register it in a file in "
                                                r"plugins/ and add that file to the import line "
                                                r"in plugins/__init__.py, or name it by its "
                                                r"dotted path"):
        registry.get('cutmix')


def test_a_dotted_path_to_a_task_needs_no_registering(train):
    run = train('--config', 'configs/digits.yaml', *SHRINK,
                'train_wrapper.name=models.classification.Classification')
    assert 'epoch 2/2' in (run / 'log.txt').read_text()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_one_checkpoint_write_per_epoch(script, train, monkeypatch):
    """An epoch that keeps a top-k file writes it once; last.ckpt is the same file."""
    writes = []
    real = utils.atomic_save
    monkeypatch.setattr(utils, 'atomic_save', lambda obj, path: (writes.append(path),
                                                                  real(obj, path)))
    run = train('--config', 'configs/digits.yaml', *SHRINK, 'checkpoint.save_top_k=-1',
                script=script)
    kept = sorted((run / 'ckpt').glob('epoch=*.ckpt'))
    assert len(writes) == len(kept) == 2
    assert (run / 'ckpt' / 'last.ckpt').stat().st_ino == kept[-1].stat().st_ino


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_test_py_evaluates_and_predicts_a_regression_run(script, train, tmp_path):
    run = train('--config', 'configs/diabetes-regression.yaml', *SHRINK, script=script)
    evaluated = run_command('test.py', '--run', str(run), '--split', 'val', '--ckpt', 'last')
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((run / 'eval' / 'val.json').read_text())['metrics']
    assert set(metrics) == {'val/loss', 'val/mae', 'val/mse', 'val/r2'}
    assert abs(metrics['val/loss'] - metrics['val/mse']) < 1e-5  # the loss is the MSE
    inputs = torch.randn(5, 10)
    torch.save(inputs, tmp_path / 'patients.pt')
    predicted = run_command('test.py', '--run', str(run), '--ckpt', 'last',
                            '--predict', str(tmp_path / 'patients.pt'))
    assert predicted.returncode == 0, predicted.stderr
    with open(run / 'eval' / 'predictions.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['input', 'output'] and len(rows) == 6
    task = models.load_task(run / 'ckpt' / 'last.ckpt').eval()
    with torch.no_grad():
        expected = task(inputs).flatten().tolist()
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('override, message', [
    ('checkpoint.mode=maks', "must be 'min' or 'max', but got 'maks'"),
    ('+checkpoint.monitr=val/acc', "unknown argument 'monitr' for checkpoint; did you mean "
                                   "'monitor'?"),
    ('checkpoint.save_top_k=two', "must be a number, but got 'two'"),
    ('+callbacks=[{name: early_stopping, args: {patience: 0}}]',
     'callbacks.0.args.patience: must be an integer >= 1, but got 0')])
def test_checkpoint_and_early_stopping_mistakes_read_alike_in_both(override, message, script,
                                                                   save_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(ENTRYPOINTS[script], ['--config', 'configs/digits.yaml', override,
                                            '--name', 'run', '--save-dir', str(save_dir)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.startswith(f"error: override '{override}': {message}"), err
    assert not save_dir.exists()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_resuming_a_copied_run_leaves_the_original_alone(script, train, save_dir):
    original = train('--config', 'configs/digits.yaml', *SHRINK,
                     name='original', script=script)
    before = sorted(p.name for p in (original / 'ckpt').iterdir())
    copy = save_dir / 'copy'
    shutil.copytree(original, copy)
    train('--resume', str(copy), 'trainer_params.max_epochs=4', script=script)
    assert sorted(p.name for p in (original / 'ckpt').iterdir()) == before
    state = torch.load(copy / 'ckpt' / 'last.ckpt', weights_only=True)
    kept = [name for _, name in state['checkpoints']['kept']]
    assert sorted(p.name for p in (copy / 'ckpt').glob('epoch=*')) == sorted(kept)


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_metrics_from_the_config_get_what_the_task_knows(script, train):
    run = train('--config', 'configs/digits.yaml', *SHRINK, '+train_wrapper.args.metrics=['
                '{name: MulticlassAccuracy, args: {average: macro}, log_as: macro_acc}, '
                '{name: MulticlassF1Score, args: {average: macro}}]', 'checkpoint.monitor=val/f1',
                script=script)
    last = read_csv(run)[-1]
    assert 0 < float(last['val/macro_acc']) <= 1 and 0 < float(last['val/f1']) <= 1
    assert 'val/acc' not in last  # the list replaces the task's default


@pytest.mark.parametrize('metric, message', [
    ('{name: MeanSquaredError, log_as: loss}', "metrics.0.log_as: 'loss' is logged already"),
    ('{name: MeanSquaredError, log_as: f1.macro}', 'metrics.0.log_as: must be a name of letters'),
    ('{name: MeanSquaredErrr}', "metrics.0.name: unknown torchmetrics metrics name "
                                "'MeanSquaredErrr'; did you mean 'MeanSquaredError'")])
def test_a_metric_mistake_is_one_line(metric, message, save_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(ENTRYPOINTS['train.py'], [
            '--config', 'configs/diabetes-regression.yaml', f'train_wrapper.args.metrics=[{metric}]',
            '--save-dir', str(save_dir)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.startswith(
        f"error: override 'train_wrapper.args.metrics=[{metric}]': train_wrapper.args.{message}"), err
    assert not save_dir.exists()


SCHEDULES = {
    'plateau, validation every 2nd epoch, every checkpoint kept, early stopping': [
        'trainer_params.max_epochs=6', '+trainer_params.check_val_every_n_epoch=2',
        'train_wrapper.args.sched_spec={name: ReduceLROnPlateau, args: {mode: max, patience: 0, '
        'factor: 0.3}, monitor: val/acc}', 'checkpoint.save_top_k=-1',
        '+callbacks=[{name: metrics_csv}, {name: early_stopping, args: {monitor: val/acc, '
        'mode: max, patience: 1, min_delta: 0.5}}]'],
    'a step schedule every 2nd optimizer step of 2 accumulated batches': [
        'trainer_params.max_epochs=3', '+trainer_params.accumulate_grad_batches=2',
        'train_wrapper.args.sched_spec={name: StepLR, args: {step_size: 1, gamma: 0.8}, '
        'interval: step, frequency: 2}']}


@pytest.mark.parametrize('overrides', SCHEDULES.values(), ids=SCHEDULES)
def test_the_engines_step_schedules_and_keep_checkpoints_alike(overrides, train):
    runs = {script: train('--config', 'configs/digits.yaml', *SHRINK, '+test=false', *overrides,
                          name=script, script=script) for script in ENTRYPOINTS}
    plain, lightning = (read_csv(runs[s]) for s in ENTRYPOINTS)
    assert len(plain) == len(lightning) >= 3
    for a, b in zip(plain, lightning):
        assert a.keys() == b.keys() and a['step'] == b['step']
        for name in a:
            if a[name] or b[name]:  # an epoch without validation has no val/* in either
                assert abs(float(a[name]) - float(b[name])) < 1e-4, (name, a, b)
    assert sorted(p.name for p in (runs['train.py'] / 'ckpt').iterdir()) == \
        sorted(p.name for p in (runs['train_pl.py'] / 'ckpt').iterdir())


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_misspelt_scheduler_monitor_is_one_line(script, train, capsys):
    with pytest.raises(SystemExit) as stop:
        train('--config', 'configs/digits.yaml', *SHRINK, 'train_wrapper.args.sched_spec='
              '{name: ReduceLROnPlateau, monitor: val/accc}', script=script)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2
    assert err.startswith("error: train_wrapper.args.sched_spec.monitor: 'val/accc' is not a "
                          "metric this run logs; did you mean 'val/acc'?"), err


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('config, overrides', [
    ('configs/digits.yaml', ['+trainer_params.limit_val_batches=0']),
    ('configs/digits.yaml', ['+data_module.args.val_fraction=0.0']),
    ('configs/digits-dcgan.yaml', ['+data_module.args.loader=memory'])],
    ids=['no val batches', 'empty val split', 'gan in memory'])
def test_no_validation_logs_none_and_keeps_last_ckpt(config, overrides, script, train):
    run = train('--config', config, *SHRINK, '+test=false', *overrides,
                '+callbacks=[{name: metrics_csv}]', script=script)
    assert not [k for k in read_csv(run)[-1] if k.startswith('val/')]
    assert (run / 'ckpt' / 'last.ckpt').is_file()
    assert 'epoch 2/2' in (run / 'log.txt').read_text()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_accumulating_zero_batches_is_refused_before_the_run(script, save_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(ENTRYPOINTS[script], ['--config', 'configs/digits.yaml',
                                            '+trainer_params.accumulate_grad_batches=0',
                                            '--save-dir', str(save_dir)])
    assert stop.value.code == 2 and capsys.readouterr().err.strip() == (
        "error: override '+trainer_params.accumulate_grad_batches=0': must be at least 1, but "
        'got 0')
    assert not save_dir.exists()
