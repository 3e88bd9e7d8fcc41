"""train.py, the plain loop: same configs, same run folders, same numbers as train_pl.py."""
import re

import pytest
import torch

from conftest import SHRINK, run_command, tree
import models
import utils
from models.lightning import TaskModule
from test_train_pl import DIGITS, epochs_logged, scalars


def weights(ckpt):
    return torch.load(ckpt, weights_only=False)['state_dict']


def test_digits_trains_and_fills_the_run_folder(train):
    run = train(*DIGITS, script='train.py')
    assert max(v for _, v in scalars(run, 'val/acc')) >= 0.95
    assert scalars(run, 'test/acc')[-1][1] >= 0.93
    assert len(scalars(run, 'train/loss')) >= 10
    assert epochs_logged((run / 'log.txt').read_text()) == list(range(1, 21))
    assert (run / 'src' / 'train.py').is_file() and (run / 'config.yaml').is_file()
    ckpts = sorted(p.name for p in (run / 'ckpt').iterdir())
    assert len(ckpts) == 2 and ckpts[-1] == 'last.ckpt'  # save_top_k: 1 by val/acc, and last
    # the checkpoint is Lightning-shaped: the Lightning adapter loads it, and so does the plain
    # loader
    module = TaskModule.load_from_checkpoint(run / 'ckpt' / 'last.ckpt')
    assert module(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert models.load_task(run / 'ckpt' / 'last.ckpt')(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize('config, extra', [
    ('digits', []),
    # random per-sample transforms (the run's RNG) with limit_train_batches: no batch past the
    # limit is drawn; and in DataLoader workers, seeded alike (datasets/base.py: seed_worker)
    ('digits-augment', []),
    ('digits-augment', ['+data_module.args.num_workers=2']),
], ids=['digits', 'augment', 'augment-workers'])
def test_same_numbers_as_train_pl(train, config, extra):
    argv = ['--config', f'configs/{config}.yaml', *SHRINK, 'trainer_params.max_epochs=3',
            '+test=false', *extra]
    plain = train(*argv, name='plain', script='train.py')
    lightning = train(*argv, name='lightning', script='train_pl.py')
    for tag in ('val/loss', 'val/acc'):
        a, b = scalars(plain, tag), scalars(lightning, tag)
        assert len(a) == len(b) == 3
        assert [s for s, _ in a] == [s for s, _ in b]
        assert all(abs(x - y) <= 1e-4 for (_, x), (_, y) in zip(a, b)), (tag, a, b)


def test_resume_ends_where_an_uninterrupted_run_ends(train):
    # T_max pinned: the part run is the 4-epoch run stopped after 2 (a resumed scheduler keeps
    # the T_max it started with)
    cosine = 'train_wrapper.args.sched_spec.args.T_max=4'
    whole = train(*DIGITS, *SHRINK, cosine, 'trainer_params.max_epochs=4', name='whole',
                  script='train.py')
    part = train(*DIGITS, *SHRINK, cosine, name='part', script='train.py')
    train('--resume', str(part), 'trainer_params.max_epochs=4', script='train.py')
    assert epochs_logged((part / 'log.txt').read_text()) == [1, 2, 3, 4]
    a, b = weights(whole / 'ckpt' / 'last.ckpt'), weights(part / 'ckpt' / 'last.ckpt')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [s for s, _ in scalars(part, 'val/acc')]
    assert steps == sorted(set(steps)) and len(steps) == 4


@pytest.mark.parametrize('script', ['train.py', 'train_pl.py'])
def test_max_steps_ends_the_run_there_in_both_engines(train, script):
    # 4 batches an epoch: max_steps 6 ends the run within epoch 2, where a one-cycle schedule
    # over the run's steps ends too (one step more would be OneCycleLR's error)
    onecycle = ('train_wrapper.args.sched_spec={name: OneCycleLR, args: {max_lr: 0.01, '
                'total_steps: "${run.total_steps}"}, interval: step}')
    run = train(*DIGITS, *SHRINK, 'trainer_params.max_epochs=5', '+trainer_params.max_steps=6',
                onecycle, name='onecycle', script=script)
    assert torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)['global_step'] == 6
    assert [s for s, _ in scalars(run, 'val/acc')] == [3]  # epoch 1's: none within epoch 2
    assert scalars(run, 'test/acc')  # and the test split after it
    assert 'ETA ?' not in (run / 'log.txt').read_text()  # from the steps left
    # a limit at an epoch's end: that epoch ends whole, then the same line in both engines
    run = train(*DIGITS, *SHRINK, 'trainer_params.max_epochs=5', '+trainer_params.max_steps=8',
                '+test=false', name='at_end', script=script)
    log = (run / 'log.txt').read_text()
    assert epochs_logged(log) == [1, 2] and 'stopped: max_steps=8 reached at epoch 2, its end' in log


@pytest.mark.parametrize('script', ['train.py', 'train_pl.py'])
def test_resumed_past_max_steps_a_run_ends_where_a_run_without_it_ends(train, script):
    # the run stopped by max_steps within epoch 2 goes on from that batch, bit for bit
    whole = train(*DIGITS, *SHRINK, 'trainer_params.max_epochs=3', '+test=false', name='whole',
                  script=script)
    part = train(*DIGITS, *SHRINK, 'trainer_params.max_epochs=3', '+trainer_params.max_steps=6',
                 '+test=false', name='part', script=script)
    log = (part / 'log.txt').read_text()
    assert 'stopped: max_steps=6 reached at epoch 2, batch 2' in log
    assert epochs_logged(log) == [1]
    assert torch.load(part / 'ckpt' / 'last.ckpt', weights_only=False)['global_step'] == 6
    train('--resume', str(part), 'trainer_params.max_steps=-1', script=script)
    assert epochs_logged((part / 'log.txt').read_text()) == [1, 2, 3]
    a, b = weights(whole / 'ckpt' / 'last.ckpt'), weights(part / 'ckpt' / 'last.ckpt')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [s for s, _ in scalars(part, 'val/acc')] == [s for s, _ in scalars(whole, 'val/acc')]


def test_the_eta_is_the_sooner_end_of_the_epochs_and_the_steps():
    line = lambda *steps: utils.eta_line(2, 10, {}, 20.0, 2, *steps)  # noqa: E731
    assert line().endswith('ETA 1m20s')  # 8 epochs more at 10 s each
    assert line(40, 20).endswith('ETA 10s')  # 20 steps more at 0.5 s each
    assert line(40, 400).endswith('ETA 1m20s')
    assert utils.eta_line(2, -1, {}, 20.0, 2).endswith('ETA ?')  # no end at all
    assert utils.eta_line(2, -1, {}, 20.0, 2, 40, 20).endswith('ETA 10s')


@pytest.mark.parametrize('precision', ['bf16-mixed', '16-mixed'])
def test_honors_trainer_params_and_names_the_rest(train, capsys, precision):
    run = train(*DIGITS, *SHRINK, '+trainer_params.accumulate_grad_batches=2',
                '+trainer_params.check_val_every_n_epoch=2', '+trainer_params.gradient_clip_val=0.5',
                f'+trainer_params.precision={precision}', '+trainer_params.benchmark=true',
                '+trainer_params.detect_anomaly=true', '+trainer_params.overfit_batches=1',
                script='train.py')
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)
    assert state['global_step'] == 4  # 2 epochs x 4 batches / 2 accumulated
    assert len(scalars(run, 'val/acc')) == 1  # validated on epoch 2 only
    assert torch.backends.cudnn.benchmark  # set from `benchmark`, as Lightning does
    assert 'warning: train.py ignores trainer_params detect_anomaly, overfit_batches ' \
           '(train_pl.py honors them)' in capsys.readouterr().err


