"""Transforms by name for the `transforms:` section of a data module: every class in
torchvision.transforms.v2 (`RandomCrop`, `Normalize`, ...) and the ones registered here.

    @transforms.register('my_noise')          # in a module imported below
    class MyNoise(torch.nn.Module): ...
"""
import inspect

import torch
from torchvision.transforms import v2

import utils

registry = utils.Registry('transforms')
register, make, list = registry.register, registry.make, registry.list

for _name, _obj in vars(v2).items():
    if inspect.isclass(_obj) and issubclass(_obj, v2.Transform) and _obj is not v2.Transform:
        register(_name)(_obj)


@register('to_tensor')
def to_tensor():
    """A PIL image or uint8 array -> a float32 tensor in [0, 1], channels first."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()])


def compose(transforms):
    return v2.Compose(transforms) if transforms else None
