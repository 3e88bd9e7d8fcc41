"""Adversarial training, the `gan` task: a generator and a discriminator, each with its own
optimizer, stepped in turns. Every epoch, a grid of samples from the same fixed noise goes to
TensorBoard (IMAGES tab) and to <run>/samples/epoch=E.png.

    train_wrapper:
      name: gan
      args:
        generator_spec: {name: dcgan_generator, args: {latent_dim: 64, image_size: 16}}
        discriminator_spec: {name: dcgan_discriminator, args: {image_size: 16}}
        g_optim_spec: {name: Adam, args: {lr: 2.e-4, betas: [0.5, 0.999]}}
        d_optim_spec: {name: Adam, args: {lr: 2.e-4, betas: [0.5, 0.999]}}
        loss_spec: {name: gan_nonsaturating}       # the default; or gan_hinge, gan_least_squares

The generator must take noise of shape (N, latent_dim) and have a `latent_dim` attribute; the
data module's samples are (image, label) pairs (the label is unused) or images, scaled to the
generator's output range (DCGAN's tanh: [-1, 1], e.g. Normalize(0.5, 0.5) after to_tensor).
"""
import math

import torch

import losses
import models
import utils
from models.optim import make_optimizer
from models.task import Task


@models.wrappers.register('gan')
class GAN(Task):
    train_losses = ('d_loss', 'g_loss')  # the discriminator's step, then the generator's

    def __init__(self, generator_spec, discriminator_spec, g_optim_spec, d_optim_spec,
                 loss_spec=None, n_samples=64, sample_seed=0):
        super().__init__()
        self.g_optim_spec, self.d_optim_spec = g_optim_spec, d_optim_spec
        with utils.at_key('generator_spec'):
            self.generator = models.make(generator_spec)
            if not isinstance(getattr(self.generator, 'latent_dim', None), int):
                raise utils.ConfigError('the generator needs an int `latent_dim` attribute (the '
                                        'size of its noise input)', key='name')
        with utils.at_key('discriminator_spec'):
            self.discriminator = models.make(discriminator_spec)
        with utils.at_key('loss_spec'):
            self.loss_fn = losses.make(loss_spec or {'name': 'gan_nonsaturating'})
        # The same noise every epoch: the grids show one set of samples getting better.
        noise = torch.randn(n_samples, self.generator.latent_dim,
                            generator=torch.Generator().manual_seed(sample_seed))
        self.register_buffer('fixed_noise', noise, persistent=False)

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch):
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        noise = torch.randn(len(real), self.generator.latent_dim, device=real.device)
        fake = self.generator(noise)
        # The discriminator: real against fake. The fakes are detached: no generator gradient.
        yield self.loss_fn.d_loss(self.discriminator(real), self.discriminator(fake.detach()))
        # The generator: fool the discriminator that was just updated. That pass also leaves
        # gradients on the discriminator; its zero_grad clears them before its next step.
        yield self.loss_fn.g_loss(self.discriminator(fake))

    def configure_optimizers(self):
        with utils.at_key('d_optim_spec'):
            d_opt = make_optimizer(self.d_optim_spec, self.discriminator.named_parameters())
        with utils.at_key('g_optim_spec'):
            g_opt = make_optimizer(self.g_optim_spec, self.generator.named_parameters())
        return [(d_opt, None), (g_opt, None)]

    @torch.no_grad()
    def epoch_images(self):
        """The fixed noise through the generator, as one grid in [0, 1]."""
        import torchvision
        was_training = self.generator.training
        self.generator.eval()
        images = self.generator(self.fixed_noise)
        self.generator.train(was_training)
        grid = torchvision.utils.make_grid(images.float().cpu(), normalize=True, padding=1,
                                           value_range=(-1, 1),
                                           nrow=math.ceil(math.sqrt(len(images))))
        return {'samples': grid}
