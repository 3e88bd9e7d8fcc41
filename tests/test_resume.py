"""When a run dies: SIGKILL, SIGTERM, a kill while writing a checkpoint, a NaN loss. Each run
here is a real process; the resumed run must end bit for bit where the uninterrupted one did."""
import math
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, run_command, scalars

pytestmark = pytest.mark.slow

# digits with dropout and a random per-sample augmentation in the DataLoader (so the RNG
# matters), 6 batches an epoch, 3 epochs, a checkpoint every 2 steps
CONFIG = ['--config', 'configs/digits.yaml', 'trainer_params.max_epochs=3',
          '+trainer_params.limit_train_batches=6', '+trainer_params.limit_val_batches=2',
          '+trainer_params.enable_progress_bar=false', '+trainer_params.log_every_n_steps=1',
          '+trainer_params.enable_model_summary=false', '+test=false',
          'train_wrapper.args.sched_spec.args.T_max=3',
          '+train_wrapper.args.model_spec.args.dropout=0.2', '+checkpoint.every_n_train_steps=2',
          'data_module.args.loader=dataloader',
          '+data_module.args.transforms={train: [{name: RandomAffine, args: {degrees: 10}}]}']
PLAIN_LOSS = ['train_wrapper.args.loss_spec.name=cross_entropy', '~train_wrapper.args.loss_spec.args']
SCRIPTS = ['train.py', 'train_pl.py']


def fault(at, kind, **more):
    args = ', '.join(f'{k}: {v}' for k, v in {'at': at, 'fault': kind, **more}.items())
    return ['train_wrapper.args.loss_spec.name=tests.faults.FaultyLoss',
            f'+train_wrapper.args.loss_spec.args={{{args}}}']


def weights(run):
    return torch.load(run / 'ckpt' / 'last.ckpt', map_location='cpu',
                      weights_only=False)['state_dict']


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def epoch_lines(run):
    """The per-epoch metrics in log.txt, without the timings; the last line of each epoch (a
    kill just after an epoch's line, before its checkpoint was on disk, has the resumed run do
    the epoch and write its line again)."""
    lines = {}
    for line in (run / 'log.txt').read_text().splitlines():
        if line.startswith('epoch '):
            lines[line.split()[1]] = re.sub(r'  elapsed .*', '', line)
    return list(lines.values())


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """The run never stopped, once per entrypoint."""
    save = tmp_path_factory.mktemp('reference')
    runs = {}
    for script in SCRIPTS:
        result = run_command(script, *CONFIG, '--name', script, '--save-dir', str(save))
        assert result.returncode == 0, result.stderr
        runs[script] = save / script
    return runs


