"""The airbench model: whitening fit once from data, flip TTA, channels-last and compile, and
configs/cifar10-fast.yaml."""
import copy
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import models
import utils
from conftest import ROOT
from models.optim import make_optimizer, make_scheduler

SMALL = {'widths': [8, 16, 16]}  # the real layers, narrow: fast on a CPU
IDENTITY = torch.eye(12).reshape(12, 3, 2, 2)  # filters that copy a 2x2 patch of 3 channels


def airbench(**args):
    return models.make({'name': 'airbench', 'args': {**SMALL, **args}})


def correlated_images(n=16, seed=0):
    """Normalised-looking images whose 2x2 patches are far from white: neighbouring pixels
    alike (blurred noise) and the three channels mostly one signal, plus independent noise so
    that no direction of the patches has a variance near whiten_eps."""
    g = torch.Generator().manual_seed(seed)
    shared = F.avg_pool2d(torch.randn(n, 1, 34, 34, generator=g), 3, stride=1)
    own = torch.randn(n, 3, 32, 32, generator=g)
    return 3 * shared + 0.5 * own + torch.tensor([0.5, -0.2, 0.1])[:, None, None]


def response_covariance(x, filters=IDENTITY):
    """The second moment of the filters' responses to the 2x2 patches of x (by default the
    patches themselves)."""
    z = F.conv2d(x, filters).transpose(0, 1).flatten(1)  # (filter, every patch)
    return z @ z.T / z.shape[1]


def test_first_training_batch_fits_filters_that_whiten_its_patches():
    model = airbench()
    x = correlated_images()
    raw = response_covariance(x)
    assert (raw - torch.eye(12)).abs().max() > 0.5  # far from white to begin with
    assert not model.whiten.whitened
    model(x)
    weight = model.whiten.weight
    assert bool(model.whiten.whitened) and weight.shape == (24, 3, 2, 2)
    torch.testing.assert_close(weight[12:], -weight[:12])  # each filter and its negation
    # The responses are uncorrelated with unit variance, but for whiten_eps: a component of
    # variance v comes out with v / (v + eps), largest first.
    variances = torch.linalg.eigvalsh(raw).flip(0)
    whitened = response_covariance(x, weight[:12])
    torch.testing.assert_close(whitened, torch.diag(variances / (variances + 5e-4)),
                               atol=1e-4, rtol=0)
    assert (whitened - torch.eye(12)).abs().max() < 3e-3
    # frozen: a buffer, so neither the optimizer nor a gradient check sees it
    assert all(p is not weight for p in model.parameters())
    assert 'whiten.weight' in model.state_dict() and 'whiten.whitened' in model.state_dict()


def test_second_forward_does_not_fit_again():
    model = airbench()
    model(correlated_images(seed=0))
    fitted = model.whiten.weight.clone()
    model(3 * torch.randn(16, 3, 32, 32))  # other statistics altogether
    assert torch.equal(model.whiten.weight, fitted)


def test_loaded_model_keeps_the_saved_filters(tmp_path):
    trained = airbench()
    trained(correlated_images(seed=0))
    path = tmp_path / 'model.pt'
    torch.save(trained.state_dict(), path)  # as a checkpoint holds it: tensors only
    fresh = airbench()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    fresh(correlated_images(seed=1) * 5)  # a training forward on other data
    assert torch.equal(fresh.whiten.weight, trained.whiten.weight)


def test_eval_forwards_before_training_use_the_untrained_filters():
    model = airbench()
    untrained = model.whiten.weight.clone()
    model.eval()
    with torch.no_grad():
        model(correlated_images())
    assert torch.equal(model.whiten.weight, untrained) and not model.whiten.whitened
    model.train()
    model(correlated_images())
    assert not torch.equal(model.whiten.weight, untrained) and model.whiten.whitened


def trained_a_little(**args):
    torch.manual_seed(0)
    model = airbench(**args)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for seed in range(3):  # non-zero BN biases and running statistics, asymmetric filters
        x = correlated_images(seed=seed)
        F.cross_entropy(model(x), torch.arange(16) % 10).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def test_tta_averages_the_image_and_its_mirror_in_eval_mode_only():
    tta = trained_a_little()
    plain = airbench(tta=False)
    plain.load_state_dict(tta.state_dict())
    plain.eval()
    x = correlated_images(n=4, seed=9)
    with torch.no_grad():
        one, mirrored, averaged = plain(x), plain(x.flip(-1)), tta(x)
    assert (one - mirrored).abs().max() > 1e-3  # the two views disagree: the test can tell
    torch.testing.assert_close(averaged, (one + mirrored) / 2)
    torch.testing.assert_close(tta(x.flip(-1)), averaged)  # mirror-invariant
    tta.train()
    plain.train()
    torch.testing.assert_close(tta(x), plain(x))  # training forwards are plain


