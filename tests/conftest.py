import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    root = tmp_path / 'mnist'
    raw = root / 'MNIST' / 'raw'
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