@pytest.mark.parametrize('script', SCRIPTS)
@pytest.mark.parametrize('at, where', [(10, 'mid-epoch'), (7, 'first batch of an epoch')])
def test_sigkill_then_resume_ends_where_the_uninterrupted_run_ends(script, at, where,
                                                                   uninterrupted, tmp_path):
    killed = run_command(script, *CONFIG, *fault(at, 'SIGKILL'), '--name', 'run',
                         '--save-dir', str(tmp_path))
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / 'run'
    resumed = run_command(script, '--resume', str(run), *PLAIN_LOSS, '--save-dir', str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(weights(run), weights(uninterrupted[script]))
    assert epoch_lines(run) == epoch_lines(uninterrupted[script])


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_run_with_max_steps_resumes_after_an_epochs_end(script, uninterrupted, tmp_path):
    """max_steps in the config (18: the whole run) and a kill at the next epoch's first batch:
    the resume starts epoch 2 from epoch 1's checkpoint (Lightning ran epoch 1 again, empty)."""
    argv = [*CONFIG, '+trainer_params.max_steps=18', '--save-dir', str(tmp_path)]
    killed = run_command(script, *argv, *fault(7, 'SIGKILL'), '--name', 'run')
    assert killed.returncode == -signal.SIGKILL
    resumed = run_command(script, '--resume', str(tmp_path / 'run'), *PLAIN_LOSS)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(weights(tmp_path / 'run'), weights(uninterrupted[script]))
    assert epoch_lines(tmp_path / 'run') == epoch_lines(uninterrupted[script])


@pytest.mark.parametrize('script, step', [('train.py', 7), ('train_pl.py', 1)])
def test_sigterm_in_validation_stops_at_the_next_step(script, step, uninterrupted, tmp_path):
    """The second validation forward: epoch 1's validation (train.py), Lightning's sanity check
    before any step (train_pl.py), where Lightning's own handler took SIGTERM for a clean exit."""
    stopped = run_command(script, *CONFIG, *fault(2, 'SIGTERM', in_eval='true'), '--name', 'run',
                          '--save-dir', str(tmp_path))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert f'stopped by SIGTERM at epoch {1 if step == 1 else 2}, step {step};' in stopped.stderr
    resumed = run_command(script, '--resume', str(tmp_path / 'run'), *PLAIN_LOSS)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(weights(tmp_path / 'run'), weights(uninterrupted[script]))
    assert_same_series(tmp_path / 'run', uninterrupted[script])


# the test's second forward: after 3 epochs' validation (2 forwards each) and, in train_pl.py,
# Lightning's sanity check (its 2 batches, after one forward of its own)
@pytest.mark.parametrize('script, at', [('train.py', 8), ('train_pl.py', 10)])
def test_sigterm_in_the_test_stops_and_resume_tests(script, at, tmp_path):
    """No step comes after it: the test pass stops at once, status 143 (Lightning's handler
    ended it with status 0, no test metrics), and the resume runs it."""
    testing = [c for c in CONFIG if c != '+test=false']
    stopped = run_command(script, *testing, *fault(at, 'SIGTERM', in_eval='true'),
                          '--name', 'run', '--save-dir', str(tmp_path))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert 'stopped by SIGTERM at epoch 3, step 18; continue with' in stopped.stderr
    assert 'test/acc' not in stopped.stdout
    resumed = run_command(script, '--resume', str(tmp_path / 'run'), *PLAIN_LOSS)
    assert resumed.returncode == 0, resumed.stderr
    assert 'test/acc' in resumed.stdout
    assert 'tested ' in (tmp_path / 'run' / 'log.txt').read_text()


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_resume_of_an_early_stopped_run_trains_no_more(script, tmp_path):
    """As after a kill just after the checkpoint of the epoch that early stopping ended: the
    run is over (it trained one more epoch before)."""
    argv = [*CONFIG, 'trainer_params.max_epochs=5', 'train_wrapper.args.sched_spec.args.T_max=5',
            'callbacks=[{name: early_stopping, args: {monitor: val/loss, patience: 1, '
            'min_delta: 0.5}}]', '--name', 'run', '--save-dir', str(tmp_path)]
    first = run_command(script, *argv)
    assert first.returncode == 0, first.stderr
    assert 'early stopping: val/loss has not improved' in first.stdout
    before = weights(tmp_path / 'run')
    lines = epoch_lines(tmp_path / 'run')
    assert len(lines) < 5
    again = run_command(script, '--resume', str(tmp_path / 'run'))
    assert again.returncode == 0, again.stderr
    assert epoch_lines(tmp_path / 'run') == lines
    assert_same_weights(weights(tmp_path / 'run'), before)


# The other kinds of task, in runs of the same shape: 6 batches an epoch, 3 epochs, a
# checkpoint every 2 optimizer steps (every batch of the GAN, which steps two optimizers), and
# randomness that a resume must continue (the regression MLP's dropout, the GAN's noise).
KINDS = {'regression': (['configs/diabetes-regression.yaml', 'data_module.args.loader=dataloader'],
                        'tests.faults.FaultyMSE', 'mse'),
         'gan': (['configs/digits-dcgan.yaml'], 'tests.faults.FaultyGANLoss', 'gan_nonsaturating'),
         # checkpoints and signals wait for the step that ends an accumulation
         'accumulating': (['configs/digits.yaml', '+trainer_params.accumulate_grad_batches=2',
                           '+train_wrapper.args.model_spec.args.dropout=0.2'],
                          'tests.faults.FaultyLoss', 'cross_entropy'),
         # the weights' average is in the checkpoint, and updated at every step after it
         'ema': (['configs/digits.yaml', '+train_wrapper.ema={decay: 0.9}',
                  '+train_wrapper.args.model_spec.args.dropout=0.2'],
                 'tests.faults.FaultyLoss', 'cross_entropy'),
         'plateau': (['configs/digits.yaml', 'train_wrapper.args.sched_spec={name: '
                      'ReduceLROnPlateau, args: {patience: 0, factor: 0.5}, monitor: val/acc}'],
                     'tests.faults.FaultyLoss', 'cross_entropy')}
SHAPE = ['trainer_params.max_epochs=3', '+trainer_params.limit_train_batches=6',
         '+trainer_params.limit_val_batches=2', '+trainer_params.enable_progress_bar=false',
         '+trainer_params.enable_model_summary=false', '+test=false',
         '+checkpoint.every_n_train_steps=2']


@pytest.mark.parametrize('script', SCRIPTS)
@pytest.mark.parametrize('kind', KINDS)
def test_sigkill_then_resume_is_exact_for_every_kind_of_task(kind, script, tmp_path):
    config, faulty, plain = KINDS[kind]
    argv = ['--config', *config, *SHAPE, '--save-dir', str(tmp_path)]
    whole = run_command(script, *argv, '--name', 'whole')
    assert whole.returncode == 0, whole.stderr
    killed = run_command(script, *argv, f'train_wrapper.args.loss_spec.name={faulty}',
                         '+train_wrapper.args.loss_spec.args={at: 10, fault: SIGKILL}',
                         '--name', 'run')
    assert killed.returncode == -signal.SIGKILL
    resumed = run_command(script, '--resume', str(tmp_path / 'run'),
                          f'train_wrapper.args.loss_spec.name={plain}',
                          '~train_wrapper.args.loss_spec.args')
    assert resumed.returncode == 0, resumed.stderr
    assert 'resumed' in (tmp_path / 'run' / 'log.txt').read_text()
    assert_same_weights(weights(tmp_path / 'run'), weights(tmp_path / 'whole'))
    assert epoch_lines(tmp_path / 'run') == epoch_lines(tmp_path / 'whole')


@pytest.mark.parametrize('script', SCRIPTS)
# 1: before ckpt/ exists; 12: an epoch's last batch, before its validation and end (the next
# epoch's order was cut by the resumed epoch's start; Lightning took the epoch as finished)
@pytest.mark.parametrize('at, epoch', [(9, 2), (1, 1), (12, 2)])
def test_sigterm_saves_exits_and_resume_continues(script, at, epoch, uninterrupted, tmp_path):
    stopped = run_command(script, *CONFIG, *fault(at, 'SIGTERM'), '--name', 'run',
                          '--save-dir', str(tmp_path))
    run = tmp_path / 'run'
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    message = f'stopped by SIGTERM at epoch {epoch}, step {at}; continue with: python ' \
              f'{script} --resume {run}'
    assert message in stopped.stderr and message in (run / 'log.txt').read_text()
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)
    assert state['global_step'] == at
    resumed = run_command(script, '--resume', str(run), *PLAIN_LOSS)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(weights(run), weights(uninterrupted[script]))
    assert_same_series(run, uninterrupted[script])


