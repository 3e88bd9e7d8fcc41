"""The on-device data path (`loader: memory`) and the GPU speed settings from the config."""
import re

import pytest
import torch
import torch.nn.functional as F

from conftest import ENTRYPOINTS, SHRINK, run_command, scalars
import datasets
import models
import utils
from datasets.base import augment_batch

DIGITS = ['--config', 'configs/digits.yaml']  # loader: memory
MEMORY = ['data_module.args.loader=memory']
DATALOADER = ['data_module.args.loader=dataloader']
AUGMENT = ['+data_module.args.augment={crop_padding: 2, flip: true}']


def digits(**args):
    data = datasets.make({'name': 'digits', 'args': {'batch_size': 64, **args}})
    data.setup()
    return data


def epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_augment_batch_is_a_crop_of_the_zero_padded_image_then_a_flip():
    x = torch.rand(5, 3, 6, 7)
    shifts = torch.tensor([[0, 0], [4, 4], [1, 3], [2, 0], [4, 1]])
    flips = torch.tensor([True, False, True, False, True])
    out = augment_batch(x, shifts, flips, {'crop_padding': 2, 'flip': True})
    assert out.shape == x.shape and out.is_contiguous()
    for i in range(5):  # what RandomCrop(padding=2) then RandomHorizontalFlip do to one image
        dy, dx = shifts[i].tolist()
        expected = F.pad(x[i], (2, 2, 2, 2))[:, dy:dy + 6, dx:dx + 7]
        if flips[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)
    assert torch.equal(out[1], F.pad(x[1], (2, 2, 2, 2))[:, 4:, 4:11])  # shifted: zeros enter


def test_without_augment_it_serves_what_the_dataloader_serves():
    plain, memory = digits(), digits(loader='memory')
    for split in ('val', 'test'):
        a = list(getattr(plain, f'{split}_dataloader')())
        b = list(getattr(memory, f'{split}_dataloader')())
        assert len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb)
                                        for (xa, ya), (xb, yb) in zip(a, b))
    a, b = epoch(plain.train_dataloader(seed=3), 2), epoch(memory.train_dataloader(seed=3), 2)
    assert len(a) == len(b) == 20
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_normalisation_runs_per_batch_after_augmentation():
    post = {'post': [{'name': 'Normalize', 'args': {'mean': [0.5], 'std': [0.25]}}]}
    plain = digits(transforms=post)
    memory = digits(transforms=post, loader='memory')
    x, _ = next(iter(memory.val_dataloader()))
    assert torch.allclose(x, next(iter(plain.val_dataloader()))[0])
    assert memory.tensors['val'][0].min() >= 0  # kept unnormalised: padding is black, as per sample
    padded = digits(transforms=post, loader='memory', augment={'crop_padding': 4})
    x, _ = next(iter(padded.train_dataloader()))
    assert (x == -2).any()  # a zero pixel shifted in, then normalised: (0 - 0.5) / 0.25


def test_shuffle_is_seeded_per_epoch_and_sharded_per_rank():
    data = digits(loader='memory', augment={'crop_padding': 1, 'flip': True})
    one = epoch(data.train_dataloader(seed=0), 0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(one, epoch(data.train_dataloader(seed=0), 0)))
    assert not torch.equal(one[0][1], epoch(data.train_dataloader(seed=0), 1)[0][1])
    assert not torch.equal(one[0][1], epoch(data.train_dataloader(seed=1), 0)[0][1])
    # two ranks: disjoint halves of the same order, each sample augmented as on one rank
    whole = {tuple(x.flatten().tolist()): y.item() for xb, yb in one for x, y in zip(xb, yb)}
    halves = [[(x, y) for xb, yb in epoch(data.train_dataloader(seed=0, rank=r, world_size=2), 0)
               for x, y in zip(xb, yb)] for r in (0, 1)]
    # 1259 samples: 630 each, one of them twice (padded, as DistributedSampler does)
    assert len(halves[0]) == len(halves[1]) == 630
    seen = [tuple(x.flatten().tolist()) for half in halves for x, _ in half]
    assert len(whole) == len(set(seen)) == 1259 and set(seen) == set(whole)
    assert all(whole[tuple(x.flatten().tolist())] == y.item() for half in halves for x, y in half)


