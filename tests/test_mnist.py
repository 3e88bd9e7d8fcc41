import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import datasets
import utils
from conftest import SHRINK


def test_mnist_reads_real_idx_files(mnist_root):
    data = datasets.make({'name': 'mnist', 'args': {'root_dir': str(mnist_root),
                                                    'val_size': 16, 'batch_size': 8}})
    data.setup()
    assert [len(data.splits[s]) for s in ('train', 'val', 'test')] == [80, 16, 32]
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.long
    assert x.max() > 2.5  # normalised: the 255 bar sits far above MNIST's mean


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(utils.ConfigError, match=rf'root_dir: MNIST files not found in '
                                                rf'{tmp_path}/MNIST/raw .*set data_module.args.'
                                                rf'download: true'):
        datasets.make({'name': 'mnist', 'args': {'root_dir': str(tmp_path)}})


def test_the_original_mnist_example_trains_as_written(train, mnist_root):
    """configs/mnist-classification.yaml unchanged but for root_dir (and the test shrink)."""
    run = train('--config', 'configs/mnist-classification.yaml',
                f'data_module.args.root_dir={mnist_root}', '+data_module.args.val_size=16',
                *SHRINK)
    events = EventAccumulator(str(run))
    events.Reload()
    assert len(events.Scalars('val/acc')) == 2
    assert (run / 'ckpt' / 'last.ckpt').is_file()
