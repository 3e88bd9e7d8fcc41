"""Nothing in a run folder is damaged by a command that fails or by a mistaken output path,
and no code runs from data. Each damage case is a real process of an entrypoint; the run
folders are compared byte for byte before and after."""
import errno
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import train
import utils
from conftest import ROOT, SHRINK, run_command, tree

DIGITS = ['--config', 'configs/digits.yaml', *SHRINK]
SCRIPTS = ['train.py', 'train_pl.py']


def one_line_error(result, status=2):
    """The promise for a user's mistake: exit status 2, one line on stderr, no traceback."""
    assert result.returncode == status, result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, result.stderr
    return errors[0]


def trained(save, name, script='train_pl.py', *extra):
    result = run_command(script, *DIGITS, *extra, '--name', name, '--save-dir', str(save))
    assert result.returncode == 0, result.stderr
    return save / name


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """A run of each engine (digits, its best checkpoint hard-linked to last.ckpt at the last
    epoch), and a run of a narrower model: another model's checkpoint."""
    save = tmp_path_factory.mktemp('runs')
    made = {script: trained(save, script, script) for script in SCRIPTS}
    made['narrow'] = trained(save, 'narrow', 'train.py',
                             'train_wrapper.args.model_spec.args.hidden=[16]')
    return made


@pytest.fixture
def run(runs, tmp_path):
    """A fresh copy of one of `runs` (hard links kept), to damage."""
    def copy(name):
        (tmp_path / 'save').mkdir(exist_ok=True)
        subprocess.run(['cp', '-a', str(runs[name]), str(tmp_path / 'save')], check=True)
        return tmp_path / 'save' / name
    return copy


class Payload:
    """Unpickling it creates `marker`: what code in a data file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def write_payload(path, marker, like=None):
    """A checkpoint (a copy of `like`'s, or a bare one) with a Payload inside."""
    state = torch.load(like, weights_only=True) if like else {'state_dict': {}}
    torch.save({**state, 'extra': Payload(marker)}, path)


def test_a_payload_really_runs_when_unpickled(tmp_path):
    # the premise of the tests below: loading it without weights_only makes the marker
    write_payload(tmp_path / 'p.ckpt', tmp_path / 'marker')
    torch.load(tmp_path / 'p.ckpt', weights_only=False)
    assert (tmp_path / 'marker').exists()


# ---- outputs never land on a run folder's files --------------------------------------------

def test_predict_out_on_a_checkpoint_is_refused_and_the_run_is_untouched(run, tmp_path):
    folder = run('train_pl.py')
    last = folder / 'ckpt' / 'last.ckpt'
    best = next(p for p in (folder / 'ckpt').iterdir() if p.name != 'last.ckpt')
    assert os.path.samefile(last, best)  # one file, two names: writing through one loses both
    inputs = tmp_path / 'x.pt'
    torch.save(torch.rand(3, 1, 8, 8), inputs)
    before = tree(folder)
    for target in (last, folder / 'config.yaml', folder / 'log.txt'):
        result = run_command('test.py', '--run', str(folder), '--predict', str(inputs),
                             '--out', str(target))
        assert 'would overwrite' in one_line_error(result)
    assert tree(folder) == before
    torch.load(best, weights_only=True)  # still a checkpoint

    # its own output may be written again, by a new file: a hard link to it keeps the old one
    own = folder / 'eval' / 'predictions.csv'
    for _ in range(2):
        result = run_command('test.py', '--run', str(folder), '--predict', str(inputs))
        assert result.returncode == 0, result.stderr
    os.link(own, tmp_path / 'kept.csv')
    kept = own.read_bytes()
    torch.save(torch.rand(5, 1, 8, 8), inputs)
    assert run_command('test.py', '--run', str(folder), '--predict', str(inputs)).returncode == 0
    assert (tmp_path / 'kept.csv').read_bytes() == kept
    assert len(own.read_text().splitlines()) == 6  # header and 5 rows
    assert not list(folder.rglob('.*.tmp'))


def test_plot_out_on_another_file_of_a_run_folder_is_refused(run):
    folder = run('train.py')
    (folder / 'samples').mkdir()
    image = folder / 'samples' / 'epoch=001.png'
    image.write_bytes(b'a GAN sample')
    before = tree(folder)
    result = run_command('plot.py', str(folder), '--out', str(image))
    assert 'would overwrite samples/epoch=001.png' in one_line_error(result)
    assert tree(folder) == before
    for _ in range(2):  # its own curves.png may be drawn again
        assert run_command('plot.py', str(folder)).returncode == 0
    assert (folder / 'curves.png').read_bytes()[:4] == b'\x89PNG'


# ---- a failed resume writes nothing -------------------------------------------------------

@pytest.mark.parametrize('script', SCRIPTS)
def test_a_resume_with_another_models_config_or_checkpoint_leaves_the_folder_as_it_was(
        script, run, runs):
    folder = run(script)
    shutil.copy(runs['narrow'] / 'ckpt' / 'last.ckpt', folder / 'ckpt' / 'narrow.ckpt')
    before = tree(folder)
    other_config = run_command(script, '--resume', str(folder), '--config', 'configs/digits.yaml',
                               'train_wrapper.args.model_spec.args.hidden=[32]',
                               'trainer_params.max_epochs=3')
    line = one_line_error(other_config)
    assert 'do not fit the model' in line and '[32, 64]' in line and '[256, 64]' in line
    other_ckpt = run_command(script, '--resume', str(folder / 'ckpt' / 'narrow.ckpt'),
                             'trainer_params.max_epochs=3')
    assert 'do not fit the model' in one_line_error(other_ckpt)
    # the same model, another optimizer or lr scheduler: Lightning would load Adam's state
    # into SGD and fail at its first step, after the folder was written
    for override, message in (('train_wrapper.args.optim_spec.name=SGD',
                               "optimizer 0 state does not fit this config's SGD"),
                              ('train_wrapper.args.sched_spec={name: StepLR, args: '
                               '{step_size: 1}}',
                               "lr scheduler 0 state does not fit this config's StepLR")):
        other = run_command(script, '--resume', str(folder), '--config', 'configs/digits.yaml',
                            *SHRINK, 'trainer_params.max_epochs=3', override)
        assert message in one_line_error(other)
    assert tree(folder) == before


# ---- starting a run folder ----------------------------------------------------------------

@pytest.mark.slow
def test_two_runs_started_at_once_with_one_name(tmp_path):
    argv = [sys.executable, 'train.py', *DIGITS, '--name', 'same', '--save-dir', str(tmp_path)]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [subprocess.CompletedProcess(argv, p.wait(), *p.communicate()) for p in procs]
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr for r in results]
    loser = next(r for r in results if r.returncode == 2)
    assert 'already exists' in one_line_error(loser)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['same']  # no temporary left
    assert yaml.safe_load((tmp_path / 'same' / 'config.yaml').read_text())['seed'] == 0