def assert_same_series(run, whole, tags=('train/loss', 'val/loss', 'val/acc')):
    """TensorBoard's curves, every point: the step a run stopped at is logged once, by it."""
    for tag in tags:
        assert scalars(run, tag) == scalars(whole, tag), tag


@pytest.mark.parametrize('at', [3, 9])  # the batch before a validation (at batch 3 and 6)
def test_sigterm_before_a_mid_epoch_validation_stops_after_it(at, tmp_path):
    """train_pl.py with val_check_interval: the stop waits for the validation (Lightning resumes
    the batch's checkpoint as validated, and would not run it)."""
    argv = [*CONFIG, '+trainer_params.val_check_interval=3', '--save-dir', str(tmp_path)]
    whole = run_command('train_pl.py', *argv, '--name', 'whole')
    assert whole.returncode == 0, whole.stderr
    stopped = run_command('train_pl.py', *argv, *fault(at, 'SIGTERM'), '--name', 'run')
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert f'step {at}; continue with' in stopped.stderr
    resumed = run_command('train_pl.py', '--resume', str(tmp_path / 'run'), *PLAIN_LOSS)
    assert resumed.returncode == 0, resumed.stderr
    assert len(scalars(tmp_path / 'whole', 'val/acc')) == 6
    assert_same_series(tmp_path / 'run', tmp_path / 'whole')
    assert_same_weights(weights(tmp_path / 'run'), weights(tmp_path / 'whole'))


