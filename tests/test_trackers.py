"""The `loggers:` section (loggers/): each tracker read back by its own tool's reader, in both
engines, a resume continuing the same tracker runs, and its mistakes as one line."""
import csv
import json
import time
from pathlib import Path

import pytest
import yaml

from conftest import ENTRYPOINTS, SHRINK, run_command, scalars, tree
import utils
from test_train_pl import DIGITS


def all_four(tmp_path):
    uri = f'sqlite:///{tmp_path}/mlflow.db'
    return uri, ('+loggers=[{name: tensorboard}, {name: csv}, {name: mlflow, args: '
                 f'{{tracking_uri: "{uri}"}}}}, {{name: wandb, args: {{offline: true}}}}]')


def mlflow_series(uri, run_id, tag):
    from mlflow.tracking import MlflowClient
    history = MlflowClient(uri).get_metric_history(run_id, tag)
    return [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)]


def csv_series(run, tag):
    with open(run / 'csv' / 'metrics.csv', newline='') as f:
        return [(int(r['step']), float(r[tag])) for r in csv.DictReader(f) if r.get(tag)]


def wandb_records(path):
    """The protobuf records of a W&B run file: LevelDB's log format (32 KiB blocks, a 7-byte
    header per record) after W&B's own 7-byte file header (wandb 0.31 ships no reader of it)."""
    data, pos, parts = Path(path).read_bytes(), 7, b''
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], 'little'), data[pos + 6]
        parts, pos = parts + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last part of one
            yield parts
        if kind in (0, 1, 4):
            parts = b''


def wandb_run(run, points):
    """(run ids, {step: val/acc}, config keys) of a run folder's offline W&B files, once they
    hold `points` values of val/acc (W&B's own process, wandb-core, writes them; one CI run
    found no run record in them, for a cause not found: this waits up to 30 s for it)."""
    deadline = time.time() + 30
    while True:
        ids, series, config = read_wandb(run)
        if (ids and len(series) >= points) or time.time() > deadline:
            return ids, series, config
        time.sleep(0.2)


def wandb_files(run):
    """What a failed W&B check found: the files under <run>/wandb and their sizes."""
    return {str(p.relative_to(run)): p.stat().st_size for p in run.glob('wandb/**/*')
            if p.is_file()}


def read_wandb(run):
    from wandb.proto import wandb_internal_pb2
    ids, series, config = set(), {}, set()
    for path in sorted(run.glob('wandb/offline-run-*/run-*.wandb')):
        for data in wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof('record_type')
            if kind == 'run':
                ids.add(record.run.run_id)
            elif kind == 'config':
                config |= {item.key or '/'.join(item.nested_key)
                           for item in record.config.update}
            elif kind == 'history':
                row = {item.key or '/'.join(item.nested_key): json.loads(item.value_json)
                       for item in record.history.item}
                if 'val/acc' in row:
                    series[row['trainer/global_step']] = row['val/acc']
    return ids, sorted(series.items()), config


