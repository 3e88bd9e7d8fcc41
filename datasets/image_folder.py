"""Any image classification dataset laid out as one folder per class."""
from pathlib import Path

import datasets
import utils
from datasets.base import SPLITS, DataModule, hold_out

IMAGENET = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}


@datasets.register('image_folder')
class ImageFolder(DataModule):
    """Images in one folder per class, read by torchvision's ImageFolder:

        <root_dir>/train/<class name>/<any name>.jpg  (or .png, .bmp, ...: what PIL reads)
        <root_dir>/val/<class name>/...   optional; without it, `val_size` images of train (a
                                          count, or a fraction) become val, drawn by split_seed
        <root_dir>/test/<class name>/...  optional; without it, test is val

    Labels number the class folders in sorted order (their names: `.classes`); val/ and test/
    must hold the same class folders as train/. Images are read as RGB, resized (shorter side)
    and center-cropped to `image_size` in every split, and normalised with ImageNet's mean and
    std; the config's `transforms` replace these key by key, e.g. `train: [RandomResizedCrop]`.
    """

    def __init__(self, root_dir='load/image_folder', image_size=224, val_size=0.1, split_seed=0,
                 **common):
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise utils.ConfigError(f'must be an integer >= 1, but got {image_size!r}',
                                    key='image_size')
        resize = [{'name': 'Resize', 'args': {'size': image_size}},
                  {'name': 'CenterCrop', 'args': {'size': image_size}}]
        # Per instance, as the size comes from the config; DataModule builds the pipelines.
        self.default_transforms = {'pre': [{'name': 'to_tensor'}], 'train': resize,
                                   'val': resize, 'test': resize,
                                   'post': [{'name': 'Normalize', 'args': IMAGENET}]}
        super().__init__(**common)
        self.root, self.val_size, self.split_seed = Path(root_dir), val_size, split_seed
        found = {split: sorted(p.name for p in (self.root / split).iterdir() if p.is_dir())
                 for split in SPLITS if (self.root / split).is_dir()}
        if not found.get('train'):
            raise utils.ConfigError(
                f'no class folders in {self.root / "train"}; put the training images there, '
                f'one folder per class ({self.root}/train/<class name>/*.jpg), and optionally '
                'val/ and test/ folders laid out the same beside it', key='root_dir')
        self.classes = found['train']
        for split, classes in found.items():
            # A class missing from val/ would shift every later class's label there.
            if classes != self.classes:
                raise utils.ConfigError(
                    f'{self.root / split} must hold the class folders of {self.root / "train"} '
                    f'({self.classes}), but got {classes}', key='root_dir')

    def build(self):
        from torchvision import datasets as tv  # here: see TorchvisionFiles.reader_class
        splits = {split: tv.ImageFolder(self.root / split) for split in SPLITS
                  if (self.root / split).is_dir()}
        if 'val' not in splits:
            splits['train'], splits['val'] = hold_out(splits['train'], self.val_size,
                                                      self.split_seed)
        splits.setdefault('test', splits['val'])
        return splits
