"""Adversarial training: a generator and a discriminator, each with its own optimizer, trained
in turns with Lightning's manual optimization. Every epoch, a grid of samples from the same
fixed noise goes to TensorBoard (IMAGES tab) and to <run>/samples/epoch=E.png.

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
from pathlib import Path

import pytorch_lightning as pl
import torch
import torchvision

import losses
import models
import utils
from models.optim import make_optimizer


@models.wrappers.register('gan')
class GANWrapper(pl.LightningModule):
    hparam_metrics = ('train/d_loss', 'train/g_loss')  # TensorBoard's HParams view
    def __init__(self, generator_spec, discriminator_spec, g_optim_spec, d_optim_spec,
                 loss_spec=None, n_samples=64, sample_seed=0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimizers, stepped in turn by training_step
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

    def noise(self, n):
        return torch.randn(n, self.generator.latent_dim, device=self.device)

    def training_step(self, batch, batch_idx):
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        g_opt, d_opt = self.optimizers()
        fake = self.generator(self.noise(len(real)))

        # Discriminator: real against fake. The fakes are detached: no generator gradient here.
        d_loss = self.loss_fn.d_loss(self.discriminator(real), self.discriminator(fake.detach()))
        d_opt.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        d_opt.step()

        # Generator: fool the discriminator that was just updated. The discriminator's own
        # gradients from this pass are cleared by its zero_grad before they are ever used.
        g_loss = self.loss_fn.g_loss(self.discriminator(fake))
        g_opt.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        g_opt.step()

        self.log_dict({'train/d_loss': d_loss, 'train/g_loss': g_loss}, prog_bar=True,
                      batch_size=len(real))

    @torch.no_grad()
    def sample_grid(self):
        """The fixed noise through the generator, as one image in [0, 1]."""
        was_training = self.generator.training
        self.generator.eval()
        images = self.generator(self.fixed_noise)
        self.generator.train(was_training)
        return torchvision.utils.make_grid(images.float().cpu(), normalize=True, padding=1,
                                           value_range=(-1, 1),
                                           nrow=math.ceil(math.sqrt(len(images))))

    def on_train_epoch_end(self):
        if self.logger is None or not self.trainer.is_global_zero:
            return  # --check, or not rank 0
        grid = self.sample_grid()
        self.logger.experiment.add_image('samples', grid, self.current_epoch + 1)
        path = Path(self.logger.log_dir) / 'samples' / f'epoch={self.current_epoch + 1:03d}.png'
        path.parent.mkdir(exist_ok=True)
        scale = -(-512 // grid.shape[-1])  # small images enlarged to >= 512 px, pixels sharp
        torchvision.utils.save_image(
            grid.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2), path)

    def configure_optimizers(self):
        with utils.at_key('g_optim_spec'):
            g_opt = make_optimizer(self.hparams.g_optim_spec, self.generator.parameters())
        with utils.at_key('d_optim_spec'):
            d_opt = make_optimizer(self.hparams.d_optim_spec, self.discriminator.parameters())
        return [g_opt, d_opt]
