"""CIFAR-10 and CIFAR-100 through torchvision, from the python version of each (the pickled
batches that cifar-10-python.tar.gz and cifar-100-python.tar.gz extract to)."""
import functools
import pickle
from types import SimpleNamespace

import datasets
import utils
from datasets.base import TorchvisionFiles, normalised

# All a CIFAR batch holds: dicts, lists, str and bytes, and NumPy arrays (NumPy 1's and 2's
# module names). Anything else in a pickle could be code, which data must not run.
ARRAY_GLOBALS = {(module, name) for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
                 for name in ('_reconstruct', 'scalar')} | {
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('_codecs', 'encode')}  # how pickle protocol 2 writes bytes: str -> bytes, nothing else


class BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ARRAY_GLOBALS:
            raise utils.ConfigError(f'{getattr(self, "path", "a CIFAR batch")}: holds a '
                                    f'{module}.{name}, not only arrays; a CIFAR batch file '
                                    'is data, and is not loaded', key='root_dir')
        return super().find_class(module, name)


def load_batch(f, encoding='ASCII'):
    unpickler = BatchUnpickler(f, encoding=encoding)
    unpickler.path = getattr(f, 'name', None)
    return unpickler.load()


class FilesCheckedToExist:
    """Mixed into torchvision's CIFAR classes: check that the files exist, not their md5.
    torchvision compares every file's md5 with the official release's each time it is built,
    so any other copy (a subset, relabelled or re-pickled batches, the tests' tiny files) reads
    as 'not found or corrupted'. A download still checks the archive's md5. Without the md5,
    a batch could be any pickle: torchvision's pickle.load is given one that takes arrays
    only."""

    def __init__(self, *args, **kwargs):
        self.train_list = [[name, None] for name, _ in self.train_list]
        self.test_list = [[name, None] for name, _ in self.test_list]
        self.meta = {**self.meta, 'md5': None}
        super().__init__(*args, **kwargs)


@functools.cache
def files_checked_to_exist(reader):
    """torchvision's CIFAR class `reader` with FilesCheckedToExist, and torchvision's cifar.py
    given load_batch for its only pickle use."""
    from torchvision.datasets import cifar as tv_cifar
    tv_cifar.pickle = SimpleNamespace(load=load_batch)
    return type(f'{reader.__name__}Files', (FilesCheckedToExist, reader), {})


def __getattr__(name):
    """datasets.cifar.CIFAR10Files and CIFAR100Files, the classes above made on first use: by
    name, as pickle finds a dataset's class (a DataLoader's spawned workers unpickle it)."""
    if name in ('CIFAR10Files', 'CIFAR100Files'):
        return files_checked_to_exist(
            utils.import_path(f"torchvision.datasets.{name.removesuffix('Files')}"))
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


class CIFARFiles(TorchvisionFiles):
    def reader_class(self):
        return files_checked_to_exist(super().reader_class())


@datasets.register('cifar10')
class CIFAR10(CIFARFiles):
    """CIFAR-10, read from `root_dir`/cifar-10-batches-py/ (default root_dir load/cifar10).
    Images become 3x32x32 float tensors normalised with CIFAR-10's mean and std unless the
    config's `transforms` says otherwise."""
    reader, title, default_root = 'torchvision.datasets.CIFAR10', 'CIFAR-10', 'load/cifar10'
    folder = 'cifar-10-batches-py'
    files = [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch', 'batches.meta']
    fix = 'extract cifar-10-python.tar.gz into {root}'
    default_transforms = normalised(mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616])


@datasets.register('cifar100')
class CIFAR100(CIFARFiles):
    """CIFAR-100 with its 100 fine labels, read from `root_dir`/cifar-100-python/ (default
    root_dir load/cifar100), normalised with CIFAR-100's mean and std like CIFAR-10."""
    reader, title, default_root = 'torchvision.datasets.CIFAR100', 'CIFAR-100', 'load/cifar100'
    folder, files = 'cifar-100-python', ['train', 'test', 'meta']
    fix = 'extract cifar-100-python.tar.gz into {root}'
    default_transforms = normalised(mean=[0.5071, 0.4865, 0.4409], std=[0.2673, 0.2564, 0.2762])
