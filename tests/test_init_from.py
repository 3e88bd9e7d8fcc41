"""`init_from` in a model spec: a run starts from the weights of an earlier one, whichever
entrypoint trained either of them."""
import re
import shutil

import pytest
import torch

import models
import utils
from conftest import ENTRYPOINTS, SHRINK, tree
from models.lightning import TaskModule

DIGITS = ['--config', 'configs/digits.yaml']
INIT = '+train_wrapper.args.model_spec.init_from'
# A learning rate of 0 (Adam steps by lr * m / sqrt(v): exactly nothing): the weights a run
# ends with are the ones it started from.
FROZEN = 'train_wrapper.args.optim_spec.args.lr=0'


def weights(ckpt):
    """The model's weights in a checkpoint of either entrypoint, without the 'model.' prefix."""
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    return {k.removeprefix('model.'): v for k, v in state.items()}


def assert_equal(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('first, second', [('train_pl.py', 'train_pl.py'),
                                           ('train_pl.py', 'train.py'),
                                           ('train.py', 'train_pl.py')])
def test_second_run_starts_from_the_first_runs_final_weights(train, first, second):
    hidden = 'train_wrapper.args.model_spec.args.hidden=[32]'
    old = train(*DIGITS, *SHRINK, hidden, name='old', script=first)
    new = train(*DIGITS, *SHRINK, hidden, FROZEN, f'{INIT}={old}', name='new', script=second)
    assert_equal(weights(new / 'ckpt' / 'last.ckpt'), weights(old / 'ckpt' / 'last.ckpt'))
    # the model as both entrypoints build it, before any training
    cfg = utils.load_config(new / 'config.yaml')
    assert cfg['train_wrapper']['args']['model_spec']['init_from'] == str(old)
    wrapper = models.wrappers.make(cfg['train_wrapper'])
    assert_equal(wrapper.model.state_dict(), weights(old / 'ckpt' / 'last.ckpt'))
    # without init_from the same seed starts elsewhere: the check above can fail
    del cfg['train_wrapper']['args']['model_spec']['init_from']
    fresh = models.make(cfg['train_wrapper']['args']['model_spec'])
    assert not torch.equal(fresh.state_dict()['net.1.weight'],
                           weights(old / 'ckpt' / 'last.ckpt')['net.1.weight'])


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_resumed_run_needs_not_the_run_it_started_from(train, script):
    old = train(*DIGITS, *SHRINK, name='old', script=script)
    new = train(*DIGITS, *SHRINK, f'{INIT}={old}', name='new', script=script)
    shutil.rmtree(old)  # its weights are in new's checkpoints by now
    module = TaskModule.load_from_checkpoint(new / 'ckpt' / 'last.ckpt')  # no YAML, no old run
    assert_equal(module.task.model.state_dict(), weights(new / 'ckpt' / 'last.ckpt'))
    assert_equal(models.load_task(new / 'ckpt' / 'last.ckpt').model.state_dict(),
                 weights(new / 'ckpt' / 'last.ckpt'))
    train('--resume', str(new), 'trainer_params.max_epochs=3', script=script)
    assert 'epoch 3/3' in (new / 'log.txt').read_text()


def test_init_from_a_checkpoint_file(train):
    old = train(*DIGITS, *SHRINK)
    best = next(p for p in (old / 'ckpt').iterdir() if p.name.startswith('epoch='))
    new = train(*DIGITS, *SHRINK, FROZEN, f'{INIT}={best}', name='new', script='train.py')
    assert_equal(weights(new / 'ckpt' / 'last.ckpt'), weights(best))


def test_partial_match_loads_what_fits_and_warns_once(train, capsys):
    # hidden [32, 10]: net.1 64->32, net.4 32->10, net.7 10->10 (10 = num_classes, so fewer or
    # more hidden layers of 10 keep every shared layer's shape)
    old = train(*DIGITS, *SHRINK, 'train_wrapper.args.model_spec.args.hidden=[32,10]')
    capsys.readouterr()
    ckpt = old / 'ckpt' / 'last.ckpt'
    for hidden, n_shared, counts, names in (
            ([32], 4, 'loaded 4 of 4 tensors of MLP; 2 unexpected', 'net.7.'),
            ([32, 10, 10], 6, 'loaded 6 of 8 tensors of MLP; 2 missing', 'net.10.')):
        spec = {'name': 'mlp', 'args': {'hidden': hidden}, 'init_from': str(old)}
        model = models.make(spec)
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f'warning: init_from {ckpt}: {counts}')
        assert f'({names}weight, {names}bias)' in lines[0]
        shared = {k: v for k, v in weights(ckpt).items() if k in model.state_dict()}
        assert len(shared) == n_shared
        assert all(torch.equal(model.state_dict()[k], v) for k, v in shared.items())
    # through an entrypoint: --check builds the model as a run would
    train(*DIGITS, *SHRINK, 'train_wrapper.args.model_spec.args.hidden=[32]', f'{INIT}={old}',
          '--check', name='check', script='train.py')
    assert 'warning: init_from' in capsys.readouterr().err


