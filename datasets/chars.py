"""Text as bytes, for character-level language models: Python's own standard library source
(shipped with every Python, nothing to download), split by file.

    data_module: {name: chars, args: {block_size: 128, batch_size: 64, loader: memory}}

A sample is (x, y): `block_size` bytes and the same bytes one further on (the next byte of
each position is its target), from consecutive, non-overlapping windows of a split's text.
"""
import os
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import datasets
import utils
from datasets.base import DataModule

# Files of the standard library (next to os.py) in every Python runyard supports, one list
# per split: the splits share no file.
FILES = {'train': ['difflib.py', 'shutil.py', 'dataclasses.py', 'functools.py', 'contextlib.py',
                   'textwrap.py'],
         'val': ['pprint.py', 'heapq.py'],
         'test': ['fractions.py', 'calendar.py']}
VOCAB = 256  # bytes


@datasets.register('chars')
class Chars(DataModule):
    """`block_size` byte windows of the standard library's source. `max_bytes` cuts each
    split's text (None: all of it, about 280 KB of train text)."""

    def __init__(self, block_size=128, max_bytes=None, **common):
        super().__init__(**common)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise utils.ConfigError(f'must be an int >= 1, but got {block_size!r}',
                                    key='block_size')
        self.block_size, self.max_bytes = block_size, max_bytes

    def build(self):
        return {split: self.windows(read_text(files)[:self.max_bytes])
                for split, files in FILES.items()}

    def windows(self, data):
        data = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        n = (len(data) - 1) // self.block_size
        x = data[:n * self.block_size].view(n, self.block_size)
        y = data[1:n * self.block_size + 1].view(n, self.block_size)
        return TensorDataset(x, y)


def read_text(files):
    folder = Path(os.__file__).parent
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise utils.ConfigError(f"this Python's standard library ({folder}) has no "
                                f"{', '.join(missing)}: edit FILES in datasets/chars.py")
    return b''.join((folder / f).read_bytes() for f in files)
