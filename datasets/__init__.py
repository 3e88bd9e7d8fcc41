"""Data modules: `@datasets.register('name')` on a `datasets.base.DataModule` subclass,
`datasets.make(spec)`. They are plain Python (train.py uses them without Lightning);
train_pl.py wraps one with `datasets.lightning.LightningData`."""
import utils

registry = utils.Registry('datasets')
register, make, list = registry.register, registry.make, registry.list

from . import digits, diabetes, mnist, cifar, image_folder, synthetic, chars  # noqa: E402  (register on import)
