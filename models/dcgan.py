"""The DCGAN generator and discriminator (Radford et al., 2016): transposed convolutions that
double the resolution from 4x4, and their mirror image. `image_size` is a power of two >= 8.

    generator_spec:     {name: dcgan_generator, args: {latent_dim: 64, out_channels: 1, image_size: 16}}
    discriminator_spec: {name: dcgan_discriminator, args: {in_channels: 1, image_size: 16}}
"""
import math

import torch.nn as nn

import models
import utils


def stages(image_size):
    """How many times the resolution doubles between 4x4 and image_size."""
    n = math.log2(image_size) if isinstance(image_size, int) and image_size > 0 else 0
    if n != int(n) or n < 3:
        raise utils.ConfigError(f'must be a power of two >= 8, but got {image_size!r}',
                                key='args.image_size')
    return int(n) - 2


def dcgan_init(module):
    # The paper's initialisation: N(0, 0.02) weights, BatchNorm scales around 1.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@models.register('dcgan_generator')
class DCGANGenerator(nn.Module):
    """Noise (N, latent_dim) -> images (N, out_channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, latent_dim=64, out_channels=1, image_size=32, width=64):
        super().__init__()
        self.latent_dim, self.input_shape = latent_dim, (latent_dim,)
        n = stages(image_size)
        widths = [width * 2 ** i for i in reversed(range(n))]  # 4x4 has the most channels
        layers = [nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                  nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(w_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z):
        return self.net(z.view(len(z), self.latent_dim, 1, 1))


@models.register('dcgan_discriminator')
class DCGANDiscriminator(nn.Module):
    """Images (N, in_channels, image_size, image_size) -> one real/fake logit each, (N,)."""

    def __init__(self, in_channels=1, image_size=32, width=64):
        super().__init__()
        self.input_shape = (in_channels, image_size, image_size)
        n = stages(image_size)
        widths = [width * 2 ** i for i in range(n)]
        # No BatchNorm on the input layer, LeakyReLU throughout: the paper's choices.
        layers = [nn.Conv2d(in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0))  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x):
        return self.net(x).flatten()
