import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import train  # noqa: E402
import train_pl  # noqa: E402
import utils  # noqa: E402

# The repository's real configs, shrunk: few batches, two epochs, no progress bar.
SHRINK = ['trainer_params.max_epochs=2', '+trainer_params.limit_train_batches=4',
          '+trainer_params.limit_val_batches=2', '+trainer_params.limit_test_batches=2',
          '+trainer_params.enable_progress_bar=false', '+trainer_params.enable_model_summary=false',
          '+trainer_params.log_every_n_steps=1']


def scalars(run_dir, tag):
    """(step, value) of a tag, read by TensorBoard's reader file by file in the order written
    (a test's resume can share the first run's second and pid, and TensorBoard orders event
    files by name)."""
    found = []
    for path in run_dir.glob('events.out.tfevents.*'):
        events = EventAccumulator(str(path))
        events.Reload()
        if tag in events.Tags()['scalars']:
            found += events.Scalars(tag)
    return [(e.step, e.value) for e in sorted(found, key=lambda e: e.wall_time)]


@pytest.fixture
def save_dir(tmp_path):
    return tmp_path / 'save'


ENTRYPOINTS = {'train_pl.py': train_pl.main, 'train.py': train.main}


@pytest.fixture
def train(save_dir):
    """Run an entrypoint in this process, as its command line would; returns the run folder."""
    def run(*argv, name='run', script='train_pl.py'):
        argv = [*argv, '--save-dir', str(save_dir)]
        if '--resume' not in argv or 'auto' in argv:
            argv += ['--name', name]
        utils.run_cli(ENTRYPOINTS[script], argv)
        return save_dir / name
    return run


def run_command(*argv, cwd=ROOT):
    """The real command line, in a fresh interpreter."""
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True)


def tree(path):
    """{relative path: bytes} of every file under path: proves nothing was touched."""
    path = Path(path)
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob('*'))
            if p.is_file()} if path.exists() else {}


def write_idx(path, array):
    """An IDX file as MNIST ships it: magic (0, 0, dtype 0x08 = ubyte, ndim), sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + \
        struct.pack(f'>{array.ndim}I', *array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture
def mnist_root(tmp_path):
    """A tiny MNIST in the real on-disk layout: <root>/MNIST/raw/*-idx?-ubyte."""
    return write_mnist_format(tmp_path / 'mnist', 'MNIST')


@pytest.fixture
def fashion_mnist_root(tmp_path):
    """A tiny Fashion-MNIST: MNIST's format, in <root>/FashionMNIST/raw/."""
    return write_mnist_format(tmp_path / 'fashion_mnist', 'FashionMNIST')


def write_mnist_format(root, name):
    """96 train and 32 test images, 28x28, as four IDX files in <root>/<name>/raw/."""
    raw = root / name / 'raw'
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (('train', 96), ('t10k', 32)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 50, (n, 28, 28))
        for i, label in enumerate(labels):  # a bright bar whose row encodes the label
            images[i, 2 + 2 * label:4 + 2 * label, 4:24] = 255
        write_idx(raw / f'{prefix}-images-idx3-ubyte', images)
        write_idx(raw / f'{prefix}-labels-idx1-ubyte', labels)
    return root


def cifar_rows(labels, rng):
    """CIFAR's image rows: 3072 uint8 each, the red, green and blue 32x32 planes one after the
    other. Red holds the label, green grows down the rows (a transposed image would show),
    blue is noise."""
    planes = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    planes[:, 0] = np.asarray(labels)[:, None, None]
    planes[:, 1] = 8 * np.arange(32)[:, None]
    planes[:, 2] = rng.integers(0, 256, (len(labels), 32, 32))
    return planes.reshape(len(labels), 3072)


def write_pickle(path, obj):
    # CIFAR's batches were pickled by Python 2, whose str keys load as str with the latin1
    # encoding torchvision uses: so the keys here are str ('data'), not bytes.
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture
def cifar10_root(tmp_path):
    """A tiny CIFAR-10 in the real layout: <root>/cifar-10-batches-py/ with data_batch_1..5
    (16 images each), test_batch (32) and batches.meta."""
    folder = tmp_path / 'cifar10' / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f'data_batch_{i}', 16) for i in range(1, 6)), ('test_batch', 32)]:
        labels = rng.integers(0, 10, n).tolist()
        write_pickle(folder / name, {'data': cifar_rows(labels, rng), 'labels': labels})
    write_pickle(folder / 'batches.meta', {'label_names': [
        'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
        'truck']})
    return folder.parent


@pytest.fixture
def cifar100_root(tmp_path):
    """A tiny CIFAR-100 in the real layout: <root>/cifar-100-python/ with train (80 images),
    test (32) and meta; 100 fine labels in 20 coarse ones."""
    folder = tmp_path / 'cifar100' / 'cifar-100-python'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (('train', 80), ('test', 32)):
        fine = rng.integers(0, 100, n).tolist()
        write_pickle(folder / name, {'data': cifar_rows(fine, rng), 'fine_labels': fine,
                                     'coarse_labels': [label // 5 for label in fine]})
    write_pickle(folder / 'meta', {'fine_label_names': [f'fine{i}' for i in range(100)],
                                   'coarse_label_names': [f'coarse{i}' for i in range(20)]})
    return folder.parent


# Each class its own colour: the bright channel is the label (bird 0 red, cat 1 green, dog 2 blue).
CLASS_COLOURS = {'bird': (200, 30, 30), 'cat': (30, 200, 30), 'dog': (30, 30, 200)}


def write_image_folder(root, counts):
    """A class-per-folder tree of `counts[split]` images per class and split: sizes vary, so
    they must be resized to batch, and PNG alternates with JPEG."""
    from PIL import Image
    for split, n in counts.items():
        for name, colour in CLASS_COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                image = Image.new('RGB', (40 + 8 * i, 30 + 4 * i), colour)
                image.save(root / split / name / f'{i}.{"png" if i % 2 else "jpg"}')
    return root


@pytest.fixture
def image_folder_root(tmp_path):
    """<root>/{train,val,test}/{bird,cat,dog}/: 6, 2 and 2 images per class."""
    return write_image_folder(tmp_path / 'images', {'train': 6, 'val': 2, 'test': 2})
