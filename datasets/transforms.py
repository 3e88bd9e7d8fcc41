"""Transforms by name for the `transforms:` section of a data module: every class in
torchvision.transforms.v2 (`RandomCrop`, `Normalize`, ...) and the ones registered here.

    @transforms.register('my_noise')          # in a module imported below
    class MyNoise(torch.nn.Module): ...
"""
import inspect

import numpy as np
import torch
from torchvision.transforms import functional as classic, v2

import utils

registry = utils.Registry('transforms')
register, make, list = registry.register, registry.make, registry.list

for _name, _obj in vars(v2).items():
    if inspect.isclass(_obj) and issubclass(_obj, v2.Transform) and _obj is not v2.Transform:
        register(_name)(_obj)


@register('to_tensor')
class ToTensor(torch.nn.Module):
    """A PIL image or uint8 array (H x W [x C]) -> a float32 tensor in [0, 1], C x H x W.
    8-bit images take torchvision's classic to_tensor: the same tensor as transforms.ToTensor,
    at about half the cost of v2's ToImage + ToDtype + ToPureTensor (three v2 calls an image,
    the largest cost of a DataLoader epoch after the model: benchmarks/RESULTS.md); a uint8
    tensor (C x H x W) is divided alike. Anything else (a 16-bit or float image) goes
    through v2."""
    EIGHT_BIT = ('L', 'LA', 'P', 'RGB', 'RGBA')

    def __init__(self):
        super().__init__()
        self.v2 = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                              v2.ToPureTensor()])

    def forward(self, image):
        if getattr(image, 'mode', None) in self.EIGHT_BIT or \
                (isinstance(image, np.ndarray) and image.dtype == np.uint8):
            return classic.to_tensor(image)
        if isinstance(image, torch.Tensor) and image.dtype == torch.uint8:  # C x H x W or H x W
            return (image if image.ndim > 2 else image[None]).to(torch.float32).div(255)
        return self.v2(image)


def compose(transforms):
    return v2.Compose(transforms) if transforms else None