def test_resumes_mid_epoch_with_the_same_batches():
    data = digits(loader='memory', augment={'crop_padding': 2, 'flip': True})
    full = epoch(data.train_dataloader(seed=0), 4)
    loader = data.train_dataloader(seed=0)
    loader.load_state_dict({'epoch': 4, 'served': 7})
    rest = [(x, y) for x, y in loader]
    assert len(rest) == 13 and loader.state_dict() == {'epoch': 4, 'served': 20}
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[7:], rest))


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_both_entrypoints_train_the_same_on_either_loader(train, script):
    argv = [*DIGITS, *SHRINK, 'trainer_params.max_epochs=3', '+test=false']
    plain = train(*argv, *DATALOADER, name='plain', script=script)
    memory = train(*argv, *MEMORY, name='memory', script=script)
    a, b = scalars(plain, 'val/loss'), scalars(memory, 'val/loss')
    assert len(a) == 3 and [s for s, _ in a] == [s for s, _ in b]
    assert all(abs(x - y) <= 1e-6 for (_, x), (_, y) in zip(a, b))


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_augmented_memory_run_resumes_to_the_same_weights(train, script):
    cosine = 'train_wrapper.args.sched_spec.args.T_max=4'
    argv = [*DIGITS, *SHRINK, *MEMORY, *AUGMENT, cosine]
    whole = train(*argv, 'trainer_params.max_epochs=4', name='whole', script=script)
    part = train(*argv, name='part', script=script)
    train('--resume', str(part), 'trainer_params.max_epochs=4', script=script)
    a = torch.load(whole / 'ckpt' / 'last.ckpt', weights_only=False)['state_dict']
    b = torch.load(part / 'ckpt' / 'last.ckpt', weights_only=False)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and augmentation did change the run
    plain = train(*DIGITS, *SHRINK, *MEMORY, cosine, 'trainer_params.max_epochs=4', name='plain',
                  script=script)
    c = torch.load(plain / 'ckpt' / 'last.ckpt', weights_only=False)['state_dict']
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_speed_settings_read_from_the_config():
    cfg = utils.load_config('configs/digits.yaml', [
        '+trainer_params.precision=bf16-mixed', '+trainer_params.tf32=true',
        '+train_wrapper.args.model_spec.compile={mode: max-autotune}',
        '+train_wrapper.args.model_spec.channels_last=true', *MEMORY])
    assert utils.speed_settings(cfg) == {
        'precision': 'bf16-mixed', 'compile': 'on (mode=max-autotune)', 'channels_last': 'on',
        'tf32': 'on', 'cudnn.benchmark': 'off', 'loader': 'memory'}
    assert utils.speed_settings(utils.load_config('configs/digits-dcgan.yaml'))['compile'] == 'off'


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_check_prints_which_speed_settings_are_on(script, capsys):
    utils.run_cli(ENTRYPOINTS[script], [*DIGITS, *MEMORY, '+trainer_params.benchmark=true',
                                        '+train_wrapper.args.model_spec.channels_last=true',
                                        '--check'])
    out = capsys.readouterr().out
    for line in ('compile: off', 'channels_last: on', 'tf32: off', 'cudnn.benchmark: on',
                 'loader: memory'):
        assert f'\n{line}\n' in out, out
    assert re.search(r'^precision: 32', out, re.M)


def test_channels_last_and_compile_keep_the_state_dict_keys():
    spec = {'name': 'convnet', 'args': {'num_classes': 10}}
    plain = models.make(spec)
    fast = models.make({**spec, 'channels_last': True, 'compile': {'dynamic': False}})
    conv = next(p for p in fast.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert fast.state_dict().keys() == plain.state_dict().keys()  # no _orig_mod. prefix
    with pytest.raises(utils.ConfigError, match=r"compile.mood: unknown argument 'mood' for "
                                                r"torch.compile; did you mean 'mode'"):
        models.make({**spec, 'compile': {'mood': 'max-autotune'}})


@pytest.mark.slow
@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_compiled_run_logs_its_first_step_apart(tmp_path, script):
    """A real command line with torch.compile on the CPU (inductor's C++ backend)."""
    result = run_command(script, *DIGITS, *SHRINK, 'trainer_params.max_epochs=1', '+test=false',
                         '+train_wrapper.args.model_spec.compile=true',
                         '--save-dir', str(tmp_path), '--name', 'compiled')
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / 'compiled' / 'log.txt').read_text()
    launch, step = map(float, re.search(r'^first step: ([\d.]+) s after launch \(the step itself '
                                        r'([\d.]+) s\)$', log, re.M).groups())
    assert 0 < step < launch
    state = torch.load(tmp_path / 'compiled' / 'ckpt' / 'last.ckpt', weights_only=True)
    assert not [k for k in state['state_dict'] if '_orig_mod' in k]
    assert len(scalars(tmp_path / 'compiled', 'val/loss')) == 1


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_first_step_line_once_per_run(train, script):
    run = train(*DIGITS, *SHRINK, name='timed', script=script)
    train('--resume', str(run), 'trainer_params.max_epochs=3', script=script)
    lines = [line for line in (run / 'log.txt').read_text().splitlines()
             if line.startswith('first step: ')]
    assert len(lines) == 2  # the start and the resume, each once


@pytest.mark.slow
def test_memory_loader_under_ddp_matches_one_process(tmp_path):
    """Two torchrun processes of 32 samples from their own shard against one process of 64:
    the same global batches, so the same validation curve."""
    common = [*DIGITS, *MEMORY, 'trainer_params.max_epochs=4', '+test=false',
              '--save-dir', str(tmp_path)]
    ddp = run_command('-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
                      'train.py', *common, '--name', 'ddp', 'data_module.args.batch_size=32')
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_command('train.py', *common, '--name', 'single')
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = scalars(tmp_path / 'ddp', 'val/acc'), scalars(tmp_path / 'single', 'val/acc')
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) == 4
    assert all(abs(x - y) < 0.03 for (_, x), (_, y) in zip(a, b)) and a[-1][1] > 0.85
