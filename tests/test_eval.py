"""test.py: evaluate a finished run, or predict with it, rebuilt from its run folder alone."""
import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits

import test as test_py  # the entrypoint: conftest puts the repository first on sys.path
import utils
from conftest import ENTRYPOINTS, ROOT, SHRINK, run_command, scalars, tree

# hidden [32]: weights that configs/digits.yaml (hidden [256]) would not fit, so a run that
# evaluates was rebuilt from its own config.yaml. lr 0.1 without the cosine: val/acc peaks at
# epoch 4 of 5, so --ckpt best and --ckpt last differ.
ARGS = ['--config', 'configs/digits.yaml', *SHRINK, 'trainer_params.max_epochs=5',
        'train_wrapper.args.model_spec.args.hidden=[32]',
        'train_wrapper.args.optim_spec.args.lr=0.1', '~train_wrapper.args.sched_spec']
NAMES = {'train_pl.py': 'lightning', 'train.py': 'plain'}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """{entrypoint: its finished run folder}."""
    save = tmp_path_factory.mktemp('eval') / 'save'
    for script, name in NAMES.items():
        utils.run_cli(ENTRYPOINTS[script], [*ARGS, '--save-dir', str(save), '--name', name])
    return {script: save / name for script, name in NAMES.items()}


def evaluate(*argv):
    utils.run_cli(test_py.main, [str(a) for a in argv])


def report(run, split):
    return json.loads((run / 'eval' / f'{split}.json').read_text())


@pytest.mark.parametrize('script', NAMES)
def test_last_checkpoint_gives_the_last_logged_validation(runs, script, capsys):
    run = runs[script]
    evaluate('--run', run, '--ckpt', 'last', '--split', 'val')
    out = capsys.readouterr().out
    got = report(run, 'val')
    assert got == {'run': str(run), 'checkpoint': str(run / 'ckpt' / 'last.ckpt'), 'epoch': 4,
                   'global_step': 20, 'split': 'val', 'metrics': got['metrics']}
    assert sorted(got['metrics']) == ['val/acc', 'val/loss']
    for tag in ('val/acc', 'val/loss'):
        assert len(scalars(run, tag)) == 5
        assert got['metrics'][tag] == pytest.approx(scalars(run, tag)[-1][1], abs=1e-6)
        assert re.search(rf'^  {tag} +{got["metrics"][tag]:.6g}$', out, flags=re.M), out
    assert out.splitlines()[0] == f'{run}/ckpt/last.ckpt (epoch=4, global_step=20), split val:'


@pytest.mark.parametrize('script', NAMES)
def test_best_checkpoint_gives_the_best_logged_validation(runs, script):
    run = runs[script]
    evaluate('--run', run, '--ckpt', 'best', '--split', 'val')
    got = report(run, 'val')
    acc, loss = scalars(run, 'val/acc'), scalars(run, 'val/loss')
    best = max(range(len(acc)), key=lambda i: acc[i][1])  # the first of equals, as both keep
    assert best != len(acc) - 1, 'the run must peak before its end to tell best from last'
    assert got['metrics']['val/acc'] == pytest.approx(acc[best][1], abs=1e-6)
    assert got['metrics']['val/loss'] == pytest.approx(loss[best][1], abs=1e-6)
    assert got['checkpoint'] == str(run / 'ckpt' / f"epoch={best}-step={4 * (best + 1)}.ckpt")
    assert (got['epoch'], got['global_step']) == (best, 4 * (best + 1))


@pytest.mark.parametrize('script', NAMES)
def test_default_is_the_test_split_of_the_best_checkpoint_as_after_training(runs, script):
    run = runs[script]
    evaluate('--run', run)
    got = report(run, 'test')
    assert got['split'] == 'test' and got['checkpoint'].endswith('.ckpt')
    assert 'last' not in got['checkpoint']
    for tag in ('test/acc', 'test/loss'):  # what training logged, testing its best checkpoint
        assert got['metrics'][tag] == pytest.approx(scalars(run, tag)[-1][1], abs=1e-6)


def test_every_checkpoint_of_both_entrypoints_loads_with_weights_only(runs):
    for run in runs.values():
        for ckpt in (run / 'ckpt').iterdir():
            state = torch.load(ckpt, map_location='cpu', weights_only=True)
            assert state['state_dict'].keys() == {'model.net.1.weight', 'model.net.1.bias',
                                                  'model.net.4.weight', 'model.net.4.bias'}