def test_a_folder_made_between_the_check_and_the_start_is_refused(tmp_path):
    # what the loser of the race above meets, made certain: the folder appears after Run's
    # check, before create() renames the new folder into place
    args, run = utils.start('train.py', train.__doc__,
                            [*DIGITS, '--name', 'same', '--save-dir', str(tmp_path)])
    (tmp_path / 'same').mkdir()
    (tmp_path / 'same' / 'log.txt').write_text('the winner\n')
    with pytest.raises(utils.ConfigError, match=r'run folder .*same already exists'):
        run.create()
    assert tree(tmp_path) == {'same/log.txt': b'the winner\n'}


def test_a_full_disk_during_the_snapshot_leaves_no_folder_and_resume_auto_starts_afresh(
        tmp_path, monkeypatch, capsys):
    copied = []

    def copy2(src, dst, **kwargs):  # the disk fills after a few files of src/
        if len(copied) == 5:
            raise OSError(errno.ENOSPC, 'No space left on device', str(dst))
        copied.append(dst)
        return shutil.copyfile(src, dst)
    monkeypatch.setattr(utils.run.shutil, 'copy2', copy2)
    argv = [*DIGITS, '--name', 'full', '--save-dir', str(tmp_path / 'save'), '--resume', 'auto']
    with pytest.raises(SystemExit) as stopped:
        utils.run_cli(train.main, argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'the disk is full' in err, err
    assert tree(tmp_path / 'save') == {}  # no half a folder, no temporary
    monkeypatch.undo()
    utils.run_cli(train.main, argv)  # the requeued job: a new run, whole
    folder = tmp_path / 'save' / 'full'
    assert (folder / 'config.yaml').is_file() and (folder / 'src' / 'train.py').is_file()
    assert 'started' in (folder / 'log.txt').read_text().splitlines()[0]


def no_space(*args):  # what fsync says when the file system finds the disk full
    raise OSError(errno.ENOSPC, 'No space left on device')


@pytest.mark.parametrize('epochs', [1, 2])
def test_a_full_disk_while_saving_a_checkpoint_is_one_line(epochs, tmp_path, monkeypatch,
                                                           capsys):
    """The write fails on the writer's thread; the run stops with its one line at the next
    save (2 epochs) or at the end (1)."""
    monkeypatch.setattr(utils.run.os, 'fsync', no_space)
    with pytest.raises(SystemExit) as stopped:
        utils.run_cli(train.main, [*DIGITS, f'trainer_params.max_epochs={epochs}',
                                   '--name', 'full', '--save-dir', str(tmp_path)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r'error: cannot write \S+/full/ckpt/\S+\.ckpt: the disk is full '
                        r'\(No space left on device\)\n', err), err
    assert not list(tmp_path.rglob('*.ckpt')) and not list(tmp_path.rglob('.*.tmp'))


def test_a_checkpoint_is_the_state_at_its_save_and_whole_when_read(tmp_path):
    """utils.atomic_save returns once the bytes are made, before they are on disk: training
    may change the tensors at once; a hard link to the file and a read of it come after the
    write, as if it had been done before atomic_save returned."""
    state = {'w': torch.arange(2 ** 22, dtype=torch.float32)}
    utils.atomic_save(state, tmp_path / 'epoch=0.ckpt')
    utils.atomic_link(tmp_path / 'epoch=0.ckpt', tmp_path / 'last.ckpt')
    state['w'] += 1  # the next step
    loaded = utils.load_checkpoint(tmp_path / 'last.ckpt')['state_dict']
    assert torch.equal(loaded['w'], torch.arange(2 ** 22, dtype=torch.float32))
    assert (tmp_path / 'last.ckpt').stat().st_ino == (tmp_path / 'epoch=0.ckpt').stat().st_ino


def test_a_failed_background_write_is_raised_once_and_later_files_are_not_touched(
        tmp_path, monkeypatch):
    monkeypatch.setattr(utils.run.os, 'fsync', no_space)
    utils.atomic_save({'w': torch.zeros(3)}, tmp_path / 'epoch=0.ckpt')  # returns at once
    with pytest.raises(utils.ConfigError, match=r'cannot write .*epoch=0\.ckpt: the disk is '):
        # raised by whichever comes after the failure
        utils.atomic_link(tmp_path / 'epoch=0.ckpt', tmp_path / 'last.ckpt')
        utils.atomic_save({'w': torch.ones(3)}, tmp_path / 'epoch=1.ckpt')
    utils.wait_for_writes()  # raised already: not again
    assert list(tmp_path.iterdir()) == []  # no file, no temporary, no link to a missing one
    monkeypatch.undo()
    utils.atomic_save({'w': torch.ones(3)}, tmp_path / 'epoch=1.ckpt')  # the disk has room
    assert utils.load_checkpoint(tmp_path / 'epoch=1.ckpt')['state_dict']['w'].sum() == 3


def test_a_checkpoint_saved_just_before_the_process_exits_is_whole(tmp_path):
    """The writer's thread is not a daemon: sys.exit right after a save waits for it."""
    code = ('import sys, torch, utils\n'
            "utils.atomic_save({'w': torch.full((16, 2**20), 7.0)}, sys.argv[1])\n"
            'sys.exit(0)\n')
    subprocess.run([sys.executable, '-c', code, str(tmp_path / 'last.ckpt')], cwd=ROOT,
                   check=True)
    assert torch.load(tmp_path / 'last.ckpt', weights_only=True)['w'].eq(7).all()


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_save_dir_that_is_a_file_or_a_dangling_symlink_run_folder(script, tmp_path):
    file = tmp_path / 'notes.txt'
    file.write_text('mine\n')
    result = run_command(script, *DIGITS, '--name', 'run', '--save-dir', str(file))
    assert 'is a file, not a folder' in one_line_error(result)
    assert file.read_text() == 'mine\n'

    save = tmp_path / 'save'
    save.mkdir()
    (save / 'run').symlink_to(tmp_path / 'unmounted' / 'run')
    result = run_command(script, *DIGITS, '--name', 'run', '--save-dir', str(save))
    assert 'is a symlink to' in one_line_error(result)
    assert [p.name for p in save.iterdir()] == ['run'] and (save / 'run').is_symlink()
    assert not (tmp_path / 'unmounted').exists()


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes in read-only folders')
def test_a_read_only_save_dir_is_one_line(tmp_path):
    save = tmp_path / 'save'
    save.mkdir()
    save.chmod(0o555)
    try:
        result = run_command('train.py', *DIGITS, '--name', 'run', '--save-dir', str(save))
        assert 'read-only folder or no permission' in one_line_error(result)
        assert not list(save.iterdir())
    finally:
        save.chmod(0o755)


@pytest.mark.parametrize('script', SCRIPTS)
def test_sigint_during_check_is_one_line(script):
    # the loss sends SIGINT to its own process in --check's one train step
    result = run_command(script, *DIGITS, '--check',
                         'train_wrapper.args.loss_spec.name=tests.faults.FaultyLoss',
                         '+train_wrapper.args.loss_spec.args={at: 1, fault: SIGINT}')
    assert 'interrupted (SIGINT) during --check' in one_line_error(result, 128 + signal.SIGINT)


def test_a_newline_in_an_override_stays_inside_the_command_comment(tmp_path):
    override = 'train_wrapper.args.model_spec.name=mlp\n# not a comment of config.yaml'
    utils.run_cli(train.main, [*DIGITS, override, '--name', 'nl', '--save-dir', str(tmp_path)])
    lines = (tmp_path / 'nl' / 'config.yaml').read_text().splitlines()
    comments = [line for line in lines if line.startswith('#')]
    assert len(comments) == 1 and lines[0] == comments[0]
    assert "$'train_wrapper.args.model_spec.name=mlp\\n# not a comment of config.yaml'" in lines[0]
    # bash reads the comment back as the same words
    words = subprocess.run(['bash', '-c', 'printf "%s\\0" ' + lines[0].split(': ', 1)[1]],
                           capture_output=True, text=True).stdout.split('\0')
    assert override in words
    log = (tmp_path / 'nl' / 'log.txt').read_text().splitlines()
    assert log[0].startswith('started') and "comment of config.yaml' --name nl" in log[0]


@pytest.mark.slow
@pytest.mark.parametrize('script', SCRIPTS)
def test_a_kill_mid_write_leaves_no_temporary_after_the_next_start(script, tmp_path):
    # a checkpoint every 2 steps; from batch 3 on, the next checkpoint write (step 4) is killed
    # between its temporary file and the rename
    killed = run_command(script, *DIGITS, '+checkpoint.every_n_train_steps=2', '+test=false',
                         'train_wrapper.args.loss_spec.name=tests.faults.FaultyLoss',
                         '+train_wrapper.args.loss_spec.args={at: 3, fault: SIGKILL_IN_SAVE}',
                         '--name', 'run', '--save-dir', str(tmp_path))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = tmp_path / 'run'
    assert len(list(folder.glob('ckpt/.*.ckpt.tmp'))) == 1  # what the kill left
    # the next start stops at its first batch (a NaN loss), before it could write that
    # checkpoint again: the temporary is gone all the same
    stopped = run_command(script, '--resume', str(folder),
                          '+train_wrapper.args.loss_spec.args={at: 1, fault: nan}')
    assert stopped.returncode == 1, stopped.stderr
    assert not list(folder.rglob('.*.tmp'))
    resumed = run_command(script, '--resume', str(folder),
                          'train_wrapper.args.loss_spec.name=cross_entropy',
                          '~train_wrapper.args.loss_spec.args')
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(folder / 'ckpt' / 'last.ckpt', weights_only=True)['global_step'] == 8


def test_a_symlink_out_of_the_project_is_not_copied_into_src(tmp_path, monkeypatch):
    project = tmp_path / 'project'
    project.mkdir()
    (project / 'train.py').write_text('print(1)\n')
    (tmp_path / 'secret.txt').write_text('not code\n')
    (project / 'data.txt').symlink_to(tmp_path / 'secret.txt')
    (project / 'alias.py').symlink_to('train.py')  # inside: its code is copied
    subprocess.run(['git', 'init', '-q', str(project)], check=True)
    monkeypatch.setattr(utils.run, 'ROOT', project)
    utils.snapshot_code(tmp_path / 'src')
    copied = {p.name for p in (tmp_path / 'src').iterdir()}
    assert {'train.py', 'alias.py'} <= copied and 'data.txt' not in copied


# ---- no code runs from data ---------------------------------------------------------------

def test_a_payload_checkpoint_never_runs_in_test_py(run, tmp_path):
    folder = run('train_pl.py')
    marker = tmp_path / 'marker'
    best = next(p for p in (folder / 'ckpt').iterdir() if p.name != 'last.ckpt')
    best.unlink()  # the recorded best path: a file of its own, holding the payload
    write_payload(best, marker, like=folder / 'ckpt' / 'last.ckpt')
    assert 'weights_only' in one_line_error(run_command('test.py', '--run', str(folder)))
    write_payload(folder / 'ckpt' / 'last.ckpt', marker, like=folder / 'ckpt' / 'last.ckpt')
    for ckpt in ('last', 'best'):
        result = run_command('test.py', '--run', str(folder), '--ckpt', ckpt)
        assert 'weights_only' in one_line_error(result)
    assert not marker.exists()


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_payload_checkpoint_never_runs_on_resume(script, run, tmp_path):
    folder = run(script)
    marker = tmp_path / 'marker'
    last = folder / 'ckpt' / 'last.ckpt'
    os.unlink(last)
    write_payload(last, marker, like=next((folder / 'ckpt').iterdir()))
    before = tree(folder)
    for target in (str(folder), str(last)):
        result = run_command(script, '--resume', target, 'trainer_params.max_epochs=3')
        assert 'weights_only' in one_line_error(result)
    assert not marker.exists()
    assert tree(folder) == before


def test_lightnings_own_loading_refuses_a_payload(tmp_path):
    # trainer.fit/test(ckpt_path=...) load through the CheckpointIO plugin train_pl.py gives
    from callbacks.checkpoints import AtomicCheckpointIO
    write_payload(tmp_path / 'p.ckpt', tmp_path / 'marker')
    with pytest.raises(Exception, match='Weights only load failed'):
        AtomicCheckpointIO().load_checkpoint(tmp_path / 'p.ckpt', weights_only=False)
    assert not (tmp_path / 'marker').exists()


@pytest.mark.slow
def test_a_payload_in_a_sweeps_ray_state_never_runs_on_resume(tmp_path):
    lr = 'train_wrapper.args.optim_spec.args.lr'
    sweep = ['tune.py', '--config', 'configs/search/digits-lr.yaml', 'search.search_alg=random',
             'search.num_samples=1', f'search.space={{{lr}: {{grid: [0.02, 0.01]}}}}',
             'search.scheduler={name: fifo}', 'trainer_params.max_epochs=1',
             '+trainer_params.limit_train_batches=2', '+trainer_params.limit_val_batches=1',
             '+trainer_params.limit_test_batches=1', '--max-concurrent', '1']
    first = run_command(*sweep, '--name', 'sweep', '--save-dir', str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    folder = tmp_path / 'sweep'
    trials = sorted(p for p in folder.glob('trial-*') if p.is_dir())
    assert [p.name for p in trials] == ['trial-000-000', 'trial-000-001']
    assert json.loads((folder / 'finished.json').read_text()) == [p.name for p in trials]
    marker = tmp_path / 'marker'
    pickles = [*folder.glob('*.pkl'), *folder.glob('trial-*/*.pkl')]
    assert any(p.name == 'tuner.pkl' for p in pickles)
    for path in pickles:
        torch.save(Payload(marker), path)  # a pickle like any other
    checkpoints = {p: p.stat().st_mtime_ns for p in folder.glob('trial-*/ckpt/last.ckpt')}
    resumed = run_command('tune.py', '--resume', '--name', 'sweep', '--save-dir', str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not marker.exists()
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints  # not trained again
    with open(folder / 'results.csv') as f:
        assert f.read().count('done') == 2


def test_a_payload_in_a_cifar_batch_never_runs(cifar10_root, tmp_path):
    # torchvision unpickles CIFAR's batches, and runyard skips their md5 (copies of them are
    # fine): only arrays may come out of them
    import datasets
    marker = tmp_path / 'marker'
    batch = cifar10_root / 'cifar-10-batches-py' / 'data_batch_2'
    batch.write_bytes(pickle.dumps({'data': Payload(marker), 'labels': []}, protocol=2))
    data = datasets.make({'name': 'cifar10', 'args': {'root_dir': str(cifar10_root)}})
    with pytest.raises(utils.ConfigError, match=r'data_batch_2: holds a (builtins|io)\.open'):
        data.setup()
    assert not marker.exists()


def test_the_next_start_removes_the_folder_a_killed_start_left(tmp_path):
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not utils.run.process_alive(pid))
    save = tmp_path / 'save'
    abandoned = save / f'.run.tmp-{utils.run.HOST}-{dead}'
    elsewhere = save / f'.run.tmp-another_host-{dead}'  # maybe still in the making
    for folder in (abandoned, elsewhere):
        (folder / 'src').mkdir(parents=True)
    utils.run_cli(train.main, [*DIGITS, '--name', 'run', '--save-dir', str(save)])
    assert sorted(p.name for p in save.iterdir()) == [elsewhere.name, 'run']


def test_a_checkpoints_random_states_continue_every_generator_exactly(tmp_path):
    """Python's, NumPy's and torch's random states through a checkpoint file read without
    pickled code (weights_only), and Python's as checkpoints before kept it (a tuple)."""
    import random

    import numpy as np

    def draws():
        return random.random(), np.random.rand(), torch.rand(1).item()

    utils.seed_everything(3)
    draws()
    torch.save({'rng': utils.all_rng_states()}, tmp_path / 'state.ckpt')
    expected = draws()
    utils.seed_everything(0)
    state = torch.load(tmp_path / 'state.ckpt', weights_only=True)['rng'][0]
    utils.set_rng_state(state)
    assert draws() == expected
    random.seed(5)
    older = {**state, 'python': random.getstate()}
    expected = random.random()
    utils.set_rng_state(older)
    assert random.random() == expected


@pytest.mark.parametrize('kinds', [
    [(torch.float32, ())] * 3,
    [(torch.float32, ()), (torch.bfloat16, ()), (torch.float64, ())],  # a task's, under autocast
    [(torch.float32, ()), (torch.float32, (1,)), (torch.float32, ())]])  # a loss of shape [1]
def test_loss_checks_name_the_first_bad_step_of_those_noted(kinds):
    """nan_policy stop: the losses noted between two reads are read at once; the message names
    the step of the first one that is not finite."""
    checks = utils.LossChecks('stop')
    for step, (dtype, shape) in enumerate(kinds):
        assert checks.usable(torch.ones(shape, dtype=dtype), 1, step, step)
    checks.read()  # all finite
    for step, (dtype, shape) in enumerate(kinds):
        value = [1.0, float('nan'), float('inf')][step]
        checks.usable(torch.full(shape, value, dtype=dtype), 2, 10 + step, step)
    with pytest.raises(utils.TrainingStopped, match=r'the loss is nan at epoch 2, step 11;'):
        checks.read()
    checks.read()  # nothing noted since


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_resume_that_fails_before_its_first_save_keeps_the_runs_config(script, train,
                                                                          save_dir, capsys):
    """An override that only fails once the resumed run trains (a misspelt monitor, found
    at the first epoch's end) must not become the run's config.yaml: the next plain --resume
    would fail on it again, the run would be stuck."""
    run = train(*DIGITS, script=script)
    before = (run / 'config.yaml').read_bytes()
    with pytest.raises(SystemExit) as failed:
        train('--resume', str(run), 'trainer_params.max_epochs=3',
              'checkpoint.monitor=val/acc_typo', script=script)
    assert failed.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: checkpoint.monitor: 'val/acc_typo' is not a metric"), err
    assert (run / 'config.yaml').read_bytes() == before
    assert (run / 'log.txt').read_text().splitlines()[-1] == \
        'config.yaml restored: the resume failed before it saved a checkpoint'
    train('--resume', str(run), 'trainer_params.max_epochs=3', script=script)  # goes on
    assert re.search(r'^epoch 3/3 ', (run / 'log.txt').read_text(), flags=re.M)
    assert 'trainer_params.max_epochs=3' in (run / 'config.yaml').read_text()


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_resume_that_saved_a_checkpoint_keeps_its_new_config(script, train, save_dir):
    """The other side: once the resumed run has saved with the new config, an error after
    it leaves config.yaml the config of that checkpoint."""
    run = train(*DIGITS, script=script)
    with pytest.raises(SystemExit):  # a NaN at the 3rd step of the resumed run, after a save
        train('--resume', str(run), 'trainer_params.max_epochs=4',
              '+checkpoint.every_n_train_steps=1', 'train_wrapper.name=tests.tasks.NaNAt',
              '+train_wrapper.args.nan_at=3', script=script)
    assert 'every_n_train_steps: 1' in (run / 'config.yaml').read_text()
