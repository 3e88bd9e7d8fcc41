import pytest
import torch

import models


@pytest.mark.parametrize('name', models.list())
def test_every_model_builds_and_trains_one_step(name):
    model = models.make({'name': name, 'args': {'num_classes': 7}})
    x = torch.randn(4, *model.input_shape)
    logits = model(x)
    assert logits.shape == (4, 7)
    logits.logsumexp(-1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_resnet18_takes_one_channel_images_both_ways():
    gray = torch.randn(2, 1, 28, 28)
    assert models.make({'name': 'resnet18', 'args': {'in_channels': 1}})(gray).shape == (2, 10)
    assert models.make({'name': 'resnet18'})(gray).shape == (2, 10)
    assert models.make({'name': 'resnet18'})(torch.randn(2, 3, 32, 32)).shape == (2, 10)