def compare_to_eager(transform):
    eager = airbench()
    other = transform(copy.deepcopy(eager))
    first = correlated_images(seed=0).to(memory_format=torch.channels_last)
    second = correlated_images(seed=1)
    # the first training forward fits the whitening inside whatever `transform` did
    for x in (first, second):
        torch.testing.assert_close(other(x), eager(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(other.whiten.weight, eager.whiten.weight)
    loss = other(second).logsumexp(-1).mean()
    loss.backward()
    eager(second).logsumexp(-1).mean().backward()
    for (name, p), q in zip(other.named_parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-3, msg=name)
    other.eval()
    eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(second), eager(second), atol=1e-4, rtol=1e-4)
    return other


def test_channels_last_gives_the_eager_logits():
    model = compare_to_eager(lambda m: m.to(memory_format=torch.channels_last))
    assert model.whiten.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_compile_gives_the_eager_logits_and_fits_outside_the_graph():
    torch._dynamo.reset()

    def compiled(model):
        model = model.to(memory_format=torch.channels_last)
        model.compile()
        return model

    model = compare_to_eager(compiled)
    assert model.whiten.fitted


def test_one_sgd_step_with_the_configs_optimizer_lowers_the_loss(fast_config):
    args = fast_config['train_wrapper']['args']
    torch.manual_seed(0)
    model = airbench()
    loss_fn = torch.nn.CrossEntropyLoss(**args['loss_spec']['args'])
    optimizer = make_optimizer(args['optim_spec'], model.parameters())
    scheduler = make_scheduler(args['sched_spec'], optimizer)['scheduler']  # its first lr
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    before = loss_fn(model(x), y)
    whitening = model.whiten.weight.clone()
    before.backward()
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        after = loss_fn(model(x), y)
    assert after < before - 0.01, (before.item(), after.item())
    assert torch.equal(model.whiten.weight, whitening)  # weight decay and steps pass it by


def test_bn_bias_learns_bias_lr_scale_times_faster_under_sgd():
    x = correlated_images()
    steps = {}
    for scale in (1.0, 64.0):
        torch.manual_seed(0)
        model = airbench(bias_lr_scale=scale)
        bn = model.features[1][2]
        model(x).logsumexp(-1).mean().backward()
        torch.optim.SGD(model.parameters(), lr=1e-3).step()
        steps[scale] = bn.bias_multiplier * bn.raw_bias.detach()  # the bias the BN adds
    torch.testing.assert_close(steps[64.0], 64 * steps[1.0])
    assert steps[1.0].abs().max() > 0


def whiten_on_rank(rank, init_file, batches, out):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        model = airbench()
        model(batches[rank])
        out[rank] = model.whiten.weight.clone()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_fit_the_same_filters_from_their_pooled_patches(tmp_path):
    batches = [correlated_images(n=8, seed=0), 3 * correlated_images(n=8, seed=1)]
    out = mp.get_context('spawn').Manager().dict()
    mp.spawn(whiten_on_rank, args=(str(tmp_path / 'init'), batches, out), nprocs=2)
    assert torch.equal(out[0], out[1])
    alone = airbench()
    alone(batches[0])
    both = airbench()
    both(torch.cat(batches))  # equal halves: the mean of the two covariances
    torch.testing.assert_close(out[0], both.whiten.weight, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out[0], alone.whiten.weight, atol=1e-2)


# ---------------------------------------------------------------- configs/cifar10-fast.yaml

@pytest.fixture
def fast_config():
    """The config as the engines run it: ${run.total_steps} from its data's size (45000 train
    images in batches of 1024: 44 an epoch)."""
    cfg = utils.load_config(ROOT / 'configs/cifar10-fast.yaml')
    data = cfg['data_module']['args']
    batches = math.ceil((50000 - data['val_size']) / data['batch_size'])
    return utils.resolve_run_values(cfg, models.optim.run_lengths(batches, cfg['trainer_params']))


def test_fast_config_model_spec_builds_with_compile_off(fast_config):
    spec = {**fast_config['train_wrapper']['args']['model_spec'], 'compile': False}
    model = models.make(spec)
    assert model.whiten.weight.shape == (24, 3, 2, 2)
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == \
        [64, 64, 256, 256, 256, 256]
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and model.whiten.whitened


def test_fast_config_schedule_lasts_the_run_and_follows_airbench(fast_config):
    args = fast_config['train_wrapper']['args']
    data = fast_config['data_module']['args']
    peak = args['optim_spec']['args']['lr']
    steps = math.ceil((50000 - data['val_size']) / data['batch_size']) * \
        fast_config['trainer_params']['max_epochs']
    optimizer = make_optimizer(args['optim_spec'], [torch.zeros(1, requires_grad=True)])
    scheduler = make_scheduler(args['sched_spec'], optimizer)
    assert scheduler['interval'] == 'step'
    lrs = []
    for _ in range(steps):  # OneCycleLR raises when stepped past its total: the run must fit
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler['scheduler'].step()
    top = max(range(steps), key=lrs.__getitem__)
    assert lrs[0] == pytest.approx(0.2 * peak)
    assert lrs[top] == pytest.approx(peak, rel=0.01) and 0.2 < top / steps < 0.25
    assert lrs[-1] == pytest.approx(0.07 * peak, rel=0.02)
    assert optimizer.param_groups[0]['momentum'] == 0.85  # not cycled by OneCycleLR
