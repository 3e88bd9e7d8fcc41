"""Callbacks from the config's `callbacks:` list, in both entrypoints."""
import csv
import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import utils
from conftest import ENTRYPOINTS, SHRINK, scalars

DIGITS = ['--config', 'configs/digits.yaml', *SHRINK]
# val/acc must beat its best by 1.0 to count as better: it never does after epoch 1
NEVER_BETTER = ('{name: early_stopping, args: {monitor: val/acc, mode: max, patience: 2, '
                'min_delta: 1.0}}')


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_early_stopping_stops_the_run(train, script):
    run = train(*DIGITS, 'trainer_params.max_epochs=6',
                f'+callbacks=[{NEVER_BETTER}, {{name: metrics_csv}}]', script=script)
    # epoch 1 sets the best, epochs 2 and 3 do not beat it: patience 2 is used up
    assert [r['epoch'] for r in read_csv(run / 'metrics.csv')] == ['1', '2', '3']
    assert 'epoch 3/6' in (run / 'log.txt').read_text()
    assert 'epoch 4/6' not in (run / 'log.txt').read_text()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_metrics_csv_has_a_row_per_epoch_with_what_tensorboard_has(train, script):
    run = train(*DIGITS, 'trainer_params.max_epochs=3', '+callbacks=[{name: metrics_csv}]',
                script=script)
    rows = read_csv(run / 'metrics.csv')
    assert [(r['epoch'], r['step']) for r in rows] == [('1', '4'), ('2', '8'), ('3', '12')]
    assert [round(float(r['val/acc']), 6) for r in rows] == \
        [round(v, 6) for _, v in scalars(run, 'val/acc')]
    assert [float(r['train/loss']) for r in rows] == pytest.approx(
        [v for step, v in scalars(run, 'train/loss') if (step + 1) % 4 == 0], abs=1e-6)
    assert rows[-1]['test/acc'] and not rows[0]['test/acc']  # test joins the last row
    assert float(rows[-1]['test/acc']) == pytest.approx(scalars(run, 'test/acc')[-1][1])


def test_metrics_csv_keeps_one_row_per_epoch_across_a_resume(train):
    run = train(*DIGITS, '+callbacks=[{name: metrics_csv}]')
    train('--resume', str(run), 'trainer_params.max_epochs=3')
    assert [r['epoch'] for r in read_csv(run / 'metrics.csv')] == ['1', '2', '3']


def test_metrics_csv_appends_an_epoch_and_rewrites_for_a_redo_or_a_new_column(tmp_path,
                                                                            monkeypatch):
    path = tmp_path / 'metrics.csv'
    reads, reader = [], csv.DictReader
    monkeypatch.setattr(utils.logs.csv, 'DictReader', lambda f: reads.append(1) or reader(f))
    for epoch in range(1, 101):  # a long run reads the file only to continue it
        utils.record_metrics(path, epoch, 10 * epoch, {'train/loss': 1 / epoch, 'val/acc': 0.5})
    assert reads == []
    rows = read_csv(path)
    assert [(r['epoch'], r['step'], r['train/loss']) for r in rows[:2]] == \
        [('1', '10', '1.0'), ('2', '20', '0.5')]
    assert len(rows) == 100 and list(rows[0]) == ['epoch', 'step', 'train/loss', 'val/acc']
    before = path.read_bytes()
    utils.record_metrics(path, 101, 1010, {'val/acc': 0.75})  # a metric missing: left empty
    assert path.read_bytes().startswith(before) and read_csv(path)[-1]['train/loss'] == ''
    utils.record_metrics(path, 101, 1010, {'test/acc': 0.7})  # joins the epoch's row
    utils.record_metrics(path, 102, 1020, {'lr': 0.1})  # a metric first seen late
    rows = read_csv(path)
    assert [r['epoch'] for r in rows] == [str(e) for e in range(1, 103)]
    assert list(rows[0]) == ['epoch', 'step', 'lr', 'test/acc', 'train/loss', 'val/acc']
    assert (rows[-2]['test/acc'], rows[-2]['val/acc'], rows[-1]['lr'], rows[0]['lr']) == \
        ('0.7', '0.75', '0.1', '')
    utils.record_metrics(path, 50, 500, {'val/acc': 0.9})  # a resumed run redoes epoch 50
    rows = read_csv(path)
    assert len(rows) == 102 and rows[49]['val/acc'] == '0.9' and rows[50]['epoch'] == '51'
    # the file changed by someone else (another process, an editor): read again, not appended
    path.write_text('epoch,step,val/acc\n1,10,0.1\n')
    utils.record_metrics(path, 2, 20, {'val/acc': 0.2})
    assert [(r['epoch'], r['val/acc']) for r in read_csv(path)] == [('1', '0.1'), ('2', '0.2')]
    # a new process continues the file it finds
    utils.logs._WRITTEN.clear()
    utils.record_metrics(path, 3, 30, {'val/acc': 0.3})
    assert [r['epoch'] for r in read_csv(path)] == ['1', '2', '3']


