"""What a run prints when its output goes to a file (a batch job's log): no progress bar, no
line per save, the early-stopping reason, and a TensorBoard command that runs."""
import shlex
import subprocess

import pytest

from conftest import ROOT, run_command


def test_a_20_epoch_log_is_small_and_says_each_epoch_once(tmp_path):
    result = run_command('train_pl.py', '--config', 'configs/digits.yaml', '--save-dir',
                         str(tmp_path), '+trainer_params.limit_train_batches=6')
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert len(log.encode()) < 10_000
    assert [line.split()[1] for line in result.stdout.splitlines()
            if line.startswith('epoch ')] == [f'{e}/20' for e in range(1, 21)]
    assert 'weights_only' not in log and '\r' not in log  # no save line, no bar redrawn
    command = result.stdout.splitlines()[-1].partition('see it in TensorBoard: ')[2]
    # the command names a TensorBoard that exists from this shell, whether or not the venv is
    # active: its executable answers --version
    words = shlex.split(command)
    assert words[1:] == ['--logdir', str(tmp_path)]
    assert subprocess.run([words[0], '--version'], cwd=ROOT, capture_output=True).returncode == 0


@pytest.mark.parametrize('script', ['train.py', 'train_pl.py'])
def test_early_stopping_says_why_on_stdout(tmp_path, script):
    result = run_command(script, '--config', 'configs/digits.yaml', '--save-dir', str(tmp_path),
                         '+trainer_params.limit_train_batches=2', 'trainer_params.max_epochs=10',
                         'callbacks=[{name: early_stopping, args: {monitor: val/acc, mode: max, '
                         'patience: 1, min_delta: 1.0}}]', '+test=false')
    assert result.returncode == 0, result.stderr
    assert 'early stopping: val/acc has not improved for 1 validations' in result.stdout
