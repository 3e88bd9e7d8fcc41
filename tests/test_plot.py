import re
import shutil

import pytest
import torch
from PIL import Image

import plot
import utils
from conftest import ROOT, SHRINK, run_command, scalars, tree

DIGITS = ['--config', 'configs/digits.yaml']


def table_rows(out):
    """{run name: {column: cell}} of the printed table (columns are 2+ spaces apart)."""
    lines = [line for line in out.splitlines() if line and not line.startswith('curves: ')]
    header = re.split(r' {2,}', lines[0].strip())
    return {cells[0]: dict(zip(header, cells)) for cells in
            (re.split(r' {2,}', line.strip()) for line in lines[1:])}


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == 'PNG'
        width, height = image.size
        assert 600 <= width <= 2500 and 300 <= height <= 1500
        assert image.convert('L').getextrema()[0] < 100  # something dark was drawn


def test_compare_a_lightning_run_and_a_resumed_plain_loop_run(train, save_dir, capsys):
    a = train(*DIGITS, *SHRINK, name='a')
    b = train(*DIGITS, *SHRINK, 'train_wrapper.args.optim_spec.args.lr=1e-3', name='b',
              script='train.py')
    train('--resume', str(b), 'trainer_params.max_epochs=3', script='train.py')
    assert len(list(b.glob('events.out.tfevents.*'))) == 2  # the resume wrote a second file
    before = {run: tree(run) for run in (a, b)}
    capsys.readouterr()

    plot.main([str(a), str(b)])
    out = capsys.readouterr().out
    png = save_dir / 'compare-a-vs-b.png'
    assert out.splitlines()[-1] == f'curves: {png}'
    assert_png(png)
    assert {run: tree(run) for run in (a, b)} == before  # the run folders are untouched

    rows = table_rows(out)
    assert list(rows) == ['a', 'b']
    assert (rows['a']['epochs'], rows['a']['steps']) == ('2', '8')  # 4 batches an epoch
    assert (rows['b']['epochs'], rows['b']['steps']) == ('3', '12')
    for run in (a, b):
        val_acc = scalars(run, 'val/acc')
        step, best = max(val_acc, key=lambda p: p[1])
        assert rows[run.name]['val/acc final'] == f'{val_acc[-1][1]:.4g}'
        assert rows[run.name]['val/acc max (step)'] == f'{best:.4g} ({step})'
        assert rows[run.name]['val/loss final'] == f"{scalars(run, 'val/loss')[-1][1]:.4g}"
        assert rows[run.name]['test/acc'] == f"{scalars(run, 'test/acc')[-1][1]:.4g}"
    assert len(scalars(b, 'val/acc')) == 3  # both event files were read

    # --metrics picks tags, or every split of a metric name
    plot.main([str(a), '--metrics', 'loss', '--out', str(save_dir / 'loss.png')])
    header = capsys.readouterr().out.splitlines()[0].split()
    assert 'val/loss' in header and 'test/loss' in header and 'val/acc' not in header
    assert_png(save_dir / 'loss.png')
    # a tag no run logged: the available ones are listed
    assert one_line_error([str(a), str(b), '--metrics', 'val/accuracy'], capsys) == (
        "error: --metrics val/accuracy: no run logged it; did you mean 'val/acc'? "
        "(available: test/acc, test/loss, train/loss, val/acc, val/loss)")


def one_line_error(argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(plot.main, argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == '' and len(captured.err.splitlines()) == 1
    return captured.err.strip()


@pytest.mark.parametrize('argv, message', [
    (['{tmp}/nothing'], r'.*/nothing: no such run folder'),
    (['{tmp}/not-a-run'], r'.*/not-a-run: not a run folder \(no config\.yaml, no events.*\)'),
    (['{tmp}/died'], r'.*/died: no TensorBoard event files yet'),
    (['{tmp}/died', '--out', '{tmp}/died/config.yaml'],
     r"--out must be a \.png file, but got '.*/died/config\.yaml'"),
    (['{tmp}/died', '--out', '{tmp}/missing/x.png'], r'--out .*/x\.png: no such folder .*/missing'),
])
def test_mistakes_are_one_line_errors(tmp_path, capsys, argv, message):
    (tmp_path / 'not-a-run').mkdir()
    (tmp_path / 'died').mkdir()  # a run that stopped before it logged anything
    shutil.copy(ROOT / 'configs' / 'digits.yaml', tmp_path / 'died' / 'config.yaml')
    before = tree(tmp_path)
    err = one_line_error([a.format(tmp=tmp_path) for a in argv], capsys)
    assert re.fullmatch('error: ' + message, err)
    assert tree(tmp_path) == before


def test_command_line_writes_curves_into_the_run_folder(train):
    run = train(*DIGITS, *SHRINK)
    result = run_command('plot.py', str(run))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"curves: {run / 'curves.png'}"
    assert table_rows(result.stdout)['run']['val/acc final'] == \
        f"{scalars(run, 'val/acc')[-1][1]:.4g}"
    assert_png(run / 'curves.png')


@pytest.mark.parametrize('script', ['train_pl.py', 'train.py'])
def test_the_test_point_is_at_the_step_of_the_checkpoint_it_tested(train, script):
    # mode min on val/acc: the best checkpoint is the first epoch's, the worst accuracy
    run = train(*DIGITS, *SHRINK, 'checkpoint.mode=min', script=script)
    best = next(p for p in (run / 'ckpt').iterdir() if p.name != 'last.ckpt')
    step = torch.load(best, weights_only=True)['global_step']
    assert step == 4  # 4 batches an epoch, 2 epochs: not the last checkpoint's 8
    val_steps = [s for s, _ in scalars(run, 'val/acc')]
    assert val_steps == [3, 7]
    read = plot.read_run(run)
    assert [s for s, _ in read['scalars']['test/acc']] == [3]  # beside epoch 1's val point
    assert read['scalars']['test/acc'][0][1] == pytest.approx(scalars(run, 'test/acc')[-1][1])


def test_a_learning_rate_panel_has_no_better_or_worse(train):
    run = train(*DIGITS, *SHRINK, '+callbacks=[{name: lr_monitor, args: {logging_interval: epoch}}]')
    read = plot.read_run(run)
    assert 'lr-Adam' in read['scalars']
    assert plot.panel_title('lr-Adam', ['lr-Adam'], [read]) == 'lr-Adam'
    assert plot.panel_title('acc', ['val/acc'], [read]) == 'val/acc (higher is better)'
    assert plot.panel_title('loss', ['train/loss', 'val/loss'], [read]) == \
        'train/loss, val/loss (lower is better)'
    assert plot.panel_title('mae', ['val/mae'], []) == 'val/mae (lower is better)'