def test_the_wrapper_prefix_that_fits_is_chosen(tmp_path, capsys):
    """A GAN wrapper's checkpoint holds generator.* and discriminator.*: each model finds its
    own."""
    small = models.make({'name': 'mlp', 'args': {'hidden': [8]}})
    large = models.make({'name': 'mlp', 'args': {'hidden': [16]}})
    state = {**{f'generator.{k}': v for k, v in small.state_dict().items()},
             **{f'discriminator.{k}': v for k, v in large.state_dict().items()}}
    torch.save({'state_dict': state}, tmp_path / 'gan.ckpt')
    for hidden, source in (([8], small), ([16], large)):
        model = models.make({'name': 'mlp', 'args': {'hidden': hidden},
                             'init_from': str(tmp_path / 'gan.ckpt')})
        assert_equal(model.state_dict(), source.state_dict())
    # and a bare state dict, as torch.save(model.state_dict()) writes it, has no prefix at all
    torch.save(small.state_dict(), tmp_path / 'bare.pt')
    model = models.make({'name': 'mlp', 'args': {'hidden': [8]},
                         'init_from': str(tmp_path / 'bare.pt')})
    assert_equal(model.state_dict(), small.state_dict())
    assert capsys.readouterr().err == ''  # everything fit: no warning


KEY = r"error: override '\+?train_wrapper\.args\.model_spec\.init_from=[^']*'"
ERRORS = [
    ('no such run', [f'{INIT}={{save}}/nope'],
     rf'^{KEY}: no such run folder or checkpoint file: {{save}}/nope$'),
    ('run without checkpoint', [f'{INIT}={{save}}/nockpt'],
     rf'^{KEY}: no checkpoint at {{save}}/nockpt/ckpt/last.ckpt$'),
    ('not a checkpoint', [f'{INIT}={{save}}/junk.ckpt'],
     rf'^{KEY}: cannot load {{save}}/junk.ckpt \(not a torch checkpoint: '),
    ('pickled objects', [f'{INIT}={{save}}/unsafe.ckpt'],
     rf'^{KEY}: cannot load {{save}}/unsafe.ckpt \(it holds a pathlib.PosixPath, which loading '
     r'with weights_only=True refuses\)$'),
    ('nothing fits', [f'{INIT}={{save}}/old', 'train_wrapper.args.model_spec.name=lenet5',
                      '~train_wrapper.args.model_spec.args.in_dim',
                      '~train_wrapper.args.model_spec.args.hidden'],
     rf'^{KEY}: no weights in {{save}}/old/ckpt/last.ckpt fit LeNet5 \(its keys: '
     r'features.0.weight, features.0.bias, features.3.weight, ...; the checkpoint\'s: '
     r'model.net.1.weight, model.net.1.bias, model.net.4.weight, ...\)$'),
    ('shape mismatch', [f'{INIT}={{save}}/old', 'train_wrapper.args.model_spec.args.hidden=[64]'],
     rf'^{KEY}: {{save}}/old/ckpt/last.ckpt: 3 tensors have another shape \(net.1.weight '
     r'\[32, 64\] in the file, \[64, 64\] in the model, net.1.bias \[32\] in the file, \[64\] '
     r'in the model, ...\); leave them out with exclude: \[patterns\], or skip them with '
     r'strict: false$'),
]


@pytest.fixture(scope='module')
def save(tmp_path_factory):
    """A finished run `old` (hidden [32]), a run folder without checkpoints, a file that is not
    a checkpoint and one that pickles more than tensors."""
    save = tmp_path_factory.mktemp('init') / 'save'
    utils.run_cli(ENTRYPOINTS['train.py'], [*DIGITS, *SHRINK, '--save-dir', str(save),
                                            '--name', 'old',
                                            'train_wrapper.args.model_spec.args.hidden=[32]'])
    (save / 'nockpt').mkdir()
    (save / 'junk.ckpt').write_text('not a checkpoint')
    torch.save({'state_dict': {}, 'where': save}, save / 'unsafe.ckpt')
    return save


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('case, overrides, message', ERRORS, ids=[c[0] for c in ERRORS])
def test_mistake_is_one_line_exit_2_and_nothing_written(script, case, overrides, message, save,
                                                       capsys):
    before = tree(save)
    argv = [*DIGITS, *SHRINK, *(o.replace('{save}', str(save)) for o in overrides),
            '--save-dir', str(save), '--name', 'new']
    with pytest.raises(SystemExit) as info:
        utils.run_cli(ENTRYPOINTS[script], argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(message.replace('{save}', re.escape(str(save))), err), err
    assert tree(save) == before