@pytest.mark.parametrize('script', SCRIPTS)
def test_same_seed_twice_same_weights(script, uninterrupted, tmp_path):
    again = run_command(script, *CONFIG, '--name', 'again', '--save-dir', str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert_same_weights(weights(tmp_path / 'again'), weights(uninterrupted[script]))
    run_command(script, *CONFIG, '--seed', '1', '--name', 'other',
                '--save-dir', str(tmp_path))
    assert not torch.equal(weights(tmp_path / 'other')['model.net.1.weight'],
                           weights(tmp_path / 'again')['model.net.1.weight'])


@pytest.mark.parametrize('script', SCRIPTS)
def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(script, tmp_path):
    result = run_command(script, *CONFIG, '+checkpoint.every_n_train_steps=0', *fault(8, 'nan'),
                         '--name', 'run', '--save-dir', str(tmp_path))
    assert result.returncode == 1
    run = tmp_path / 'run'
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: the loss is nan at epoch 2, step 7; the run stopped and {run}/ckpt/last.ckpt '
        'is the last good checkpoint')
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)
    assert state['global_step'] == 6  # the end of epoch 1
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values())


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_nan_loss_between_log_steps_is_never_saved_or_logged(script, tmp_path):
    """The NaN flag is read at the log steps (every 5) and before every save, not at each step:
    the loss of step 7 goes bad, the save due after step 8 finds it and stops the run."""
    config = [arg.replace('log_every_n_steps=1', 'log_every_n_steps=5') for arg in CONFIG]
    result = run_command(script, *config, *fault(8, 'nan'), '--name', 'run',
                         '--save-dir', str(tmp_path))
    assert result.returncode == 1, result.stderr
    run = tmp_path / 'run'
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: the loss is nan at epoch 2, step 7; the run stopped and {run}/ckpt/last.ckpt '
        'is the last good checkpoint')
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)
    assert state['global_step'] == 6  # saved at step 6, not at step 8 after the bad step
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values())
    logged = scalars(run, 'train/loss')
    assert logged and all(math.isfinite(value) for _, value in logged)


@pytest.mark.parametrize('script', SCRIPTS)
def test_nan_policy_skip_drops_the_batch_and_goes_on(script, tmp_path):
    result = run_command(script, *CONFIG, *fault(8, 'nan'), '+trainer_params.nan_policy=skip',
                         '--name', 'run', '--save-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'warning: skipped batch 1 of epoch 2: the loss is nan' in result.stderr
    state = torch.load(tmp_path / 'run' / 'ckpt' / 'last.ckpt', weights_only=False)
    # 3 epochs x 6 batches, one without an update (Lightning counts it as a step)
    assert state['global_step'] == (17 if script == 'train.py' else 18)
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values())


def test_a_kill_while_writing_leaves_a_loadable_checkpoint(tmp_path):
    """utils.atomic_save, which both entrypoints write every checkpoint with, killed at
    moments spread over the writes of a 64 MB state."""
    path = tmp_path / 'last.ckpt'
    writer = ('import sys, torch, utils\n'
              'i = 0\n'
              'while True:\n'
              '    i += 1\n'
              "    utils.atomic_save({'step': i, 'w': torch.full((16, 2**20), float(i))}, "
              'sys.argv[1])\n')
    for delay in (0.05, 0.13, 0.31, 0.47):
        process = subprocess.Popen([sys.executable, '-c', writer, str(path)], cwd=ROOT)
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        process.kill()
        process.wait()
        state = torch.load(path, weights_only=True)
        assert torch.equal(state['w'], torch.full((16, 2**20), float(state['step'])))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith('.')] == ['last.ckpt']


def test_ddp_sigterm_to_the_launcher_then_resume(tmp_path):
    """torchrun with 2 CPU processes; SIGTERM reaches torchrun, which passes it on to the ranks:
    they stop together at one step, rank 0 saves, and the resumed run ends like one never
    stopped."""
    torchrun = ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                'train.py']
    common = ['data_module.args.batch_size=32', '--save-dir', str(tmp_path)]
    whole = run_command(*torchrun, *CONFIG, *common, '--name', 'whole')
    assert whole.returncode == 0, whole.stderr[-3000:]
    stopped = run_command(*torchrun, *CONFIG, *common, *fault(8, 'SIGTERM', to_parent='true'),
                          '--name', 'run')
    assert stopped.returncode != 0
    assert re.search(r'stopped by SIGTERM at epoch \d, step \d+; continue with', stopped.stderr)
    state = torch.load(tmp_path / 'run' / 'ckpt' / 'last.ckpt', weights_only=False)
    assert len(state['rng']) == 2  # each rank's random state
    assert 8 <= state['global_step'] < 18
    resumed = run_command(*torchrun, '--resume', str(tmp_path / 'run'), *PLAIN_LOSS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(weights(tmp_path / 'run'), weights(tmp_path / 'whole'))
