"""The original MNIST example; reading the MNIST files is tested in test_datasets.py."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import SHRINK


def test_the_original_mnist_example_trains_as_written(train, mnist_root):
    """configs/mnist-classification.yaml unchanged but for root_dir (and the test shrink)."""
    run = train('--config', 'configs/mnist-classification.yaml',
                f'data_module.args.root_dir={mnist_root}', '+data_module.args.val_size=16',
                *SHRINK)
    events = EventAccumulator(str(run))
    events.Reload()
    assert len(events.Scalars('val/acc')) == 2
    assert (run / 'ckpt' / 'last.ckpt').is_file()
