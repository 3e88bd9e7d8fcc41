import pytest
import torch
import torch.nn as nn

import models
import utils


@pytest.mark.parametrize('name', models.list())
def test_every_model_meets_the_model_contract(name):
    """models/__init__.py: built from its defaults, a model takes a batch of `input_shape`
    and trains; one that takes `num_classes` returns that many logits."""
    model = models.make({'name': name})
    x = example(model)
    out = model(x)
    assert len(out) == 4 and torch.isfinite(out).all()
    out.float().square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()
               if p.requires_grad)
    if 'num_classes' in (utils.accepted_args(models.registry.get(name)) or {}):
        model = models.make({'name': name, 'args': {'num_classes': 7}})
        assert model(example(model)).shape == (4, 7)


def example(model, n=4):
    """A batch of what the model takes: images, or token ids below its vocab_size."""
    if getattr(model, 'input_dtype', torch.float32) == torch.long:
        return torch.randint(0, model.vocab_size, (n, *model.input_shape))
    return torch.randn(n, *model.input_shape)


def test_resnet18_takes_one_channel_images_both_ways():
    gray = torch.randn(2, 1, 28, 28)
    assert models.make({'name': 'resnet18', 'args': {'in_channels': 1}})(gray).shape == (2, 10)
    assert models.make({'name': 'resnet18'})(gray).shape == (2, 10)
    assert models.make({'name': 'resnet18'})(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize('name, features', [('resnet34', 512), ('resnet50', 2048)])
def test_deeper_resnets_classify_rgb_and_gray(name, features):
    model = models.make({'name': name, 'args': {'num_classes': 5}})
    assert model.net.fc.in_features == features
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    gray = models.make({'name': name, 'args': {'num_classes': 5, 'in_channels': 1}})
    assert gray(torch.randn(2, 1, 28, 28)).shape == (2, 5)


def stem(net, x):
    return net.maxpool(net.relu(net.bn1(net.conv1(x))))


@pytest.mark.parametrize('name', ['resnet18', 'resnet34', 'resnet50'])
def test_cifar_stem_keeps_32x32_through_the_stem(name):
    x = torch.randn(2, 3, 32, 32)
    imagenet = models.make({'name': name}).net
    cifar = models.make({'name': name, 'args': {'cifar_stem': True}}).net
    assert stem(imagenet, x).shape == (2, 64, 8, 8)
    assert stem(cifar, x).shape == (2, 64, 32, 32)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)


def test_cifar_stem_trains_one_step_and_takes_one_channel():
    torch.manual_seed(0)
    model = models.make({'name': 'resnet18', 'args': {'cifar_stem': True}})
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([3, 8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.net.conv1.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(model.net.conv1.weight, before)
    gray = models.make({'name': 'resnet18', 'args': {'cifar_stem': True, 'in_channels': 1}})
    assert gray.net.conv1.in_channels == 1 and gray.net.conv1.kernel_size == (3, 3)
    assert gray(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)  # expanded to 3 channels


@pytest.mark.parametrize('shape', [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_convnet_takes_digits_mnist_and_cifar_sizes(shape):
    model = models.make({'name': 'convnet', 'args': {'in_channels': shape[0], 'dropout': 0.1}})
    logits = model(torch.randn(2, *shape))
    assert logits.shape == (2, 10)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_convnet_width_and_depth_set_the_channels():
    model = models.make({'name': 'convnet', 'args': {'width': 8, 'depth': 4}})
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)  # 8 -> 4 -> 2 -> 1 pixels


def test_convnet_rejects_a_zero_depth():
    with pytest.raises(utils.ConfigError,
                       match=r'^args\.depth: must be an integer >= 1, but got 0$'):
        models.make({'name': 'convnet', 'args': {'depth': 0}})