def close(a, b):
    return len(a) == len(b) and all(s == t and abs(x - y) < 1e-6 for (s, x), (t, y) in zip(a, b))


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_every_tracker_reads_back_the_same_series_and_a_resume_continues_it(
        train, tmp_path, script, monkeypatch):
    monkeypatch.setenv('WANDB_SILENT', 'true')
    uri, loggers = all_four(tmp_path)
    run = train(*DIGITS, *SHRINK, loggers, script=script)
    ids = json.loads((run / 'trackers.json').read_text())
    board = scalars(run, 'val/acc')
    assert len(board) == 2
    assert close(mlflow_series(uri, ids['mlflow'], 'val/acc'), board)
    assert close(csv_series(run, 'val/acc'), board)
    wandb_ids, wandb_series, config = wandb_run(run, len(board))
    assert wandb_ids == {ids['wandb']} and close(wandb_series, board), wandb_files(run)
    # the flattened config, as hyper-parameters
    from mlflow.tracking import MlflowClient
    params = MlflowClient(uri).get_run(ids['mlflow']).data.params
    assert MlflowClient(uri).get_run(ids['mlflow']).info.status == 'FINISHED'
    assert params['train_wrapper.args.optim_spec.args.lr'] == '0.01'
    assert 'train_wrapper.args.optim_spec.args.lr' in config
    assert yaml.safe_load((run / 'csv' / 'hparams.yaml').read_text())['seed'] == 0

    train('--resume', str(run), 'trainer_params.max_epochs=3', script=script)
    assert json.loads((run / 'trackers.json').read_text()) == ids  # the same tracker runs
    board = scalars(run, 'val/acc')
    assert len(board) == 3
    assert close(mlflow_series(uri, ids['mlflow'], 'val/acc'), board)
    assert close(csv_series(run, 'val/acc'), board)  # the file continued, not begun again
    wandb_ids, wandb_series, _ = wandb_run(run, len(board))
    assert wandb_ids == {ids['wandb']} and close(wandb_series, board), wandb_files(run)


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('override, message', [
    ('+loggers=[{name: mlfow}]', r"loggers\.0\.name: unknown loggers name 'mlfow'; did you "
                                 r"mean 'mlflow'\?"),
    ('+loggers=[{name: wandb, args: {ofline: true}}]',
     r"loggers\.0\.args\.ofline: unknown argument 'ofline' for loggers 'wandb'; did you mean "
     r"'offline'\?"),
    ('+loggers=[{name: csv, args: {every: 2}}]', r"loggers\.0\.args\.every: unknown argument"),
    ('+loggers=[{name: mlflow, args: {tracking_uri: 3}}]', r'loggers\.0\.args\.tracking_uri'),
    ('+trainer_params.logger=false', r'name the trackers in the '
                                     r'`loggers:` section'),
])
def test_a_logger_mistake_is_one_line_and_writes_nothing(script, override, message, save_dir,
                                                         capsys):
    import re
    with pytest.raises(SystemExit) as info:
        utils.run_cli(ENTRYPOINTS[script], [*DIGITS, override, '--save-dir', str(save_dir)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert tree(save_dir) == {}


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_missing_tracker_package_names_the_requirements_file(script, save_dir, capsys,
                                                               monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'wandb' else find_spec(name, *a))
    with pytest.raises(SystemExit) as info:
        utils.run_cli(ENTRYPOINTS[script], [*DIGITS, '+loggers=[{name: wandb}]',
                                            '--save-dir', str(save_dir)])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: override '+loggers=[{name: wandb}]': loggers.0.name: logger 'wandb' needs the "
        'wandb package: pip install -r requirements-trackers.txt')
    assert tree(save_dir) == {}


def test_train_py_imports_no_lightning_and_no_tracker_it_is_not_given():
    result = run_command('-X', 'importtime', 'train.py', '--help')
    modules = [line.split('|')[-1].strip() for line in result.stderr.splitlines()]
    assert 'loggers.mlflow_logger' in modules
    assert not [m for m in modules if m.split('.')[0] in ('mlflow', 'wandb', 'pytorch_lightning')]


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_images_go_to_tensorboard_wherever_it_is_listed_and_to_png_always(train, script):
    gan = train('--config', 'configs/digits-dcgan.yaml', *SHRINK, '+loggers=[{name: csv}]',
                name='gan', script=script)
    assert len(list((gan / 'samples').glob('epoch=*.png'))) == 2
    assert not list(gan.glob('events.out.tfevents.*'))
    if script == 'train_pl.py':  # image_logger is Lightning's side
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        run = train(*DIGITS, *SHRINK, '+loggers=[{name: csv}, {name: tensorboard}]',
                    '+callbacks=[{name: image_logger, args: {n: 4}}]', script=script)
        events = EventAccumulator(str(run))
        events.Reload()
        assert len(events.Images('val/predictions')) == 2


def test_the_csv_tracker_appends_each_row_and_a_resumed_process_continues_its_file(tmp_path):
    import loggers

    def rows():
        with open(tmp_path / 'csv' / 'metrics.csv', newline='') as f:
            return list(csv.DictReader(f))
    tracker = loggers.registry.make({'name': 'csv'})
    tracker.open(tmp_path, None)
    tracker.log_metrics({'train/loss': 1.0}, 9)
    inode = (tmp_path / 'csv' / 'metrics.csv').stat().st_ino
    tracker.log_metrics({'train/loss': 0.5}, 19)
    assert (tmp_path / 'csv' / 'metrics.csv').stat().st_ino == inode  # appended, not rewritten
    tracker.log_metrics({'val/acc': 0.75}, 19)  # a metric first seen now: a column, empty above
    resumed = loggers.registry.make({'name': 'csv'})
    resumed.open(tmp_path, None)
    resumed.log_metrics({'train/loss': 0.25}, 29)
    assert [(r['step'], r['train/loss'], r['val/acc']) for r in rows()] == \
        [('9', '1.0', ''), ('19', '0.5', ''), ('19', '', '0.75'), ('29', '0.25', '')]


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_run_that_an_error_stops_leaves_its_mlflow_run_failed_not_running(train, tmp_path,
                                                                             script):
    from mlflow.tracking import MlflowClient
    uri = f'sqlite:///{tmp_path}/mlflow.db'
    with pytest.raises(SystemExit) as stop:  # nan_policy stop: a NaN loss at the 6th step
        train(*DIGITS, *SHRINK, '+test=false', 'train_wrapper.name=tests.tasks.NaNAt',
              '+train_wrapper.args.nan_at=6', f'+loggers=[{{name: mlflow, args: '
              f'{{tracking_uri: "{uri}"}}}}]', script=script)
    assert stop.value.code == 1
    run_id = json.loads((tmp_path / 'save' / 'run' / 'trackers.json').read_text())['mlflow']
    assert MlflowClient(uri).get_run(run_id).info.status == 'FAILED'


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_run_a_signal_stops_is_killed_in_mlflow_then_running_and_finished_once_resumed(
        train, tmp_path, script):
    """Not FAILED: nothing went wrong, and --resume continues the same MLflow run."""
    from mlflow.tracking import MlflowClient
    import loggers
    uri = f'sqlite:///{tmp_path}/mlflow.db'
    with pytest.raises(SystemExit) as stop:  # SIGTERM at the 6th step: last.ckpt, then exit
        train(*DIGITS, *SHRINK, 'train_wrapper.args.loss_spec.name=tests.faults.FaultyLoss',
              '+train_wrapper.args.loss_spec.args={at: 6, fault: SIGTERM}',
              f'+loggers=[{{name: mlflow, args: {{tracking_uri: "{uri}"}}}}]', script=script)
    assert stop.value.code == 128 + 15
    run = tmp_path / 'save' / 'run'
    run_id = json.loads((run / 'trackers.json').read_text())['mlflow']
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == 'KILLED'
    assert [s for s, _ in mlflow_series(uri, run_id, 'val/acc')] == [3]  # epoch 1's

    reopened = loggers.registry.make({'name': 'mlflow', 'args': {'tracking_uri': uri}})
    reopened.open(run, run_id)  # what a resume does first
    assert client.get_run(run_id).info.status == 'RUNNING'
    train('--resume', str(run), 'train_wrapper.args.loss_spec.args.at=1000', script=script)
    assert json.loads((run / 'trackers.json').read_text())['mlflow'] == run_id
    assert client.get_run(run_id).info.status == 'FINISHED'
    assert [s for s, _ in mlflow_series(uri, run_id, 'val/acc')] == [3, 7]


def test_a_tracker_that_cannot_close_does_not_keep_the_others_open(tmp_path, capsys):
    import loggers
    closed = []

    class Gone(loggers.Tracker):
        def open(self, run_dir, run_id):
            pass

        def close(self):
            raise ConnectionError('the tracking server does not answer\nmore detail')

    class Kept(Gone):
        def close(self):
            closed.append('closed')

    for failed in (False, True):  # after a run: a warning; after an error: its own line only
        trackers = loggers.Trackers([('gone', Gone()), ('kept', Kept())], tmp_path, False)
        trackers.close(failed=failed)
        trackers.close(failed=failed)  # a second close, as after a signal's stop: nothing
        assert capsys.readouterr().err.strip().splitlines() == ([] if failed else [
            'warning: logger Gone did not close: the tracking server does not answer'])
    assert closed == ['closed', 'closed']  # fail() is close() unless a tracker has its own
