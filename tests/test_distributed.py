"""Distributed runs on the CPU (gloo, every address 127.0.0.1, every port a free one): under
torchrun, under two torchrun "nodes" and under srun's SLURM_* variables, both entrypoints
equal one process of the same global batch, test split included."""
import csv
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_command

pytestmark = pytest.mark.slow
SCRIPTS = ['train.py', 'train_pl.py']
# digits, 8 train batches an epoch, 3 epochs. The checkpoint keeps the epoch of the *lowest*
# val/acc, so the best checkpoint, which the test split is evaluated with, is not the last one:
# every rank must load the same one.
RUN = ['--config', 'configs/digits.yaml', 'trainer_params.max_epochs=3',
       '+trainer_params.limit_train_batches=8', '+trainer_params.enable_progress_bar=false',
       '+trainer_params.enable_model_summary=false', 'checkpoint.mode=min']
HALF = 'data_module.args.batch_size=32'
SHRINK_ONE = ['trainer_params.max_epochs=1', '+trainer_params.limit_train_batches=2',
              '+trainer_params.enable_progress_bar=false', '+test=false']  # per process: two make the one-process batch of 64


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(nodes=1, per_node=2):
    return ['-m', 'torch.distributed.run', '--nnodes', str(nodes), '--nproc-per-node',
            str(per_node), '--rdzv-backend', 'c10d', '--rdzv-endpoint', f'127.0.0.1:{free_port()}',
            '--rdzv-id', 'test']


def together(*processes, timeout=300):
    """Start every (argv, cwd, env) at once, as a launcher's nodes or tasks start; their
    (exit status, stderr) once all have ended."""
    started = [subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for argv, cwd, env in processes]
    errors = [p.communicate(timeout=timeout)[1] for p in started]
    return [(p.returncode, err) for p, err in zip(started, errors)]


def rows(run):
    with open(run / 'metrics.csv', newline='') as f:
        return list(csv.DictReader(f))


def assert_same_run(run, reference):
    """Every epoch's metrics (train/loss: the mean of the ranks' halves of the batch), the
    test metrics and the final weights of one process."""
    got, expected = rows(run), rows(reference)
    assert len(got) == len(expected) == 3
    assert float(expected[1]['val/acc']) < float(expected[2]['val/acc'])  # best is not last
    for a, b in zip(got, expected):
        for name in b:
            if name.startswith(('train/', 'val/', 'test/')) and b[name]:
                assert abs(float(a[name]) - float(b[name])) < 1e-6, (name, a, b)
    assert got[-1]['test/acc'] != ''
    w, v = (torch.load(r / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
            for r in (run, reference))
    for key in v:
        torch.testing.assert_close(w[key], v[key], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope='module')
def single(tmp_path_factory):
    """One process, batch 64, per entrypoint."""
    save = tmp_path_factory.mktemp('single')
    for script in SCRIPTS:
        result = run_command(script, *RUN, '--name', script, '--save-dir', str(save))
        assert result.returncode == 0, result.stderr[-3000:]
    return save


@pytest.mark.parametrize('script', SCRIPTS)
def test_torchrun_two_processes_equal_one(script, single, tmp_path):
    result = run_command(*torchrun(), script, *RUN, HALF, '--name', 'run',
                         '--save-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(tmp_path / 'run', single / script)


@pytest.mark.parametrize('script', SCRIPTS)
def test_two_torchrun_nodes_equal_one_process(script, single, tmp_path):
    launch = torchrun(nodes=2, per_node=1)
    for code, err in together(*[([*launch, '--node-rank', str(rank), script, *RUN, HALF,
                                  '--name', 'run', '--save-dir', str(tmp_path)], ROOT, None)
                                for rank in (0, 1)]):
        assert code == 0, err[-3000:]
    assert_same_run(tmp_path / 'run', single / script)


@pytest.mark.parametrize('script', SCRIPTS)
def test_srun_tasks_equal_one_process(script, single, tmp_path):
    """What srun sets for 2 tasks on one node; the job script exports MASTER_ADDR/PORT."""
    port = free_port()
    common = {'PATH': os.environ['PATH'], 'HOME': os.environ.get('HOME', '/'),
              'SLURM_NTASKS': '2', 'SLURM_NTASKS_PER_NODE': '2', 'SLURM_NNODES': '1',
              'SLURM_NODEID': '0', 'SLURM_JOB_NAME': 'runyard', 'SLURM_JOB_ID': '1',
              'SLURM_NODELIST': '127.0.0.1', 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port)}
    for code, err in together(*[([script, *RUN, HALF, '--name', 'run', '--save-dir',
                                  str(tmp_path)], ROOT,
                                 {**common, 'SLURM_PROCID': str(rank), 'SLURM_LOCALID': str(rank)})
                                for rank in (0, 1)]):
        assert code == 0, err[-3000:]
    assert_same_run(tmp_path / 'run', single / script)


@pytest.mark.parametrize('script', SCRIPTS)
def test_sigterm_to_torchrun_then_resume_tests_like_one_process(script, single, tmp_path):
    fault = ['train_wrapper.args.loss_spec.name=tests.faults.FaultyLoss',
             '+train_wrapper.args.loss_spec.args={at: 10, fault: SIGTERM, to_parent: true}']
    stopped = run_command(*torchrun(), script, *RUN, HALF, *fault, '--name', 'run',
                          '--save-dir', str(tmp_path))
    assert stopped.returncode != 0 and 'stopped by SIGTERM' in stopped.stderr, stopped.stderr
    resumed = run_command(*torchrun(), script, '--resume', str(tmp_path / 'run'),
                          'train_wrapper.args.loss_spec.name=cross_entropy',
                          '~train_wrapper.args.loss_spec.args')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / 'run', single / script)


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_run_folder_missing_on_one_node_stops_every_rank_with_one_line(script, tmp_path):
    """Two torchrun nodes, each in its own folder: one has save/run (no shared storage), the
    other not. Every rank says so in one line and exits 2, instead of waiting for the other."""
    here, there = tmp_path / 'a', tmp_path / 'b'
    there.mkdir()
    made = run_command(script, '--config', str(ROOT / 'configs' / 'digits.yaml'), *SHRINK_ONE,
                       '--name', 'run', '--save-dir', str(here / 'save'))
    assert made.returncode == 0, made.stderr[-2000:]
    launch = torchrun(nodes=2, per_node=1)
    errors = []
    for code, err in together(*[([*launch, '--node-rank', str(rank), str(ROOT / script),
                                  '--resume', 'save/run'], cwd, None)
                                for rank, cwd in ((0, here), (1, there))], timeout=120):
        assert code != 0
        errors.append([line for line in err.splitlines() if line.startswith('error: ')])
    assert errors[1] == ['error: --resume save/run: no such run folder or checkpoint file']
    assert errors[0] == ['error: rank 1 cannot start: --resume save/run: no such run folder or '
                         'checkpoint file']
