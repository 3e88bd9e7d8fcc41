import re

import pytest

import torch
import yaml

from conftest import SHRINK, scalars, tree
import models
from models.lightning import TaskModule

DIGITS = ['--config', 'configs/digits.yaml']


def epochs_logged(text):
    return [int(m) for m in re.findall(r'^epoch (\d+)/\d+ ', text, flags=re.M)]


def test_run_folder_is_complete_and_readable(train):
    run = train(*DIGITS, *SHRINK)
    assert sorted(p.name for p in (run / 'ckpt').iterdir())[-1] == 'last.ckpt'
    # config.yaml: the resolved config, overrides applied, the command as a comment
    text = (run / 'config.yaml').read_text()
    assert 'python train_pl.py --config configs/digits.yaml' in text.splitlines()[0]
    assert yaml.safe_load(text)['trainer_params']['limit_train_batches'] == 4
    # src/: the project's code, never load/ or save/
    assert (run / 'src' / 'train_pl.py').is_file() and (run / 'src' / 'models' / 'task.py').is_file()
    assert not (run / 'src' / 'save').exists() and not (run / 'src' / 'load').exists()
    # log.txt: one ETA line per epoch
    log = (run / 'log.txt').read_text()
    assert epochs_logged(log) == [1, 2]
    assert re.search(r'^epoch 2/2 .*val/acc \d.*elapsed \S+  ETA \S+$', log, flags=re.M)
    # TensorBoard's own reader finds the metrics, one val point per epoch
    assert len(scalars(run, 'val/acc')) == 2 and scalars(run, 'train/loss')
    # the checkpoint rebuilds the wrapper without the YAML
    module = TaskModule.load_from_checkpoint(run / 'ckpt' / 'last.ckpt')
    assert module(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert models.load_task(run / 'ckpt' / 'last.ckpt')(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)['epoch'] == 1


def test_demo_config_reaches_95_percent(train):
    run = train(*DIGITS, '+trainer_params.enable_progress_bar=false')
    best = max(v for _, v in scalars(run, 'val/acc'))
    assert best >= 0.95
    assert scalars(run, 'test/acc')[-1][1] >= 0.93


def test_resume_continues_the_same_run(train, save_dir):
    run = train(*DIGITS, *SHRINK)
    first = (run / 'log.txt').read_text()
    steps_before = [s for s, _ in scalars(run, 'val/acc')]
    train('--resume', str(run), 'trainer_params.max_epochs=4')
    log = (run / 'log.txt').read_text()
    assert log.startswith(first)
    assert epochs_logged(log[len(first):]) == [3, 4]
    steps = [s for s, _ in scalars(run, 'val/acc')]
    assert steps[:2] == steps_before and len(steps) == 4
    assert all(a < b for a, b in zip(steps, steps[1:]))  # TensorBoard steps never go back
    train_steps = [s for s, _ in scalars(run, 'train/loss')]
    assert train_steps == sorted(set(train_steps))
    assert list(save_dir.iterdir()) == [run]
    # the config records both commands and the raised max_epochs
    text = (run / 'config.yaml').read_text()
    assert sum(line.startswith('# ') for line in text.splitlines()) == 2
    assert yaml.safe_load(text)['trainer_params']['max_epochs'] == 4


def test_resume_from_a_checkpoint_file(train):
    run = train(*DIGITS, *SHRINK)
    train('--resume', str(run / 'ckpt' / 'last.ckpt'), 'trainer_params.max_epochs=3')
    assert epochs_logged((run / 'log.txt').read_text()) == [1, 2, 3]


def test_same_name_twice_is_refused_and_the_first_run_is_untouched(train, save_dir, capsys):
    run = train(*DIGITS, *SHRINK)
    before = tree(run)
    with pytest.raises(SystemExit) as exit_info:
        train(*DIGITS, *SHRINK)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == (f'error: run folder {run} already exists; continue it with '
                           f'--resume {run}, or pick another --name')
    assert tree(run) == before


def test_the_trainers_hook_name_skips_nn_modules_attribute_checks(train, monkeypatch):
    # the Trainer sets _current_fx_name around every hook call: through nn.Module.__setattr__
    # that was 4% of a digits epoch
    seen = []
    setattr_ = torch.nn.Module.__setattr__
    monkeypatch.setattr(torch.nn.Module, '__setattr__',
                        lambda self, name, value: seen.append(name) or setattr_(self, name, value))
    run = train(*DIGITS, *SHRINK)
    assert torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)['global_step'] == 8
    assert '_current_fx_name' not in seen and 'task' in seen  # the task is still a submodule
    module = TaskModule.load_from_checkpoint(run / 'ckpt' / 'last.ckpt')
    module.head = torch.nn.Linear(2, 2)
    assert 'head.weight' in module.state_dict()


def test_a_cpu_run_does_not_ask_nvml_for_gpus_at_every_step(train, monkeypatch):
    # lightning_fabric's import sets this; with it, and no CUDA initialized, each
    # torch.cuda.is_available() (Adam's step asks) loads libnvidia-ml again
    monkeypatch.setenv('PYTORCH_NVML_BASED_CUDA_CHECK', '1')
    asked = []
    nvml = torch.cuda._raw_device_count_nvml
    monkeypatch.setattr(torch.cuda, '_raw_device_count_nvml', lambda: asked.append(1) or nvml())
    run = train(*DIGITS, *SHRINK)
    assert torch.load(run / 'ckpt' / 'last.ckpt', weights_only=False)['global_step'] == 8
    assert len(asked) < 4  # the Trainer's set-up may ask; the 8 steps do not
