"""The settings every data module takes: dataloader per split, transforms from YAML."""
import pytest
import torch

import datasets
import utils


def digits(**args):
    data = datasets.make({'name': 'digits', 'args': args})
    data.setup()
    return data


def test_dataloader_default_and_per_split_settings():
    data = digits(batch_size=16, dataloader={'default': {'drop_last': True},
                                             'val': {'batch_size': 100, 'drop_last': False}})
    train, val, test = data.train_dataloader(), data.val_dataloader(), data.test_dataloader()
    assert (train.batch_size, val.batch_size, test.batch_size) == (16, 100, 16)
    assert all(len(x) == 16 for x, _ in train)  # drop_last: no short batch
    assert [len(x) for x, _ in val] == [100, 79]
    assert not train.persistent_workers and train.num_workers == 0


@pytest.mark.parametrize('dataloader, message', [
    ({'trian': {}}, r"dataloader.trian: unknown key; did you mean 'train'"),
    ({'val': {'batch_size': 0}}, r'dataloader.val.batch_size: must be an integer >= 1, but got 0'),
    ({'default': {'pin_memory': 'yes'}}, r"dataloader.default.pin_memory: must be true or false"),
    ({'train': {'persistent_workers': True}},
     r'dataloader.train: persistent_workers needs num_workers > 0'),
])
def test_dataloader_mistakes_name_the_key(dataloader, message):
    with pytest.raises(utils.ConfigError, match=rf'^args.{message}'):
        datasets.make({'name': 'digits', 'args': {'dataloader': dataloader}})


def test_transforms_apply_pre_split_post_in_order_to_their_split_only():
    plain = digits()
    flip = {'name': 'RandomHorizontalFlip', 'args': {'p': 1.0}}
    shift = {'name': 'Normalize', 'args': {'mean': [0.5], 'std': [0.5]}}
    data = digits(transforms={'train': [flip], 'post': [shift]})
    x_plain, _ = plain.splits['train'][3]
    x, y = data.splits['train'][3]
    assert torch.equal(x, (x_plain.flip(-1) - 0.5) / 0.5)  # flipped, then normalised
    assert torch.equal(data.splits['val'][3][0], (plain.splits['val'][3][0] - 0.5) / 0.5)
    assert y == plain.splits['train'][3][1]


def test_registered_transform_by_name():
    from datasets import transforms

    @transforms.register('negate_for_test')
    class Negate(torch.nn.Module):
        def forward(self, x):
            return -x

    try:
        data = digits(transforms={'test': [{'name': 'negate_for_test'}]})
        assert torch.equal(data.splits['test'][0][0], -digits().splits['test'][0][0])
    finally:
        del transforms.registry._entries['negate_for_test']


def test_mnist_normalises_by_default_and_a_config_can_replace_it(mnist_root):
    args = {'root_dir': str(mnist_root), 'val_size': 16}
    default = datasets.make({'name': 'mnist', 'args': args})
    default.setup()
    raw = datasets.make({'name': 'mnist', 'args': {**args, 'transforms': {'post': []}}})
    raw.setup()
    x, _ = default.splits['train'][0]
    x_raw, _ = raw.splits['train'][0]
    assert x_raw.shape == (1, 28, 28) and 0 <= x_raw.min() and x_raw.max() <= 1
    assert torch.allclose(x, (x_raw - 0.1307) / 0.3081)
