"""The GAN task in both engines, the DCGAN models and the adversarial losses."""
import os
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import losses
import models
import utils
from conftest import ENTRYPOINTS, ROOT, SHRINK, scalars, tree

GAN = ['--config', 'configs/digits-dcgan.yaml', *SHRINK]


@pytest.mark.parametrize('size', [8, 16, 32])
def test_dcgan_models_meet_at_every_image_size(size):
    g = models.make({'name': 'dcgan_generator', 'args': {'latent_dim': 16, 'out_channels': 3,
                                                         'image_size': size, 'width': 8}})
    d = models.make({'name': 'dcgan_discriminator', 'args': {'in_channels': 3,
                                                             'image_size': size, 'width': 8}})
    images = g(torch.randn(5, 16))
    assert images.shape == (5, 3, size, size)
    assert images.abs().max() <= 1  # tanh: the range the data is normalised to
    logits = d(images)
    assert logits.shape == (5,)
    logits.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_dcgan_image_size_must_be_a_power_of_two():
    with pytest.raises(utils.ConfigError, match=r'args.image_size: must be a power of two >= 8, '
                                                r'but got 24'):
        models.make({'name': 'dcgan_generator', 'args': {'image_size': 24}})


@pytest.mark.parametrize('name', losses.list('gan_*'))
def test_gan_losses_reward_the_right_player(name):
    loss = losses.make(name)
    confident, fooled = torch.full((8,), 3.0), torch.full((8,), -3.0)
    # the discriminator's loss is low when it scores real high and fake low, high otherwise
    assert loss.d_loss(real=confident, fake=fooled) < loss.d_loss(real=fooled, fake=confident)
    # the generator's loss is low when its fakes score high
    assert loss.g_loss(fake=confident) < loss.g_loss(fake=fooled)


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_digits_dcgan_trains_and_logs_sample_grids(train, script):
    run = train(*GAN, script=script)
    events = EventAccumulator(str(run), size_guidance={'images': 0})
    events.Reload()
    grids = events.Images('samples')
    assert [g.step for g in grids] == [1, 2]  # one grid per epoch
    assert grids[0].width == grids[0].height > 16  # 64 samples of 16x16 in an 8x8 grid
    assert len(scalars(run, 'train/g_loss')) == len(scalars(run, 'train/d_loss')) == 8
    png = Image.open(run / 'samples' / 'epoch=002.png')
    assert png.size[0] >= 512 and png.size[0] % grids[-1].width == 0  # enlarged to be seen
    assert (run / 'ckpt' / 'last.ckpt').is_file()
    assert 'epoch 2/2' in (run / 'log.txt').read_text()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_both_players_learn_and_a_resumed_gan_ends_where_an_uninterrupted_one_does(train,
                                                                                     script):
    whole = train(*GAN, name='whole', script=script)
    halves = train(*GAN, 'trainer_params.max_epochs=1', name='halves', script=script)
    first = torch.load(halves / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    train('--resume', str(halves), 'trainer_params.max_epochs=2', script=script)
    second = torch.load(halves / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    for part in ('generator.', 'discriminator.'):
        changed = [k for k in first if k.startswith(part) and not torch.equal(first[k], second[k])]
        assert len(changed) > 4, f'{part} did not train in epoch 2'
    expected = torch.load(whole / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    assert all(torch.equal(second[k], expected[k]) for k in expected)
    assert sorted(p.name for p in (halves / 'samples').glob('*.png')) == \
        ['epoch=001.png', 'epoch=002.png']


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('setting, value', [('gradient_clip_val', 1.0),
                                            ('accumulate_grad_batches', 2)])
def test_trainer_settings_a_gan_cannot_honour_are_refused_before_training(setting, value, script,
                                                                          save_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(ENTRYPOINTS[script], [*GAN, f'+trainer_params.{setting}={value}',
                                            '--name', 'gan', '--save-dir', str(save_dir)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: override '+trainer_params.{setting}={value}': GAN steps 2 optimizers "
        f'in turn, so it cannot honour {setting}: {value!r}; do it in its training_step')
    assert tree(save_dir) == {}


@pytest.mark.slow
def test_the_gan_trains_in_two_ddp_processes(tmp_path):
    """Each of the two steps leaves the other network's parameters unused: plain DDP fails on
    that, so a GAN on several devices gets the strategy that allows it."""
    with socket.socket() as s:  # a port free now
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, 'train_pl.py', *GAN, '+trainer_params.devices=2',
                             '--name', 'ddp', '--save-dir', str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            # a clean environment: nothing an earlier test left (seeds, ports,
                            # ranks) may tell Lightning's launcher otherwise
                            env={'PATH': os.environ['PATH'], 'HOME': os.environ.get('HOME', '/'),
                                 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / 'ddp' / 'samples' / 'epoch=002.png').is_file()


def test_a_gan_logs_every_log_every_n_steps_batches_alike_in_both_engines(train):
    """Two optimizer steps a batch: an even log_every_n_steps counted in optimizer steps was
    never met, and the engines logged at different points."""
    runs = [train(*GAN, 'trainer_params.log_every_n_steps=2', name=script, script=script)
            for script in ENTRYPOINTS]
    for tag in ('train/d_loss', 'train/g_loss'):
        plain, lightning = (scalars(run, tag) for run in runs)
        assert [s for s, _ in plain] == [s for s, _ in lightning] == [1, 3, 5, 7], tag
        assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(plain, lightning)), tag


def test_export_of_a_gan_run_without_val_or_test_samples_is_one_line(train, capsys):
    import export
    run = train(*GAN, 'trainer_params.max_epochs=1', script='train.py')
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        utils.run_cli(export.main, ['--run', str(run)])
    assert info.value.code == 2
    assert capsys.readouterr().err == f'error: {run}/config.yaml: data_module.args: its val and ' \
        'test splits are empty (val_fraction: 0, as a GAN has): no batch to trace the model with\n'
