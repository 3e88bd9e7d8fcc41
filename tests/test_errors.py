"""Every mistake a user can make in a config or on the command line: one line on stderr naming
the file and key, exit status 2, no traceback, and save/ exactly as it was. Add a row whenever
a new mistake is found."""
import re
import shutil

import pytest
import torch

from conftest import ENTRYPOINTS, ROOT, run_command, tree
import models
import utils

DIGITS = ['--config', 'configs/digits.yaml']
MNIST = ['--config', 'configs/mnist-classification.yaml']


def o(override):
    """The blame of a value set on the command line, as a regex."""
    return re.escape(f"override '{override}'")


SCHED = 'train_wrapper.args.sched_spec={name: MultiStepLR, args: {milestones: 5}}'
ES = '+callbacks=[{name: early_stopping, args: {monitor: val/ac, mode: max}}]'
NO_BATCHES = 'data_module.args.batch_size=5000'

# (id, argv, message regex: one per line, in order); {tmp} is a folder of broken configs, {save}
# the --save-dir, which holds a finished-looking run `old`, a run `nockpt` without checkpoints and
# a run `bad` whose last.ckpt is not a checkpoint. A value is blamed on what set it: the override,
# or the file and line.
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
    ('duplicate key', ['--config', '{tmp}/dup.yaml'],
     r"^error: {tmp}/dup.yaml:4: duplicate key 'trainer_params.max_epochs' \(first on line 3\)"),
    ('section missing', ['--config', '{tmp}/nodata.yaml'],
     r'^error: {tmp}/nodata.yaml: data_module: required section is missing$'),
    ('unknown section', [*DIGITS, '+trainer_param.max_epochs=3'],
     '^error: ' + o('+trainer_param.max_epochs=3') + r": trainer_param: unknown section; did you "
     r"mean 'trainer_params'"),
    ('spec without name', [*DIGITS, '~train_wrapper.args.model_spec.name'],
     '^error: ' + o('~train_wrapper.args.model_spec.name') + r': train_wrapper.args.model_spec: '
     r'must be a models spec \{name: ..., args: \{...\}\}, but got \{'),
    ('args not a mapping', [*DIGITS, 'train_wrapper.args.model_spec.args=5'],
     '^error: ' + o('train_wrapper.args.model_spec.args=5') +
     r': must be a mapping, but got 5$'),
    ('unknown model', [*DIGITS, 'train_wrapper.args.model_spec.name=mlpp'],
     '^error: ' + o('train_wrapper.args.model_spec.name=mlpp') +
     r": unknown models name 'mlpp'; did you mean 'mlp'\? \(\d+ known\)$"),
    ('unknown argument', [*DIGITS, '+train_wrapper.args.model_spec.args.hiden=[8]'],
     '^error: ' + o('+train_wrapper.args.model_spec.args.hiden=[8]') +
     r": unknown argument 'hiden' for models 'mlp'; "
     r"did you mean 'hidden'\? \(accepted: dropout, hidden, in_dim, num_classes, out_dim\)$"),
    ('unknown argument, no near name', [*DIGITS, '+train_wrapper.args.model_spec.args.width=8'],
     '^error: ' + o('+train_wrapper.args.model_spec.args.width=8') +
     r": unknown argument 'width' for models 'mlp' "
     r"\(accepted: dropout, hidden, in_dim, num_classes, out_dim\)$"),
    ('not a number', [*DIGITS, 'train_wrapper.args.optim_spec.args.lr=fast'],
     '^error: ' + o('train_wrapper.args.optim_spec.args.lr=fast') +
     r": must be a number, but got 'fast'$"),
    ('unknown optimizer', [*DIGITS, 'train_wrapper.args.optim_spec.name=Adamm'],
     '^error: ' + o('train_wrapper.args.optim_spec.name=Adamm') +
     r": unknown torch.optim optimizers name 'Adamm'; did "
     r"you mean 'Adam'"),
    ('unknown scheduler', [*DIGITS, 'train_wrapper.args.sched_spec.name=CosineLR'],
     '^error: ' + o('train_wrapper.args.sched_spec.name=CosineLR') +
     r": unknown torch.optim.lr_scheduler schedulers name "
     r"'CosineLR'; did you mean 'CosineAnnealingLR'"),
    ('override without =', [*DIGITS, 'trainer_params.max_epochs'],
     r"^error: configs/digits.yaml: override 'trainer_params.max_epochs' must look like "
     r'KEY=VALUE, \+KEY=VALUE or ~KEY$'),
    ('override typo', [*DIGITS, 'trainer_params.max_epoch=3'],
     r"^error: configs/digits.yaml: override 'trainer_params.max_epoch=3': no key 'max_epoch' "
     r"under 'trainer_params'; did you mean 'max_epochs'\? \(use \+KEY=VALUE to add a new key\)$"),
    ('trainer typo with +', [*DIGITS, '+trainer_params.max_epoch=3'],
     '^error: ' + o('+trainer_params.max_epoch=3') + r": unknown "
     r"pl.Trainer argument; did you mean 'max_epochs'"),
    ('interpolation', [*DIGITS, 'train_wrapper.args.sched_spec.args.T_max=${trainer.epochs}'],
     '^error: ' + o('train_wrapper.args.sched_spec.args.T_max=${trainer.epochs}') +
     r": cannot resolve: Interpolation key "
     r"'trainer.epochs' not found$"),
    # values of the wrong type or out of range, checked against the annotations of what they go
    # to before anything is built; an interpolated value is blamed on what it refers to
    ('epochs not an integer', [*DIGITS, 'trainer_params.max_epochs=ten'],
     ['^error: ' + o('trainer_params.max_epochs=ten') + r": must be "
      r"an integer or null, but got 'ten'$",
      '^error: ' + o('trainer_params.max_epochs=ten') + r": train_wrapper.args.sched_spec.args."
      r"T_max: must be an integer, but got 'ten'$"]),
    ('epochs negative', [*DIGITS, 'trainer_params.max_epochs=-3'],
     ['^error: ' + o('trainer_params.max_epochs=-3') + r': must be at '
      r'least 1 \(or -1: no limit\), but got -3$']),
    ('epochs zero', [*DIGITS, 'trainer_params.max_epochs=0'],
     ['^error: ' + o('trainer_params.max_epochs=0') + r': must be at '
      r'least 1 \(or -1: no limit\), but got 0$']),
    ('log interval zero', [*DIGITS, '+trainer_params.log_every_n_steps=0'],
     '^error: ' + o('+trainer_params.log_every_n_steps=0') + r': must be at least 1, but got 0$'),
    ('limit fraction over 1', [*DIGITS, '+trainer_params.limit_train_batches=2.5'],
     '^error: ' + o('+trainer_params.limit_train_batches=2.5') +
     r': must be a count of at least 1 or a fraction in \(0, 1\], but got 2.5$'),
    ('model argument a string', [*DIGITS, "train_wrapper.args.model_spec.args.hidden='256'"],
     '^error: ' + o("train_wrapper.args.model_spec.args.hidden='256'") +
     r": must be a list, but got '256'$"),
    ('milestones not a list', [*DIGITS, SCHED],
     '^error: ' + o(SCHED) + r': train_wrapper.args.sched_spec.args.milestones: must be a list '
     r'of integers, but got 5$'),
    ('flag not a bool', [*DIGITS, '+train_wrapper.args.optim_spec.args.amsgrad=1'],
     '^error: ' + o('+train_wrapper.args.optim_spec.args.amsgrad=1') +
     r': must be true or false, but got 1$'),
    ('checkpoint mode typo', [*DIGITS, 'checkpoint.mode=maks'],
     '^error: ' + o('checkpoint.mode=maks') + r": must be 'min' or 'max', but "
     r"got 'maks'$"),
    ('type error in a file', ['--config', '{tmp}/badtype.yaml'],
     r"^error: {tmp}/badtype.yaml:3: trainer_params.max_epochs: must be an integer or null, "
     r"but got 'ten'$"),
    ('several mistakes at once', [*DIGITS, 'train_wrapper.args.optim_spec.args.lr=fast',
                                  '+trainer_params.log_every_n_steps=0', 'checkpoint.mode=maks'],
     ['^error: ' + o('+trainer_params.log_every_n_steps=0') + ': must be at least 1',
      '^error: ' + o('train_wrapper.args.optim_spec.args.lr=fast') + ': must be a number',
      '^error: ' + o('checkpoint.mode=maks') + ": must be 'min' or 'max'"]),
    # the model and the data, tried on two samples before anything is written
    ('model does not fit the data', [*DIGITS, 'train_wrapper.args.model_spec.args.in_dim=32'],
     '^error: ' + o('train_wrapper.args.model_spec.args.in_dim=32') +
     r': train_wrapper.args.model_spec: does not fit the data: mat1 and mat2 shapes cannot be '
     r'multiplied \(2x64 and 32x256\) \(a train batch of 2 is \(float32\[2, 1, 8, 8\], '
     r'int64\[2\]\)\)$'),
    ('no train batches', [*DIGITS, NO_BATCHES, '+data_module.args.dataloader.train.drop_last=true'],
     '^error: ' + o('+data_module.args.dataloader.train.drop_last=true') + r': data_module: the '
     r'train split gives no batches \(1259 samples, batch_size 5000, drop_last True\)$'),
    ('unknown transform', [*DIGITS, 'data_module.args.loader=dataloader',
                           '+data_module.args.transforms.train=[{name: RandomCrp}]'],
     '^error: ' + o('+data_module.args.transforms.train=[{name: RandomCrp}]') +
     r": data_module.args.transforms.train.0.name: unknown transforms name 'RandomCrp'; did you "
     r"mean 'RandomCrop'"),
    ('dataloader typo', [*DIGITS, '+data_module.args.dataloader.train.batchsize=8'],
     '^error: ' + o('+data_module.args.dataloader.train.batchsize=8') +
     r": unknown DataLoader setting; did you mean "
     r"'batch_size'"),
    ('gpu not integers', [*DIGITS, '--gpu', 'a,b'],
     r"^error: --gpu must be comma-separated integers like 0,1, but got 'a,b'$"),
    ('gpu missing', [*DIGITS, '--gpu', '0'], r'^error: --gpu 0: this machine has no CUDA GPU'),
    ('gpu twice', [*DIGITS, '--gpu', '1,1'], r'^error: --gpu 1,1: a GPU named twice$'),
    # T_max: ${trainer_params.max_epochs}: its name is wrong for the new scheduler, so the line
    # that writes T_max is blamed, not the override of the value it points to
    ('key named where it is written', [*DIGITS, 'train_wrapper.args.sched_spec.name='
                                       'ReduceLROnPlateau', 'trainer_params.max_epochs=3'],
     r"^error: configs/digits.yaml:26: train_wrapper.args.sched_spec.args.T_max: unknown "
     r"argument 'T_max'"),
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
    ('name empty', [*DIGITS, '--name', ''],
     r"^error: --name must be a plain folder name, but got ''$"),
    ('name exists', [*DIGITS, '--name', 'old'],
     r'^error: run folder {save}/old already exists; continue it with --resume {save}/old, '
     r'or pick another --name$'),
    ('root_dir missing', [*MNIST, 'data_module.args.root_dir={tmp}/nowhere'],
     '^error: ' + re.escape("override 'data_module.args.root_dir=") + "{tmp}/nowhere'" +
     r': MNIST files not found in {tmp}/nowhere/MNIST/raw'),
    ('loader typo', [*DIGITS, 'data_module.args.loader=gpu'],
     '^error: ' + o('data_module.args.loader=gpu') + r": must be "
     r"'dataloader' or 'memory', but got 'gpu'$"),
    ('augment without memory', [*DIGITS, 'data_module.args.loader=dataloader',
                                '+data_module.args.augment={flip: true}'],
     '^error: ' + o('+data_module.args.augment={flip: true}') +
     r': needs loader: memory '),
    ('augment typo', [*DIGITS, '+data_module.args.augment={crop_pad: 2}'],
     '^error: ' + o('+data_module.args.augment={crop_pad: 2}') +
     r": data_module.args.augment.crop_pad: unknown key; did you mean 'crop_padding'\? \(known: "
     r"crop_padding, flip\)$"),
    ('per-sample augmentation in memory', [*DIGITS, '+data_module.args.transforms.train=[{name: '
                                           'RandomCrop, args: {size: 8, padding: 1}}]'],
     '^error: ' + o('+data_module.args.transforms.train=[{name: RandomCrop, args: {size: 8, '
                    'padding: 1}}]') +
     r': runs per sample, but loader: memory transforms each image once'),
    ('compile not a flag', [*DIGITS, '+train_wrapper.args.model_spec.compile=fast'],
     '^error: ' + o('+train_wrapper.args.model_spec.compile=fast') +
     r': must be true, false or a mapping of torch.compile '
     r"arguments, but got 'fast'$"),
    ('negative model size', [*DIGITS, 'train_wrapper.args.model_spec.args.num_classes=-3'],
     '^error: ' + o('train_wrapper.args.model_spec.args.num_classes=-3') +
     r": train_wrapper.args.model_spec.args: models 'mlp' cannot be built from its arguments: "
     r'RuntimeError: Trying to create tensor with negative dimension -3: \[-3, 256\]$'),
    ('metric argument through kwargs', [
        *DIGITS, '+train_wrapper.args.metrics=[{name: Accuracy, args: {num_clases: 10}}]'],
     r"^error: override .*: train_wrapper.args.metrics.0.args: torchmetrics metrics 'Accuracy' "
     r"cannot be built from its arguments: TypeError: .*'task'"),
    ('scheduler frequency 0', [*DIGITS, '+train_wrapper.args.sched_spec.frequency=0'],
     '^error: ' + o('+train_wrapper.args.sched_spec.frequency=0') +
     r': must be an integer >= 1 \(every how many epochs\), but got 0$'),
    ('seed out of range', [*DIGITS, '--seed', '5000000000'],
     r'^error: --seed: seed: must be from 0 to 2\*\*32 - 1, but got 5000000000$'),
    ('name too long', [*DIGITS, '--name', 'x' * 300],
     r'^error: --name is 300 bytes long; keep it under 200$'),
    ('name with a newline', [*DIGITS, '--name', 'a\nb'],
     r"^error: --name must be a plain folder name, but got 'a\\nb'"),
    ('override value not YAML', [*DIGITS, 'train_wrapper.args.model_spec.args.hidden=[128,'],
     r"^error: configs/digits.yaml: override 'train_wrapper.args.model_spec.args.hidden=\[128,': "
     r"value is not valid YAML: expected the node content, but found '<stream end>'$"),
    ('config not text', ['--config', '{tmp}/binary.yaml'],
     r'^error: {tmp}/binary.yaml: not a text file \(byte 0 is not UTF-8\)$'),
    ('a fraction of no train batch', [*DIGITS, '+trainer_params.limit_train_batches=0.01'],
     '^error: ' + o('+trainer_params.limit_train_batches=0.01') + r': 0.01 of the 20 train '
     r'batches an epoch is none: give a larger fraction, or a count$'),
    ('resume of an empty checkpoint', ['--resume', '{save}/empty'],
     r'^error: --resume {save}/empty: {save}/empty/ckpt/last.ckpt is empty \(0 bytes\): not a '
     r'checkpoint$'),
    ('resume of a truncated checkpoint', ['--resume', '{save}/cut'],
     r'^error: --resume {save}/cut: cannot load {save}/cut/ckpt/last.ckpt \(not a file '
     r'torch.save wrote: truncated, or another kind of file\)$'),
    ('resume of a broken config.yaml', ['--resume', '{save}/badyaml'],
     r'^error: {save}/badyaml/config.yaml:2: invalid YAML: '),
    ('explain typo', [*DIGITS, '--explain', 'trainer_params.max_epoch'],
     r"^error: configs/digits.yaml: --explain trainer_params.max_epoch: no such key in the "
     r"config; did you mean 'trainer_params.max_epochs'"),
]

