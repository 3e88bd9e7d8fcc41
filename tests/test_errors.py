"""Every mistake a user can make in a config or on the command line: one line on stderr naming
the file and key, exit status 2, no traceback, and save/ exactly as it was. Add a row whenever
a new mistake is found."""
import re

import pytest
import torch

from conftest import ENTRYPOINTS, ROOT, run_command, tree
import models
import utils

DIGITS = ['--config', 'configs/digits.yaml']
MNIST = ['--config', 'configs/mnist-classification.yaml']

# (id, argv, message regex); {tmp} is a folder of broken configs, {save} the --save-dir, which
# holds a finished-looking run `old`, a run `nockpt` without checkpoints and a run `bad` whose
# last.ckpt is not a checkpoint.
CASES = [
    ('yaml syntax', ['--config', '{tmp}/syntax.yaml'],
     r'^error: {tmp}/syntax.yaml:3: invalid YAML: '),
    ('config missing', ['--config', 'configs/nope.yaml'],
     r'^error: configs/nope.yaml: config file not found$'),
    ('base missing', ['--config', '{tmp}/child.yaml'],
     r'^error: {tmp}/child.yaml:1: _base_: file not found: {tmp}/missing.yaml$'),
    ('include cycle', ['--config', '{tmp}/a.yaml'],
     r'^error: {tmp}/b.yaml:1: _base_: include cycle: {tmp}/a.yaml -> {tmp}/b.yaml -> '
     r'{tmp}/a.yaml$'),
    ('section missing', ['--config', '{tmp}/nodata.yaml'],
     r'^error: {tmp}/nodata.yaml: data_module: required section is missing$'),
    ('unknown section', [*DIGITS, '+trainer_param.max_epochs=3'],
     r"^error: configs/digits.yaml: trainer_param: unknown section; did you mean "
     r"'trainer_params'"),
    ('spec without name', [*DIGITS, '~train_wrapper.args.model_spec.name'],
     r'^error: configs/digits.yaml: train_wrapper.args.model_spec: must be a models spec '
     r'\{name: ..., args: \{...\}\}, but got \{'),
    ('args not a mapping', [*DIGITS, 'train_wrapper.args.model_spec.args=5'],
     r'^error: configs/digits.yaml: train_wrapper.args.model_spec.args: must be a mapping, '
     r'but got 5$'),
    ('unknown model', [*DIGITS, 'train_wrapper.args.model_spec.name=mlpp'],
     r"^error: configs/digits.yaml: train_wrapper.args.model_spec.name: unknown models name "
     rf"'mlpp'; did you mean 'mlp'\? \(known: {', '.join(models.list())}\)$"),
    ('unknown argument', [*DIGITS, '+train_wrapper.args.model_spec.args.hiden=[8]'],
     r"^error: configs/digits.yaml: train_wrapper.args.model_spec.args.hiden: unknown argument "
     r"'hiden' for models 'mlp'; did you mean 'hidden'\? \(accepted: dropout, hidden, in_dim, "
     r"num_classes, out_dim\)$"),
    ('not a number', [*DIGITS, 'train_wrapper.args.optim_spec.args.lr=fast'],
     r'^error: configs/digits.yaml: train_wrapper.args.optim_spec.args.lr: must be a number, '
     r"but got 'fast'$"),
    ('unknown optimizer', [*DIGITS, 'train_wrapper.args.optim_spec.name=Adamm'],
     r"^error: configs/digits.yaml: train_wrapper.args.optim_spec.name: unknown torch.optim "
     r"optimizers name 'Adamm'; did you mean 'Adam'"),
    ('unknown scheduler', [*DIGITS, 'train_wrapper.args.sched_spec.name=CosineLR'],
     r"^error: configs/digits.yaml: train_wrapper.args.sched_spec.name: unknown "
     r"torch.optim.lr_scheduler schedulers name 'CosineLR'; did you mean 'CosineAnnealingLR'"),
    ('override without =', [*DIGITS, 'trainer_params.max_epochs'],
     r"^error: configs/digits.yaml: override 'trainer_params.max_epochs' must look like "
     r'KEY=VALUE, \+KEY=VALUE or ~KEY$'),
    ('override typo', [*DIGITS, 'trainer_params.max_epoch=3'],
     r"^error: configs/digits.yaml: override 'trainer_params.max_epoch=3': no key 'max_epoch' "
     r"under 'trainer_params'; did you mean 'max_epochs'\? \(use \+KEY=VALUE to add a new key\)$"),
    ('trainer typo with +', [*DIGITS, '+trainer_params.max_epoch=3'],
     r"^error: configs/digits.yaml: trainer_params.max_epoch: unknown .*; did you mean "
     r"'max_epochs'"),
    ('interpolation', [*DIGITS, 'train_wrapper.args.sched_spec.args.T_max=${trainer.epochs}'],
     r"^error: configs/digits.yaml: train_wrapper.args.sched_spec.args.T_max: cannot resolve: "
     r"Interpolation key 'trainer.epochs' not found$"),
    ('unknown transform', [*DIGITS, 'data_module.args.loader=dataloader',
                           '+data_module.args.transforms.train=[{name: RandomCrp}]'],
     r"^error: configs/digits.yaml: data_module.args.transforms.train.0.name: unknown "
     r"transforms name 'RandomCrp'; did you mean 'RandomCrop'"),
    ('dataloader typo', [*DIGITS, '+data_module.args.dataloader.train.batchsize=8'],
     r"^error: configs/digits.yaml: data_module.args.dataloader.train.batchsize: unknown "
     r"DataLoader setting; did you mean 'batch_size'"),
    ('gpu not integers', [*DIGITS, '--gpu', 'a,b'],
     r"^error: --gpu must be comma-separated integers like 0,1, but got 'a,b'$"),
    ('gpu missing', [*DIGITS, '--gpu', '0'], r'^error: --gpu 0: this machine has no CUDA GPU'),
    ('resume nothing', ['--resume', '{save}/no-such-run'],
     r'^error: --resume {save}/no-such-run: no such run folder or checkpoint file$'),
    ('resume no checkpoint', ['--resume', '{save}/nockpt'],
     r'^error: --resume {save}/nockpt: no checkpoint at {save}/nockpt/ckpt/last.ckpt$'),
    ('resume not a checkpoint', ['--resume', '{save}/bad'],
     r'^error: --resume {save}/bad: cannot load {save}/bad/ckpt/last.ckpt \('),
    ('name with separator', [*DIGITS, '--name', 'a/b'],
     r"^error: --name must be a plain folder name, but got 'a/b'$"),
    ('name dotdot', [*DIGITS, '--name', '..'],
     r"^error: --name must be a plain folder name, but got '..'$"),
    ('name exists', [*DIGITS, '--name', 'old'],
     r'^error: run folder {save}/old already exists; continue it with --resume {save}/old, '
     r'or pick another --name$'),
    ('root_dir missing', [*MNIST, 'data_module.args.root_dir={tmp}/nowhere'],
     r'^error: configs/mnist-classification.yaml: data_module.args.root_dir: MNIST files not '
     r'found in {tmp}/nowhere/MNIST/raw'),
    ('loader typo', [*DIGITS, 'data_module.args.loader=gpu'],
     r"^error: configs/digits.yaml: data_module.args.loader: must be 'dataloader' or 'memory', "
     r"but got 'gpu'$"),
    ('augment without memory', [*DIGITS, 'data_module.args.loader=dataloader',
                                '+data_module.args.augment={flip: true}'],
     r'^error: configs/digits.yaml: data_module.args.augment: needs loader: memory '),
    ('augment typo', [*DIGITS, '+data_module.args.augment={crop_pad: 2}'],
     r"^error: configs/digits.yaml: data_module.args.augment.crop_pad: unknown key; did you "
     r"mean 'crop_padding'\? \(known: crop_padding, flip\)$"),
    ('per-sample augmentation in memory', [*DIGITS, '+data_module.args.transforms.train=[{name: '
                                           'RandomCrop, args: {size: 8, padding: 1}}]'],
     r'^error: configs/digits.yaml: data_module.args.transforms.train: runs per sample, but '
     r'loader: memory transforms each image once'),
    ('compile not a flag', [*DIGITS, '+train_wrapper.args.model_spec.compile=fast'],
     r'^error: configs/digits.yaml: train_wrapper.args.model_spec.compile: must be true, false '
     r"or a mapping of torch.compile arguments, but got 'fast'$"),
    ('explain typo', [*DIGITS, '--explain', 'trainer_params.max_epoch'],
     r"^error: configs/digits.yaml: --explain trainer_params.max_epoch: no such key in the "
     r"config; did you mean 'trainer_params.max_epochs'"),
]


