"""<run>/env.txt (utils/environment.py): what a run ran on, and test.py's warning when the
environment it evaluates in differs from the run's."""
import importlib.metadata
import sys

import pytest
import torch

import test as test_py
import utils
from conftest import SHRINK
from test_train_pl import DIGITS


@pytest.mark.parametrize('script', ['train.py', 'train_pl.py'])
def test_env_txt_records_python_packages_cuda_host_and_command(train, script):
    run = train(*DIGITS, *SHRINK, 'trainer_params.max_epochs=1', '+test=false', script=script)
    text = (run / 'env.txt').read_text()
    lines = text.splitlines()
    torch_version = importlib.metadata.version('torch')  # torch.__version__ adds +cu130
    assert f'  torch=={torch_version}' in lines
    assert f"  pytorch-lightning=={importlib.metadata.version('pytorch-lightning')}" in lines
    assert f'python: {sys.version.split()[0]} ' in text
    assert f'cuda: {torch.version.cuda}' in text and 'cudnn: ' in text and 'host: ' in text
    assert lines[0].startswith(f'command: python {script} --config configs/digits.yaml')
    assert len([l for l in lines if '==' in l]) > 50  # every installed package
    assert utils.environment.recorded_packages(run)['torch'] == torch_version


def test_test_py_warns_when_torch_differs_from_the_run(train, capsys):
    run = train(*DIGITS, *SHRINK, 'trainer_params.max_epochs=1', '+test=false', script='train.py')
    utils.run_cli(test_py.main, ['--run', str(run)])
    assert 'warning' not in capsys.readouterr().err
    env = run / 'env.txt'
    here = importlib.metadata.version('torch')
    env.write_text(env.read_text().replace(f'  torch=={here}\n', '  torch==2.0.0\n'))
    utils.run_cli(test_py.main, ['--run', str(run)])
    assert f'warning: torch {here} here, 2.0.0 in the run (its env.txt): ' \
           'results may differ' in capsys.readouterr().err


def test_installed_packages_are_those_importlib_metadata_reads():
    """env.txt's package list, read from the head of each METADATA file, is what
    importlib.metadata's full parse of it gives."""
    from utils.environment import installed
    expected = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata['Name']:
            expected.setdefault(dist.metadata['Name'].lower().replace('_', '-'), dist.version)
    assert installed() == dict(sorted(expected.items()))
    assert {'torch', 'torchvision', 'pytorch-lightning', 'omegaconf'} <= set(installed())
