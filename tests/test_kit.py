"""The research kit on both entrypoints: warmup and chained lr schedules, schedules that know
the run's length, parameter groups and freezing, fine-tuning from a plain state_dict, and the
character-level language model."""
import math
import re
import shlex
import subprocess
import sys

import pytest
import torch
import torchvision

import models
import utils
from conftest import ENTRYPOINTS, ROOT, SHRINK, run_command, scalars
from models.optim import make_optimizer, make_scheduler

DIGITS = ['--config', 'configs/digits.yaml']
QUIET = ['+trainer_params.enable_progress_bar=false', '+trainer_params.enable_model_summary=false',
         '+test=false']


def recorded(path):
    return [float(line) for line in path.read_text().split()]


def closed_warmup_cosine(s, base, warmup, total, start=0.01, floor=0.0):
    if s < warmup:
        return base * (start + (1 - start) * s / warmup)
    p = min(1.0, (s - warmup) / (total - warmup))
    return base * (floor + (1 - floor) * (1 + math.cos(math.pi * p)) / 2)


def closed_sequential(s, base):
    """LinearLR from 0.1 x lr over 3 steps, then a cosine of T_max 5 from lr."""
    if s < 3:
        return base * (0.1 + 0.9 * s / 3)
    return base * (1 + math.cos(math.pi * (s - 3) / 5)) / 2


SCHEDULES = {
    'warmup_cosine': ('{name: warmup_cosine, args: {warmup: 3, total: "${run.total_steps}"}, '
                      'interval: step}',
                      lambda s: closed_warmup_cosine(s, 0.01, 3, 8)),
    'SequentialLR': ('{name: SequentialLR, args: {milestones: [3], schedulers: ['
                     '{name: LinearLR, args: {start_factor: 0.1, total_iters: 3}}, '
                     '{name: CosineAnnealingLR, args: {T_max: 5}}]}, interval: step}',
                     lambda s: closed_sequential(s, 0.01))}


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('schedule', SCHEDULES)
def test_lr_curves_equal_the_closed_form_at_every_step(schedule, script, train, tmp_path):
    spec, closed = SCHEDULES[schedule]
    record = tmp_path / 'lrs.txt'
    run = train(*DIGITS, *QUIET, 'trainer_params.max_epochs=2',
                '+trainer_params.limit_train_batches=4', 'train_wrapper.name=tests.tasks.LrRecorder',
                f'+train_wrapper.args.record={record}', f'train_wrapper.args.sched_spec={spec}',
                script=script)
    lrs = recorded(record)
    assert len(lrs) == 8  # 2 epochs of 4 steps
    assert lrs == pytest.approx([closed(s) for s in range(8)], rel=1e-9, abs=1e-12)
    assert lrs[0] < lrs[2] and lrs[-1] < lrs[3]  # it warms up, then decays: not flat
    if schedule == 'warmup_cosine':  # ${run.total_steps}, as the run folder records it
        saved = utils.load_config(run / 'config.yaml')['train_wrapper']['args']['sched_spec']
        assert saved['args']['total'] == 8


def test_run_lengths_count_optimizer_steps():
    lengths = models.optim.run_lengths
    assert lengths(10, {'max_epochs': 2}) == {'steps_per_epoch': 10, 'total_steps': 20}
    assert lengths(10, {'max_epochs': 2, 'accumulate_grad_batches': 3}) == \
        {'steps_per_epoch': 4, 'total_steps': 8}  # the short last accumulation steps too
    assert lengths(10, {'max_epochs': 3, 'limit_train_batches': 0.5})['total_steps'] == 15
    assert lengths(10, {'max_epochs': 3, 'limit_train_batches': 4})['total_steps'] == 12
    assert lengths(10, {'max_epochs': 3, 'max_steps': 7})['total_steps'] == 7
    assert lengths(10, {'max_epochs': -1, 'max_steps': 7})['total_steps'] == 7