# What --check finds by running one train and one val batch: a monitored name nothing logs.
CHECK_CASES = [
    ('checkpoint monitor typo', [*DIGITS, 'checkpoint.monitor=val/accc'],
     ['^error: ' + o('checkpoint.monitor=val/accc') + r": monitors "
      r"'val/accc', which this run does not log; did you mean 'val/acc'\? \(it logs: train/loss, "
      r"val/acc, val/loss\)$"]),
    ('early stopping monitor typo', [*DIGITS, ES],
     ['^error: ' + o(ES) + r": callbacks.0.args.monitor: monitors 'val/ac', which this run does "
      r"not log; did you mean 'val/acc'"]),
    ('plateau monitor typo', [*DIGITS, 'train_wrapper.args.sched_spec={name: ReduceLROnPlateau, '
                              'monitor: val/los}'],
     [r"^error: override .*: train_wrapper.args.sched_spec.monitor: monitors 'val/los', which "
      r"this run does not log; did you mean 'val/loss'"]),
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
    (tmp / 'dup.yaml').write_text(f'_base_: {ROOT}/configs/digits.yaml\ntrainer_params:\n'
                                  '  max_epochs: 3\n  max_epochs: 4\n')
    (tmp / 'badtype.yaml').write_text(
        f'_base_: {ROOT}/configs/digits.yaml\ntrainer_params:\n  max_epochs: ten\n'
        'train_wrapper:\n  args:\n    sched_spec: {_delete_: true, name: StepLR, '
        'args: {step_size: 2}}\n')
    (tmp / 'binary.yaml').write_bytes(b'\xff\xfe\x00bad')
    for run in ('old', 'nockpt', 'bad', 'badyaml', 'empty', 'cut'):
        (save / run).mkdir(parents=True)
        (save / run / 'config.yaml').write_text((ROOT / 'configs/digits.yaml').read_text())
        (save / run / 'log.txt').write_text('started\n')
    (save / 'old' / 'ckpt').mkdir()
    torch.save({'state_dict': {}, 'epoch': 0}, save / 'old' / 'ckpt' / 'last.ckpt')
    (save / 'bad' / 'ckpt').mkdir()
    (save / 'bad' / 'ckpt' / 'last.ckpt').write_text('not a checkpoint')
    (save / 'badyaml' / 'ckpt').mkdir()  # a run whose config.yaml was edited by hand, wrongly
    shutil.copy(save / 'old' / 'ckpt' / 'last.ckpt', save / 'badyaml' / 'ckpt' / 'last.ckpt')
    (save / 'badyaml' / 'config.yaml').write_text('data_module: [\n')
    for run, data in (('empty', b''), ('cut', (save / 'old' / 'ckpt' / 'last.ckpt').read_bytes()[:300])):
        (save / run / 'ckpt').mkdir()
        (save / run / 'ckpt' / 'last.ckpt').write_bytes(data)
    return tmp, save


def fill(text, tmp, save, escape):
    for key, value in (('{tmp}', str(tmp)), ('{save}', str(save))):
        text = text.replace(key, re.escape(value) if escape else value)
    return text


def assert_mistake(script, argv, messages, workspace, capsys):
    """Exit status 2, the expected lines and no other (each under 300 characters, besides the
    test's long temporary paths), and save/ byte-identical."""
    tmp, save = workspace
    before = tree(save)
    argv = [fill(a, tmp, save, escape=False) for a in argv] + ['--save-dir', str(save)]
    with pytest.raises(SystemExit) as info:
        utils.run_cli(ENTRYPOINTS[script], argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    messages = [messages] if isinstance(messages, str) else messages
    assert len(err) == len(messages), err
    for got, message in zip(err, messages):
        assert re.search(fill(message, tmp, save, escape=True), got), got
        assert len(got.replace(str(tmp), 'tmp').replace(str(save), 'save')) < 300, got
    assert tree(save) == before


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('case, argv, message', CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_line_exit_2_and_save_untouched(script, case, argv, message, workspace,
                                                       capsys):
    if case == 'gpu missing' and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    assert_mistake(script, argv, message, workspace, capsys)


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('case, argv, message', CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check_finds_what_one_batch_shows(script, case, argv, message, workspace, capsys):
    assert_mistake(script, [*argv, '--check'], message, workspace, capsys)


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_real_command_line_prints_one_line_without_traceback(script, tmp_path):
    result = run_command(script, *DIGITS, 'train_wrapper.args.model_spec.name=mlpp',
                         '--save-dir', str(tmp_path / 'save'))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: override 'train_wrapper.args.model_spec.name=mlpp': unknown models name 'mlpp'; "
        "did you mean 'mlp'? ("), lines
    assert not (tmp_path / 'save').exists()
    with_debug = run_command(script, *DIGITS, 'train_wrapper.args.model_spec.name=mlpp',
                             '--debug', '--save-dir', str(tmp_path / 'save'))
    assert 'Traceback' in with_debug.stderr


IMPORTED = ('import sys, importlib, utils\n'
            'main = importlib.import_module(sys.argv[1]).main\n'
            'try:\n'
            '    utils.run_cli(main, sys.argv[2:])\n'
            'except SystemExit as e:\n'
            '    print(e.code, *(name in sys.modules\n'
            '                    for name in ("torchmetrics", "pytorch_lightning",'
            '                                 "torchvision.datasets", "torch._dynamo")))\n')


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_config_mistakes_are_found_before_the_slow_imports(script):
    """Both engines check trainer_params, the data, the train_wrapper's name and arguments, its
    optimizer and the other sections before the task is built (its metrics import torchmetrics,
    seconds of start-up) and before Lightning is imported: such a mistake is reported in about
    the time of importing torch: neither torchvision (its placeholder may be in sys.modules,
    utils/deferred.py; the real one imports torchvision.datasets) nor torch._dynamo (which
    torchvision and the first optimizer import) is imported either. The task's own mistakes
    come once it is built, still before Lightning."""
    at_once = ['+trainer_params.max_epoch=3', '+train_wrapper.args.num_clases=3',
               'train_wrapper.args.optim_spec.args.lr=fast', 'checkpoint.mode=maks',
               'data_module.args.batch_size=0', '+loggers=[{name: tensorbord}]']
    for mistakes in (at_once, ['train_wrapper.name=bsae']):
        result = run_command('-c', IMPORTED, script[:-3], *DIGITS, *mistakes)
        assert result.stdout.split() == ['2'] + ['False'] * 4, (mistakes, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == len(mistakes) and all(line.startswith('error: ') for line in lines)
        assert all(any(m in line for line in lines) for m in mistakes), lines
    for mistake in ('train_wrapper.args.model_spec.args.in_dim=3',):
        result = run_command('-c', IMPORTED, script[:-3], *DIGITS, mistake)
        assert result.stdout.split()[:3:2] == ['2', 'False'], (mistake, result.stderr)


FREEZE_AT_EXIT = ('import atexit, gc, sys, importlib, utils\n'
                  'atexit.register(lambda: print("at exit, frozen:", gc.get_freeze_count() > 0))\n'
                  'main = importlib.import_module(sys.argv[1]).main\n'
                  'sys.argv = sys.argv[1:]\n'
                  'utils.run_entrypoint(main)\n')


@pytest.mark.parametrize('script, mistake', [
    ('train.py', ['--config', 'no-such.yaml']), ('train_pl.py', ['--config', 'no-such.yaml']),
    ('test.py', ['--run', 'no-such']), ('plot.py', ['no-such']), ('export.py', ['--run', 'no-such'])])
def test_an_entrypoint_exits_without_the_last_garbage_collections(script, mistake):
    """An entrypoint run from the command line leaves its objects to the process's end, not to
    the interpreter's collections at exit (seconds with torch and Lightning imported): its
    exit status and last line are kept, and atexit handlers still run."""
    assert 'utils.run_entrypoint(main)' in (ROOT / script).read_text()
    result = run_command('-c', FREEZE_AT_EXIT, script[:-3], *mistake)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith('error: ') and 'no-such' in result.stderr
    assert result.stdout.strip() == 'at exit, frozen: True'


@pytest.mark.parametrize('override, message', [
    ('+trainer_params.val_check_interval=0',
     r': must be a count of at least 1 or a fraction in \(0, 1\], but got 0$'),
    ('+trainer_params.val_check_interval=1000',  # Lightning would find out in fit
     r'trainer_params.val_check_interval: validates every 1000 train batches, but an epoch '
     r'has 20$'),
    ('+trainer_params.callbacks=[]', r': set by train_pl.py; use the callbacks: section$'),
    ('+trainer_params.default_root_dir=elsewhere', r': set by train_pl.py; use --save-dir and '
                                                   r'--name$'),
    ('+trainer_params.devices=abc', r"^error: override '\+trainer_params.devices=abc': `devices` "
                                    r'selected with `CPUAccelerator` should be an int > 0'),
    ('+trainer_params.accelerator=gpux',  # the key Lightning's message names, not the last set
     r"^error: override '\+trainer_params.accelerator=gpux': You selected an invalid "
     r'accelerator name'),
])
def test_a_trainer_params_mistake_that_lightning_finds_is_one_line(override, message,
                                                                     workspace, capsys):
    # a later override of trainer_params: the error names the key it is about all the same
    assert_mistake('train_pl.py', [*DIGITS, override, 'trainer_params.max_epochs=2'], [message],
                   workspace, capsys)


def test_train_pl_refuses_to_resume_a_train_py_run_in_one_line(train, capsys):
    run = train(*DIGITS, 'trainer_params.max_epochs=1', '+trainer_params.limit_train_batches=2',
                script='train.py')
    capsys.readouterr()
    before = tree(run)
    with pytest.raises(SystemExit) as info:
        train('--resume', str(run), script='train_pl.py')
    assert info.value.code == 2
    assert capsys.readouterr().err == f'error: --resume {run}/ckpt/last.ckpt: not a train_pl.py ' \
        'checkpoint (train.py wrote it: continue it with train.py)\n'
    assert tree(run) == before
