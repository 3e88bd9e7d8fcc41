import pytorch_lightning as pl
import torch

import callbacks
import utils


@callbacks.register('image_logger')
class ImageLogger(pl.Callback):
    """After every validation: the first `n` images of the val split with the predicted class
    over the true one (red when wrong), as a figure in TensorBoard's IMAGES tab under
    `val/predictions`. For classification wrappers (the model returns class logits)."""

    def __init__(self, n=16, tag='val/predictions'):
        if not isinstance(n, int) or n < 1:
            raise utils.ConfigError(f'must be an int >= 1, but got {n!r}', key='n')
        self.n, self.tag = n, tag
        self.batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0:
            x, y = batch
            self.batch = x[:self.n], y[:self.n]

    def on_validation_epoch_end(self, trainer, pl_module):
        board = utils.tensorboard_writer(trainer.loggers)
        if trainer.sanity_checking or board is None or not trainer.is_global_zero or \
                self.batch is None:
            return
        x, y = self.batch
        with torch.no_grad():
            predicted = pl_module(x).argmax(-1)
        board.add_figure(self.tag, figure(x, y, predicted), trainer.global_step)


def figure(x, y, predicted):
    from matplotlib.figure import Figure  # not pyplot: no backend, no window, no global state
    cols = min(len(x), 8)
    rows = -(-len(x) // cols)
    fig = Figure(figsize=(1.3 * cols, 1.5 * rows), layout='tight')
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, image, true, pred in zip(axes.flat, x.float().cpu(), y.tolist(), predicted.tolist()):
        image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-8)
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap='gray')
        else:
            ax.imshow(image[:3].permute(1, 2, 0).numpy())
        ax.set_title(f'{pred} ({true})', color='black' if pred == true else 'red', fontsize=9)
    fig.suptitle('predicted (true)', fontsize=10)
    return fig