def test_metrics_csv_left_whole_when_the_disk_fills_during_an_append(tmp_path, monkeypatch):
    import errno
    path = tmp_path / 'metrics.csv'
    for epoch in (1, 2):
        utils.record_metrics(path, epoch, 10 * epoch, {'val/acc': 0.5})
    before = path.read_bytes()

    def full_disk(file, mode='r', **kwargs):  # half a line written, then ENOSPC
        f = open(file, mode, **kwargs)
        if mode != 'a':
            return f

        class Half:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, text):
                f.write(text[:len(text) // 2])
                f.flush()
                raise OSError(errno.ENOSPC, 'No space left on device')
        return Half()
    monkeypatch.setattr(utils.logs, 'open', full_disk, raising=False)
    with pytest.raises(utils.ConfigError, match='the disk is full'):
        utils.record_metrics(path, 3, 30, {'val/acc': 0.75})
    assert path.read_bytes() == before
    monkeypatch.undo()
    utils.logs._WRITTEN.clear()  # the next process
    utils.record_metrics(path, 3, 30, {'val/acc': 0.75})
    assert [(r['epoch'], r['val/acc']) for r in read_csv(path)] == \
        [('1', '0.5'), ('2', '0.5'), ('3', '0.75')]


def test_lightning_callbacks_by_short_name_and_dotted_path(train):
    run = train(*DIGITS, '+callbacks=[{name: lr_monitor}, {name: image_logger, args: {n: 6}}, '
                '{name: pytorch_lightning.callbacks.EarlyStopping, args: {monitor: val/loss}}]')
    events = EventAccumulator(str(run), size_guidance={'images': 0})
    events.Reload()
    assert len(scalars(run, 'lr-Adam')) >= 2  # the learning rate, from lr_monitor
    figures = events.Images('val/predictions')  # image_logger: one figure per validation
    assert [f.step for f in figures] == [4, 8] and figures[0].width > 100


def test_train_py_names_the_callbacks_it_leaves_to_lightning(train, capsys):
    train(*DIGITS, '+callbacks=[{name: lr_monitor}, {name: metrics_csv}]', script='train.py')
    assert 'warning: train.py ignores callbacks lr_monitor (train_pl.py runs them)' in \
        capsys.readouterr().err


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_the_config_shows_in_tensorboards_hparams_view(train, script):
    run = train(*DIGITS, 'train_wrapper.args.optim_spec.args.lr=0.003', script=script)
    events = EventAccumulator(str(run))
    events.Reload()
    content = events.PluginTagToContent('hparams')
    start = plugin_data_pb2.HParamsPluginData.FromString(content['_hparams_/session_start_info'])
    assert start.session_start_info.hparams['train_wrapper.args.optim_spec.args.lr'] \
        .number_value == 0.003
    assert start.session_start_info.hparams['data_module.name'].string_value == 'digits'
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content['_hparams_/experiment'])
    assert {m.name.tag for m in experiment.experiment.metric_infos} >= {'val/acc', 'val/loss'}


# (id, callbacks list, {entrypoint: message after the file}); train.py leaves the last two
# callbacks to train_pl.py
MISTAKES = [
    ('early stopping mode', '[{name: early_stopping, args: {monitor: val/acc, mode: maximum}}]',
     {'train_pl.py': r"callbacks.0.args.mode: must be 'min' or 'max', but got 'maximum'",
      'train.py': r"callbacks.0.args.mode: must be 'min' or 'max', but got 'maximum'"}),
    ('misspelt name', '[{name: early_stoping}]',
     {'train_pl.py': r"callbacks.0.name: unknown callbacks name 'early_stoping'; did you mean "
                     r"'early_stopping'",
      'train.py': r"callbacks.0.name: unknown callback 'early_stoping'; did you mean "
                  r"'early_stopping'\?"}),
    ('lr monitor interval', '[{name: lr_monitor, args: {logging_interval: epok}}]',
     {'train_pl.py': r"callbacks.0.args.logging_interval: must be 'step' or 'epoch' or null, "
                     r"but got 'epok'$"}),
    ('image logger n', '[{name: image_logger, args: {n: 0}}]',
     {'train_pl.py': r'callbacks.0.args.n: must be an int >= 1, but got 0'}),
]


@pytest.mark.parametrize('spec, script, message', [
    pytest.param(spec, script, message, id=f'{case}-{script}')
    for case, spec, messages in MISTAKES for script, message in messages.items()])
def test_a_callback_mistake_is_one_line_before_anything_is_written(spec, script, message,
                                                                    save_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(ENTRYPOINTS[script], [*DIGITS, f'callbacks={spec}', '--name', 'run',
                                            '--save-dir', str(save_dir)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1, err
    # blamed on the override that set the list
    assert re.match('^error: ' + re.escape(f"override 'callbacks={spec}'") + ': ' + message,
                    err), err
    assert not save_dir.exists()


def test_train_py_takes_a_callback_by_bare_name(train):
    run = train(*DIGITS, 'callbacks=[metrics_csv]', script='train.py')
    assert len(read_csv(run / 'metrics.csv')) == 2


def test_resuming_a_finished_train_py_run_adds_no_row(train):
    run = train(*DIGITS, script='train.py')
    before = read_csv(run / 'metrics.csv')
    train('--resume', str(run), script='train.py')  # nothing left to train: only the test
    assert [r['epoch'] for r in read_csv(run / 'metrics.csv')] == ['1', '2']
    assert read_csv(run / 'metrics.csv')[0] == before[0]