def test_real_command_line_elsewhere_on_a_moved_run(runs, tmp_path):
    moved = tmp_path / 'elsewhere' / 'run'
    shutil.copytree(runs['train_pl.py'], moved)
    shutil.rmtree(moved / 'eval', ignore_errors=True)
    # another working directory: no configs/ beside it; the recorded best path is the old one
    result = run_command(ROOT / 'test.py', '--run', moved, '--split', 'val', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ['metric', 'value']
    assert report(moved, 'val')['checkpoint'].startswith(str(moved / 'ckpt' / 'epoch='))
    assert sorted(p.name for p in (moved / 'eval').iterdir()) == ['val.json']


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """The first 60 of scikit-learn's digits, as 8x8 grayscale PNGs (0..16 scaled to 0..255) and
    as a tensor file of model-ready inputs (N x 1 x 8 x 8 in [0, 1], as datasets/digits.py makes
    them); and their labels."""
    folder = tmp_path_factory.mktemp('digits')
    x, y = load_digits(return_X_y=True)
    x, y = x[:60], y[:60]
    (folder / 'png').mkdir()
    for i, image in enumerate(x):
        Image.fromarray(np.round(image.reshape(8, 8) * 255 / 16).astype(np.uint8)).save(
            folder / 'png' / f'{i:03d}.png')
    torch.save(torch.tensor(x, dtype=torch.float32).div(16).view(-1, 1, 8, 8), folder / 'x.pt')
    return folder, y.tolist()


def read_predictions(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['input', 'predicted', 'probability', *(f'prob_{c}' for c in range(10))]
    for row in rows[1:]:
        probs = [float(p) for p in row[3:]]
        assert sum(probs) == pytest.approx(1, abs=1e-4)
        assert int(row[1]) == int(np.argmax(probs)) and float(row[2]) == max(probs)
    return rows[1:]


@pytest.mark.parametrize('script', NAMES)
def test_predict_on_a_folder_of_pngs_and_on_a_tensor_file(runs, script, digits, tmp_path):
    run, (folder, labels) = runs[script], digits
    evaluate('--run', run, '--predict', folder / 'png')
    from_png = read_predictions(run / 'eval' / 'predictions.csv')
    evaluate('--run', run, '--predict', folder / 'x.pt', '--out', tmp_path / 'out' / 'x.csv')
    from_tensor = read_predictions(tmp_path / 'out' / 'x.csv')
    assert [r[0] for r in from_png] == [f'{i:03d}.png' for i in range(60)]
    assert [r[0] for r in from_tensor] == [str(i) for i in range(60)]
    for rows in (from_png, from_tensor):
        assert sum(int(r[1]) == y for r, y in zip(rows, labels)) >= 0.75 * len(labels)
    # the same images both ways, up to the PNGs' rounding to 1/255
    for a, b in zip(from_png, from_tensor):
        assert all(abs(float(p) - float(q)) < 0.02 for p, q in zip(a[3:], b[3:]))


@pytest.fixture(scope='module')
def broken(runs, tmp_path_factory):
    """Run folders test.py must refuse, beside the finished `lightning` one (config.yaml of it
    in each): no checkpoint, nothing monitored, a last.ckpt that is not a checkpoint, one that
    pickles more than tensors, a wrapper without test_step; and other bad inputs."""
    save = runs['train_pl.py'].parent
    cfg = yaml.safe_load((runs['train_pl.py'] / 'config.yaml').read_text())
    changes = {'nockpt': {}, 'unmonitored': {'checkpoint': None},
               'junk': {}, 'unsafe': {},
               'trainonly': {'train_wrapper': utils.load_config(ROOT / 'configs' / 'digits-dcgan.yaml')[
                   'train_wrapper']},
               'notatask': {'train_wrapper': {'name': 'pytorch_lightning.LightningModule'}}}
    for name, change in changes.items():
        (save / name / 'ckpt').mkdir(parents=True)
        (save / name / 'config.yaml').write_text(yaml.safe_dump({**cfg, **change}))
        if name in ('unmonitored', 'trainonly', 'notatask'):
            shutil.copy(runs['train_pl.py'] / 'ckpt' / 'last.ckpt', save / name / 'ckpt')
    (save / 'junk' / 'ckpt' / 'last.ckpt').write_text('not a checkpoint')
    torch.save({'state_dict': {}, 'where': save}, save / 'unsafe' / 'ckpt' / 'last.ckpt')
    torch.save({'state_dict': {'model.other.weight': torch.zeros(2)}}, save / 'other.ckpt')
    torch.save(torch.zeros(3, dtype=torch.long), save / 'ints.pt')
    (save / 'no-images').mkdir()
    return save


RUN = ['--run', '{save}/lightning']
ERRORS = [
    ('no such run', ['--run', '{save}/nope'], r'^error: --run {save}/nope: no such run folder$'),
    ('not a run folder', ['--run', '{save}'],
     r'^error: --run {save}: not a run folder \(no config.yaml in it\)$'),
    ('no checkpoint', ['--run', '{save}/nockpt'],
     r'^error: --run {save}/nockpt: no checkpoint at {save}/nockpt/ckpt/last.ckpt$'),
    ('unknown --ckpt word', [*RUN, '--ckpt', 'bset'],
     r"^error: --ckpt must be last, best or a checkpoint file, but got 'bset'; did you mean "
     r"'best'\?$"),
    ('missing --ckpt file', [*RUN, '--ckpt', '{save}/nope.ckpt'],
     r'^error: --ckpt {save}/nope.ckpt: no such checkpoint file$'),
    ('best of an unmonitored run', ['--run', '{save}/unmonitored', '--ckpt', 'best'],
     r'^error: --ckpt best: {save}/unmonitored monitored no metric \(its checkpoint: section '
     r'has no monitor\), so it has no best checkpoint; use --ckpt last$'),
    ('not a checkpoint', ['--run', '{save}/junk', '--ckpt', 'last'],
     r'^error: --ckpt last: cannot load {save}/junk/ckpt/last.ckpt \(not a torch checkpoint: '),
    ('pickled objects', ['--run', '{save}/unsafe', '--ckpt', 'last'],
     r'^error: --ckpt last: cannot load {save}/unsafe/ckpt/last.ckpt \(it holds a '
     r'pathlib.PosixPath, which loading with weights_only=True refuses\)$'),
    ('another model', [*RUN, '--ckpt', '{save}/other.ckpt'],
     r'^error: --ckpt {save}/other.ckpt: its weights do not fit the model of '
     r'{save}/lightning/config.yaml \(Missing key\(s\) in state_dict: "model.net.1.weight"'),
    ('no validation_step', ['--run', '{save}/trainonly', '--ckpt', 'last'],
     r"^error: {save}/trainonly/config.yaml: train_wrapper.name: the 'gan' task has no "
     r"validation_step: nothing for test.py to evaluate$"),
    ('not a task', ['--run', '{save}/notatask', '--ckpt', 'last'],
     r"^error: {save}/notatask/config.yaml: train_wrapper.name: 'pytorch_lightning."
     r"LightningModule' is not a task: a train_wrapper is a subclass of models.Task "
     r"\(models/task.py\)$"),
    ('predict missing file', [*RUN, '--predict', '{save}/nope.pt'],
     r'^error: --predict {save}/nope.pt: no such file$'),
    ('predict no images', [*RUN, '--predict', '{save}/no-images'],
     r'^error: --predict {save}/no-images: no images in it \(.png, '),
    ('predict not floats', [*RUN, '--predict', '{save}/ints.pt'],
     r'^error: --predict {save}/ints.pt: must hold a float tensor N x C x H x W, but got '
     r'int64\[3\]$'),
    ('gpu missing', [*RUN, '--gpu', '0'], r'^error: --gpu 0: this machine has no CUDA GPU'),
    ('out without predict', [*RUN, '--out', '{save}/p.csv'],
     r'^error: --out names the predictions CSV: it goes with --predict$'),
]


@pytest.mark.parametrize('case, argv, message', ERRORS, ids=[c[0] for c in ERRORS])
def test_mistake_is_one_line_exit_2_and_nothing_created(case, argv, message, broken, capsys):
    if case == 'gpu missing' and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    before = tree(broken)
    with pytest.raises(SystemExit) as info:
        evaluate(*(a.replace('{save}', str(broken)) for a in argv))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(message.replace('{save}', re.escape(str(broken))), err), err
    assert tree(broken) == before


def test_real_command_line_error_is_one_line_and_debug_shows_the_traceback(runs):
    result = run_command('test.py', '--run', runs['train.py'], '--ckpt', 'bset')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --ckpt must be last, best or a checkpoint file, but got 'bset'; did you mean "
        "'best'?"]
    with_debug = run_command('test.py', '--run', runs['train.py'], '--ckpt', 'bset', '--debug')
    assert 'Traceback' in with_debug.stderr


def test_a_predict_mistake_on_the_real_command_line_prints_that_line_alone(runs, tmp_path):
    """Found before the Trainer is made: none of Lightning's lines about the machine first."""
    result = run_command('test.py', '--run', runs['train.py'], '--predict',
                         str(tmp_path / 'nope.pt'))
    assert result.returncode == 2
    assert (result.stdout + result.stderr).strip().splitlines() == [
        f'error: --predict {tmp_path}/nope.pt: no such file']