@pytest.mark.slow
@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_total_steps_with_accumulation_and_two_ranks_ends_one_cycle_at_its_final_lr(
        script, tmp_path):
    """digits' 1257 train images over 2 ranks: 629 each, 10 batches of 64, 5 optimizer steps
    an epoch with accumulate_grad_batches 2, 10 in 2 epochs."""
    from test_distributed import torchrun
    record = tmp_path / 'lrs.txt'
    result = run_command(
        *torchrun(), script, *DIGITS, *QUIET, 'trainer_params.max_epochs=2',
        '+trainer_params.accumulate_grad_batches=2', 'train_wrapper.name=tests.tasks.LrRecorder',
        f'+train_wrapper.args.record={record}',
        'train_wrapper.args.sched_spec={name: OneCycleLR, args: {max_lr: 0.01, total_steps: '
        '"${run.total_steps}"}, interval: step}', '--name', 'run', '--save-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'warning: OneCycleLR' not in result.stderr
    saved = utils.load_config(tmp_path / 'run' / 'config.yaml')
    assert saved['train_wrapper']['args']['sched_spec']['args']['total_steps'] == 10
    assert torch.load(tmp_path / 'run' / 'ckpt' / 'last.ckpt',
                      weights_only=True)['global_step'] == 10
    lrs = recorded(record)  # both ranks, every micro-batch: the same lrs, in pairs
    assert len(lrs) == 2 * 2 * 10
    final = 0.01 / 25 / 1e4  # max_lr / div_factor / final_div_factor
    assert min(lrs) == pytest.approx(final) and sorted(lrs)[:4] == pytest.approx([final] * 4)


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_schedule_shorter_than_the_run_is_a_warning(script, train, capsys):
    train(*DIGITS, *SHRINK, '--check', 'train_wrapper.args.sched_spec={name: CosineAnnealingLR, '
          'args: {T_max: 3}, interval: step}', script=script)
    assert 'warning: CosineAnnealingLR lasts 3 optimizer steps, but the run takes 8: set its ' \
           'T_max to ${run.total_steps}' in capsys.readouterr().err


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_resume_says_the_schedule_is_kept_and_when_nothing_is_left(script, train, capsys):
    run = train(*DIGITS, *SHRINK, *QUIET, script=script)
    capsys.readouterr()
    train('--resume', str(run), *QUIET, script=script)
    assert 'note: the run has done 2 epochs of trainer_params.max_epochs 2 already: nothing ' \
           'to train' in capsys.readouterr().err
    train('--resume', str(run), *QUIET, 'trainer_params.max_epochs=3', script=script)
    err = capsys.readouterr().err
    assert 'note: trainer_params.max_epochs is 3 now, 2 before: the lr schedules ' \
           '(CosineAnnealingLR) go on as saved' in err


def mlp_task(optim_spec):
    return models.make_task({'name': 'base', 'args': {
        'model_spec': {'name': 'mlp', 'args': {'in_dim': 64, 'hidden': [32], 'num_classes': 10}},
        'loss_spec': {'name': 'cross_entropy'}, 'optim_spec': optim_spec}})


def test_param_groups_set_lr_and_weight_decay_per_group():
    task = mlp_task({'name': 'SGD', 'args': {'lr': 0.1, 'weight_decay': 0.01},
                     'no_decay': True, 'param_groups': [{'pattern': 'net.4.*', 'lr_mult': 0.5}]})
    (optimizer, _), = task.configure_optimizers()
    groups = {g['name']: ({id(p) for p in g['params']}, g['lr'], g['weight_decay'])
              for g in optimizer.param_groups}
    params = dict(task.named_parameters())
    assert groups == {
        'default': ({id(params['model.net.1.weight'])}, 0.1, 0.01),
        'default/no_decay': ({id(params['model.net.1.bias'])}, 0.1, 0.0),
        'net.4.*': ({id(params['model.net.4.weight'])}, 0.05, 0.01),
        'net.4.*/no_decay': ({id(params['model.net.4.bias'])}, 0.05, 0.0)}


@pytest.mark.parametrize('spec, key, message', [
    ({'freeze': ['nett.*']}, 'freeze.0', "'nett.*' matches no parameter"),
    ({'param_groups': [{'pattern': 'head.*', 'lr_mult': 0.1}]}, 'param_groups.0.pattern',
     "'head.*' matches no parameter"),
    ({'param_groups': [{'pattern': 'net.*', 'lr_mul': 0.1}]}, 'param_groups.0.lr_mul',
     "unknown key; did you mean 'lr_mult'?"),
    ({'no_decay': 'yes'}, 'no_decay', 'must be a list of name patterns'),
    ({'freeze': ['*']}, 'freeze', 'freezes every parameter')])
def test_a_group_mistake_names_its_key(spec, key, message):
    task = mlp_task({'name': 'SGD', 'args': {'lr': 0.1}, **spec})
    with pytest.raises(utils.ConfigError) as info:
        task.configure_optimizers()
    assert str(info.value).startswith(f'optim_spec.{key}: {message}')


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_frozen_weights_are_bit_unchanged_and_check_prints_the_groups(script, train, capsys):
    start = train(*DIGITS, *SHRINK, *QUIET, name='start', script=script)
    argv = [*DIGITS, *SHRINK, *QUIET, f'+train_wrapper.args.model_spec.init_from={start}',
            "+train_wrapper.args.optim_spec.freeze=['net.1.*']",
            '+train_wrapper.args.optim_spec.no_decay=true']
    train(*argv, '--check', script=script)
    assert re.search(r'param groups: default: 1 tensors, 2,560 values, lr [\d.]+, weight_decay '
                     r'0; default/no_decay: 1 tensors, 10 values, lr [\d.]+, weight_decay 0; '
                     r'frozen: 2 tensors, 16,640 values', capsys.readouterr().out)
    run = train(*argv, name='frozen', script=script)
    before = torch.load(start / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    after = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    for name in ('model.net.1.weight', 'model.net.1.bias'):
        assert torch.equal(before[name], after[name])
    assert not torch.equal(before['model.net.4.weight'], after['model.net.4.weight'])


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_1000_class_state_dict_loads_into_a_10_class_head(script, train, tmp_path, capsys):
    """torchvision's resnet18 weights file (random here: nothing is downloaded), loaded by
    dotted path into a 10-class model; lr 0, so the weights the run ends with are the file's."""
    weights = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    spec = ('{name: torchvision.models.resnet18, args: {num_classes: 10}, '
            f"init_from: {{path: '{weights}', exclude: ['fc.*']}}}}")
    run = train('--config', 'configs/cifar10-resnet18.yaml', *SHRINK, *QUIET,
                'data_module={name: synthetic, args: {shape: [3, 32, 32], num_classes: 10, '
                'batch_size: 4}}', f'train_wrapper.args.model_spec={spec}',
                'train_wrapper.args.optim_spec.args.lr=0', '~train_wrapper.args.optim_spec.args.weight_decay',
                script=script)
    assert 'warning' not in capsys.readouterr().err  # fc.* left out on purpose: nothing to say
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    file = torch.load(weights, weights_only=True)
    assert state['model.fc.weight'].shape == (10, 512)
    assert all(torch.equal(state[f'model.{k}'], v) for k, v in file.items()
               if 'fc.' not in k and 'running' not in k and 'num_batches' not in k)


def test_init_from_strict_false_skips_other_shapes_in_one_warning(tmp_path, capsys):
    weights = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    spec = {'name': 'torchvision.models.resnet18', 'args': {'num_classes': 10}}
    with pytest.raises(utils.ConfigError, match='2 tensors have another shape .*exclude'):
        models.make({**spec, 'init_from': str(weights)})
    model = models.make({**spec, 'init_from': {'path': str(weights), 'strict': False}})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'loaded 120 of 122 tensors of ResNet; 2 of another shape skipped ' \
        '(fc.weight [1000, 512] in the file, [10, 512] in the model' in err[0]
    assert torch.equal(model.conv1.weight, torch.load(weights)['conv1.weight'])


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_ema_is_validated_tested_and_used_by_init_from(script, train):
    run = train(*DIGITS, *SHRINK, '+train_wrapper.ema={decay: 0.5}',
                '+callbacks=[{name: metrics_csv}]', script=script)
    state = torch.load(run / 'ckpt' / 'last.ckpt', weights_only=True)['state_dict']
    raw, averaged = state['model.net.1.weight'], state['ema.module.model.net.1.weight']
    assert not torch.equal(raw, averaged)
    header = (run / 'metrics.csv').read_text().splitlines()[0].split(',')
    assert {'val/acc', 'val_raw/acc', 'test/acc', 'test_raw/acc'} <= set(header)
    assert len(scalars(run, 'val_raw/loss')) == 2
    # the averaged weights are what the checkpoint's task evaluates and init_from takes
    task = models.load_task(run / 'ckpt' / 'last.ckpt')
    assert torch.equal(models.ema.averaged(task).model.net[1].weight, averaged)
    model = models.make({'name': 'mlp', 'args': {'in_dim': 64, 'hidden': [256],
                                                 'num_classes': 10}, 'init_from': str(run)})
    assert torch.equal(model.net[1].weight, averaged)


def test_ema_follows_the_closed_form():
    task = mlp_task({'name': 'SGD', 'args': {'lr': 0.1}})
    task = models.ema.attach(task, {'decay': 0.9})
    w0 = task.model.net[1].weight.detach().clone()
    with torch.no_grad():
        task.model.net[1].weight.add_(1.0)
    task.ema.update(task)
    assert torch.allclose(task.ema.module.model.net[1].weight, w0 + 0.1)
    with pytest.raises(utils.ConfigError, match='decay: must be a number between 0 and 1'):
        models.ema.attach(mlp_task({'name': 'SGD'}), {'decay': 1.5})


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_chars_lm_trains_two_epochs_and_its_perplexity_drops(script, train):
    run = train('--config', 'configs/chars-lm.yaml', 'trainer_params.max_epochs=2',
                '+trainer_params.limit_train_batches=12', '+trainer_params.limit_val_batches=4',
                '+trainer_params.limit_test_batches=2', *QUIET[:2],
                '+callbacks=[{name: metrics_csv}]', script=script)
    ppl = [v for _, v in scalars(run, 'val/ppl')]
    loss = [v for _, v in scalars(run, 'val/loss')]
    assert len(ppl) == 2 and ppl[1] < ppl[0] < 256  # uniform over bytes: 256
    assert ppl[1] == pytest.approx(math.exp(loss[1]), rel=1e-4)  # per token, not per batch
    log = (run / 'log.txt').read_text()
    samples = re.findall(r"^epoch (\d) sample: '(def .*)'$", log, flags=re.M)
    assert [e for e, _ in samples] == ['1', '2'] and len(samples[1][1]) > 100
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    texts = []
    for path in run.glob('events.out.tfevents.*'):
        events = EventAccumulator(str(path), size_guidance={'tensors': 0})
        events.Reload()
        texts += [e.step for e in events.Tensors('sample/text_summary')] \
            if 'sample/text_summary' in events.Tags()['tensors'] else []
    assert sorted(texts) == [1, 2]


def test_chars_splits_share_no_text():
    import datasets
    data = datasets.make({'name': 'chars', 'args': {'block_size': 32}})
    data.setup()
    x, y = data.splits['train'][0]
    assert x.dtype == torch.long and torch.equal(x[1:], y[:-1])  # y is x one byte on
    first = {split: bytes(data.splits[split][0][0].tolist()) for split in ('train', 'val', 'test')}
    assert len(set(first.values())) == 3
    assert {len(data.splits[s]) > 0 for s in ('train', 'val', 'test')} == {True}


RECIPES = ROOT.joinpath('README.md').read_text().split('### Training recipes')[1] \
    .split('```bash\n')[1].split('```')[0].strip().splitlines()


def test_the_readme_has_a_recipe_command_for_each_part():
    assert len(RECIPES) == 7
    for part in ('warmup_cosine', 'SequentialLR', 'param_groups', 'ema', 'exclude',
                 'chars-lm.yaml'):
        assert any(part in line for line in RECIPES), part


@pytest.mark.slow
def test_the_readme_recipes_run_as_written(tmp_path):
    """Each line, as a user pastes it in the project's folder (here a folder with the
    project's configs and an empty load/), shrunk to a few batches."""
    (tmp_path / 'configs').symlink_to(ROOT / 'configs')
    (tmp_path / 'load').mkdir()
    shrink = ['trainer_params.max_epochs=1', '+trainer_params.limit_train_batches=3',
              '+trainer_params.limit_val_batches=2', '+trainer_params.limit_test_batches=2',
              '+trainer_params.enable_progress_bar=false', '--save-dir', str(tmp_path / 'save')]
    for line in RECIPES:
        words = shlex.split(line.split('   #')[0])
        assert words[0] == 'python'  # the venv's, activated
        if words[1] == '-c':
            argv = words[1:]
        else:
            argv = [str(ROOT / words[1]), *words[2:], *shrink]
        result = subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True,
                                text=True)
        assert result.returncode == 0, (line, result.stderr[-2000:])
        if words[1] != '-c':
            name = words[words.index('--name') + 1]
            assert (tmp_path / 'save' / name / 'ckpt' / 'last.ckpt').is_file()