def test_does_not_import_lightning():
    result = run_command('-X', 'importtime', 'train.py', '--help')
    assert result.returncode == 0
    modules = [line.split('|')[-1].strip() for line in result.stderr.splitlines()]
    assert 'torch' in modules and 'models.optim' in modules
    assert not [m for m in modules if 'lightning' in m]


@pytest.mark.slow
def test_ddp_averages_gradients_as_one_process_of_the_global_batch(tmp_path):
    """Two processes of 32 samples and one of 64 take the same samples at every step (rank r's
    share is every second sample of the epoch's order), so they take the same steps."""
    common = [*DIGITS, 'trainer_params.max_epochs=2', '+trainer_params.limit_train_batches=8',
              '+test=false', '--save-dir', str(tmp_path)]
    ddp = run_command('-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                      'train.py', *common, '--name', 'ddp', 'data_module.args.batch_size=32')
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_command('train.py', *common, '--name', 'single')
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = weights(tmp_path / 'ddp' / 'ckpt' / 'last.ckpt'), \
        weights(tmp_path / 'single' / 'ckpt' / 'last.ckpt')
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    assert scalars(tmp_path / 'ddp', 'val/acc')[-1][1] > 0.8  # it trained
    for tag in ('val/loss', 'val/acc'):  # summed over both ranks' halves of val
        for (_, x), (_, y) in zip(scalars(tmp_path / 'ddp', tag),
                                  scalars(tmp_path / 'single', tag), strict=True):
            assert abs(x - y) < 1e-5, tag


@pytest.mark.slow
def test_ddp_on_cpu_with_torchrun(tmp_path):
    """Two processes of 32 samples each against one process of 64: the same global batch."""
    common = [*DIGITS, 'trainer_params.max_epochs=8', '--save-dir', str(tmp_path)]
    ddp = run_command('-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                      'train.py', *common, '--name', 'ddp', 'data_module.args.batch_size=32')
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_command('train.py', *common, '--name', 'single')
    assert single.returncode == 0, single.stderr[-3000:]
    # only rank 0 writes: one event file, one ETA line per epoch
    assert len(list((tmp_path / 'ddp').glob('events.out.tfevents.*'))) == 1
    assert epochs_logged((tmp_path / 'ddp' / 'log.txt').read_text()) == list(range(1, 9))
    a, b = scalars(tmp_path / 'ddp', 'val/acc'), scalars(tmp_path / 'single', 'val/acc')
    assert [s for s, _ in a] == [s for s, _ in b]  # same number of optimizer steps
    # different shuffles, the same optimisation: close, and both trained
    assert abs(a[-1][1] - b[-1][1]) <= 0.03, (a, b)
    loss_a, loss_b = scalars(tmp_path / 'ddp', 'val/loss')[-1][1], \
        scalars(tmp_path / 'single', 'val/loss')[-1][1]
    assert abs(loss_a - loss_b) <= 0.05, (loss_a, loss_b)
    assert min(a[-1][1], b[-1][1]) >= 0.95


def test_resume_refuses_a_broken_checkpoint_and_keeps_the_run(train, capsys):
    run = train(*DIGITS, *SHRINK, script='train.py')
    (run / 'ckpt' / 'last.ckpt').write_bytes(b'half a checkpoint')
    before = tree(run)
    with pytest.raises(SystemExit) as exit_info:
        train('--resume', str(run), script='train.py')
    assert exit_info.value.code == 2
    assert re.match(r'error: --resume .*: cannot load .*last.ckpt \(', capsys.readouterr().err)
    assert tree(run) == before


@pytest.mark.parametrize('script', ['train.py', 'train_pl.py'])
def test_resume_auto_starts_then_continues(train, save_dir, script):
    """A requeued job runs the same command each time."""
    argv = [*DIGITS, *SHRINK, '--resume', 'auto']
    run = train(*argv, name='job', script=script)
    train(*argv, 'trainer_params.max_epochs=3', name='job', script=script)
    log = (run / 'log.txt').read_text()
    assert epochs_logged(log) == [1, 2, 3] and 'resumed' in log
    # a job killed before its first checkpoint starts over in its own folder
    (save_dir / 'early').mkdir()
    (save_dir / 'early' / 'log.txt').write_text('started\n')
    train(*argv, name='early', script=script)
    log = (save_dir / 'early' / 'log.txt').read_text()
    assert log.startswith('started\nrestarted (no checkpoint yet)') and epochs_logged(log) == [1, 2]