@pytest.fixture
def workspace(tmp_path):
    """Broken configs in tmp/, and a save/ with runs in it that no mistake may touch."""
    tmp, save = tmp_path / 'tmp', tmp_path / 'save'
    tmp.mkdir()
    (tmp / 'syntax.yaml').write_text('data_module:\n  name: digits\n   args: [\n')
    (tmp / 'child.yaml').write_text('_base_: missing.yaml\nseed: 1\n')
    (tmp / 'a.yaml').write_text('_base_: b.yaml\n')
    (tmp / 'b.yaml').write_text('_base_: a.yaml\n')
    (tmp / 'nodata.yaml').write_text('train_wrapper: {name: base}\n')
    for run in ('old', 'nockpt', 'bad'):
        (save / run).mkdir(parents=True)
        (save / run / 'config.yaml').write_text((ROOT / 'configs/digits.yaml').read_text())
        (save / run / 'log.txt').write_text('started\n')
    (save / 'old' / 'ckpt').mkdir()
    torch.save({'state_dict': {}, 'epoch': 0}, save / 'old' / 'ckpt' / 'last.ckpt')
    (save / 'bad' / 'ckpt').mkdir()
    (save / 'bad' / 'ckpt' / 'last.ckpt').write_text('not a checkpoint')
    return tmp, save


def fill(text, tmp, save, escape):
    for key, value in (('{tmp}', str(tmp)), ('{save}', str(save))):
        text = text.replace(key, re.escape(value) if escape else value)
    return text


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('case, argv, message', CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_line_exit_2_and_save_untouched(script, case, argv, message, workspace,
                                                       capsys):
    if case == 'gpu missing' and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    tmp, save = workspace
    before = tree(save)
    argv = [fill(a, tmp, save, escape=False) for a in argv] + ['--save-dir', str(save)]
    with pytest.raises(SystemExit) as info:
        utils.run_cli(ENTRYPOINTS[script], argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(fill(message, tmp, save, escape=True), err), err
    assert tree(save) == before


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_real_command_line_prints_one_line_without_traceback(script, tmp_path):
    result = run_command(script, *DIGITS, 'train_wrapper.args.model_spec.name=mlpp',
                         '--save-dir', str(tmp_path / 'save'))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: configs/digits.yaml: train_wrapper.args.model_spec.name: unknown models name "
        f"'mlpp'; did you mean 'mlp'? (known: {', '.join(models.list())})"]
    assert not (tmp_path / 'save').exists()
    with_debug = run_command(script, *DIGITS, 'train_wrapper.args.model_spec.name=mlpp',
                             '--debug', '--save-dir', str(tmp_path / 'save'))
    assert 'Traceback' in with_debug.stderr
