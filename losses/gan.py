"""Adversarial losses for the `gan` wrapper: each one a pair of functions of the
discriminator's logits, `d_loss(real, fake)` and `g_loss(fake)`.

    loss_spec: {name: gan_nonsaturating}     # or gan_hinge, gan_least_squares
"""
import torch.nn.functional as F

import losses


@losses.register('gan_nonsaturating')
class NonSaturating:
    """The original GAN loss with the generator maximising log D(G(z)) (Goodfellow et al.,
    2014): its gradient does not vanish while the discriminator wins."""

    def d_loss(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake):
        return F.softplus(-fake).mean()


@losses.register('gan_hinge')
class Hinge:
    """The hinge loss of SAGAN / BigGAN."""

    def d_loss(self, real, fake):
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()


@losses.register('gan_least_squares')
class LeastSquares:
    """LSGAN (Mao et al., 2017): real -> 1, fake -> 0."""

    def d_loss(self, real, fake):
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()

    def g_loss(self, fake):
        return 0.5 * ((fake - 1) ** 2).mean()
