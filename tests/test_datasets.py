"""The data modules that read files: each test writes a tiny dataset in its real on-disk format
(tests/conftest.py) and reads it through the real torchvision class."""
import pickle
import re
import shutil

import numpy as np
import pytest
import torch

import datasets
import utils
from conftest import ENTRYPOINTS, SHRINK, run_command, scalars, write_image_folder
from datasets.base import SPLITS


def make(name, **args):
    data = datasets.make({'name': name, 'args': args})
    data.setup()
    return data


def sizes(data):
    return [len(data.splits[split]) for split in SPLITS]


def first_batch(data, split):
    return next(iter(data.loader(split)))


RAW = {'post': []}  # no normalisation: pixels in [0, 1], as written


@pytest.mark.parametrize('name', ['mnist', 'fashion_mnist'])
def test_mnist_family_reads_real_idx_files(name, request):
    root = request.getfixturevalue(f'{name}_root')
    data = make(name, root_dir=str(root), val_size=16, batch_size=8, transforms=RAW)
    assert sizes(data) == [80, 16, 32]
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.long
    bar_top = (x[:, 0, :, 10] == 1).int().argmax(1)  # the fixture's bar starts at row 2 + 2 * label
    assert torch.equal(bar_top, 2 + 2 * y)


@pytest.mark.parametrize('name', ['cifar10', 'cifar100'])
def test_cifar_reads_real_pickled_batches(name, request):
    root = request.getfixturevalue(f'{name}_root')
    data = make(name, root_dir=str(root), val_size=0.2, batch_size=8, transforms=RAW)
    assert sizes(data) == [64, 16, 32]
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    pixels = (x * 255).round().long()
    assert torch.equal(pixels[:, 0], y[:, None, None].expand(-1, 32, 32))  # red: the label
    assert torch.equal(pixels[:, 1, :, 5], 8 * torch.arange(32).expand(8, -1))  # green: the row


UNPICKLE = ('import pickle, sys\n'
            "split = pickle.load(open(sys.argv[1], 'rb'))\n"
            'x, y = split[3]\n'
            "print(len(split), y, round(float(x.sum()), 3), 'torchvision.datasets' in sys.modules)\n")


@pytest.mark.parametrize('name', ['mnist', 'cifar10', 'cifar100'])
def test_a_split_unpickles_in_a_fresh_interpreter(name, request, tmp_path):
    """As a DataLoader's spawned worker receives it (spawn: macOS's default start method): the
    torchvision classes, made on first use, are found by name (datasets.cifar.CIFAR10Files)."""
    root = request.getfixturevalue(f'{name}_root')
    split = make(name, root_dir=str(root), val_size=16, transforms=RAW).splits['test']
    (tmp_path / 'split.pkl').write_bytes(pickle.dumps(split))
    x, y = split[3]
    result = run_command('-c', UNPICKLE, str(tmp_path / 'split.pkl'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(len(split)), str(y), str(round(float(x.sum()), 3)),
                                     'True']


def test_val_size_is_a_count_or_a_fraction_drawn_by_split_seed(cifar10_root):
    def val_images(**args):
        data = make('cifar10', root_dir=str(cifar10_root), transforms=RAW, **args)
        return torch.stack([x for x, _ in data.splits['val']])

    assert len(val_images(val_size=20)) == len(val_images(val_size=0.25)) == 20
    assert torch.equal(val_images(val_size=20), val_images(val_size=20, split_seed=0))
    assert not torch.equal(val_images(val_size=20), val_images(val_size=20, split_seed=1))
    with pytest.raises(utils.ConfigError, match=r'^data_module.args.val_size: must be a count or '
                                                r'a fraction .* of the 80 training images, but '
                                                r'got 80$'):
        val_images(val_size=80)


def test_image_folder_reads_class_folders(image_folder_root):
    data = make('image_folder', root_dir=str(image_folder_root), image_size=24, batch_size=6)
    assert data.classes == ['bird', 'cat', 'dog']
    assert sizes(data) == [18, 6, 6]
    x, y = first_batch(data, 'test')
    assert x.shape == (6, 3, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.long
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(x.mean((2, 3)).argmax(1), y)  # each class's colour has its own channel


def test_image_folder_without_val_holds_out_train_and_tests_on_val(tmp_path):
    root = write_image_folder(tmp_path / 'images', {'train': 4})
    data = make('image_folder', root_dir=str(root), image_size=16, val_size=0.25)
    assert sizes(data) == [9, 3, 3]
    assert torch.equal(first_batch(data, 'test')[0], first_batch(data, 'val')[0])


def test_image_folder_val_must_have_the_train_classes(tmp_path):
    root = write_image_folder(tmp_path / 'images', {'train': 1, 'val': 1})
    shutil.rmtree(root / 'val' / 'bird')  # else cat would be label 0 in val, 1 in train
    with pytest.raises(utils.ConfigError, match=re.escape(
            f"root_dir: {root}/val must hold the class folders of {root}/train "
            "(['bird', 'cat', 'dog']), but got ['cat', 'dog']")):
        make('image_folder', root_dir=str(root))


# Each dataset's own statistics, as its documentation gives them.
NORMALISATION = {
    'mnist': ([0.1307], [0.3081]),
    'fashion_mnist': ([0.2860], [0.3530]),
    'cifar10': ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    'cifar100': ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]),
    'image_folder': ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


@pytest.mark.parametrize('name', NORMALISATION)
def test_normalised_with_the_datasets_statistics_unless_the_config_says_otherwise(name, request):
    args = {'root_dir': str(request.getfixturevalue(f'{name}_root')),
            **({'image_size': 24} if name == 'image_folder' else {'val_size': 16})}
    x_raw = make(name, **args, transforms=RAW).splits['test'][0][0]
    mean, std = (torch.tensor(v)[:, None, None] for v in NORMALISATION[name])
    assert torch.allclose(make(name, **args).splits['test'][0][0], (x_raw - mean) / std)
    channels = len(mean)
    halves = {'name': 'Normalize', 'args': {'mean': [0.5] * channels, 'std': [0.5] * channels}}
    x_own = make(name, **args, transforms={'post': [halves]}).splits['test'][0][0]
    assert torch.allclose(x_own, (x_raw - 0.5) / 0.5)


@pytest.mark.parametrize('name', ['mnist', 'cifar10'])
def test_the_default_pipeline_gives_torchvisions_classic_tensors(name, request):
    """to_tensor + Normalize, the pipeline of every image dataset here, to the bit what
    torchvision's classic transforms give, from the real files' PIL images."""
    from torchvision import transforms as classic
    data = make(name, root_dir=str(request.getfixturevalue(f'{name}_root')), val_size=16)
    mean, std = NORMALISATION[name]
    expected = classic.Compose([classic.ToTensor(), classic.Normalize(mean, std)])
    raw = data.splits['test'].dataset
    for i in range(4):
        image, _ = raw[i]
        assert torch.equal(data.splits['test'][i][0], expected(image))
    pixels = np.asarray(raw[0][0])  # a uint8 array, as a user's dataset may hold them
    assert torch.equal(datasets.transforms.make('to_tensor')(pixels),
                       classic.ToTensor()(pixels))
    as_tensor = torch.from_numpy(pixels).reshape(1, *pixels.shape[:2]) if pixels.ndim == 2 \
        else torch.from_numpy(pixels).permute(2, 0, 1)  # a C x H x W uint8 tensor: v2's path
    assert torch.equal(datasets.transforms.make('to_tensor')(as_tensor), classic.ToTensor()(pixels))


@pytest.mark.parametrize('name, folder, missing, fix', [
    ('mnist', 'MNIST/raw', 't10k-labels-idx1-ubyte', 'put the uncompressed IDX files there'),
    ('fashion_mnist', 'FashionMNIST/raw', 't10k-labels-idx1-ubyte',
     'put the uncompressed IDX files there'),
    ('cifar10', 'cifar-10-batches-py', 'test_batch', 'extract cifar-10-python.tar.gz into {root}'),
    ('cifar100', 'cifar-100-python', 'meta', 'extract cifar-100-python.tar.gz into {root}'),
], ids=['mnist', 'fashion_mnist', 'cifar10', 'cifar100'])
def test_a_missing_file_is_named_with_where_it_goes(name, folder, missing, fix, request):
    root = request.getfixturevalue(f'{name}_root')
    (root / folder / missing).unlink()
    title = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST', 'cifar10': 'CIFAR-10',
             'cifar100': 'CIFAR-100'}[name]
    with pytest.raises(utils.ConfigError, match=re.escape(
            f'root_dir: {title} files not found in {root}/{folder} (missing 1: {missing}); '
            f'{fix.format(root=root)}, or set data_module.args.download: true')):
        datasets.make({'name': name, 'args': {'root_dir': str(root)}})


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(utils.ConfigError, match=rf'root_dir: MNIST files not found in '
                                                rf'{tmp_path}/MNIST/raw \(missing 4: train-images'
                                                rf'.*set data_module.args.download: true'):
        datasets.make({'name': 'mnist', 'args': {'root_dir': str(tmp_path)}})
    with pytest.raises(utils.ConfigError, match=rf'root_dir: no class folders in '
                                                rf'{tmp_path}/train; put the training images '
                                                rf'there, one folder per class'):
        datasets.make({'name': 'image_folder', 'args': {'root_dir': str(tmp_path)}})


@pytest.mark.parametrize('config, dataset', [('configs/mnist-classification.yaml', 'mnist'),
                                             ('configs/cifar10-resnet18.yaml', 'cifar10')])
def test_the_shipped_config_trains_on_the_real_format(config, dataset, train, request):
    """The config unchanged but for root_dir, val_size and the test shrink."""
    root = request.getfixturevalue(f'{dataset}_root')
    run = train('--config', config, f'data_module.args.root_dir={root}',
                '+data_module.args.val_size=16', *SHRINK)
    assert len(scalars(run, 'val/acc')) == 2
    assert (run / 'ckpt' / 'last.ckpt').is_file()


@pytest.mark.parametrize('script', ENTRYPOINTS)
def test_a_val_size_too_large_stops_before_the_run_folder_exists(script, mnist_root, save_dir,
                                                                  capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(ENTRYPOINTS[script], [
            '--config', 'configs/mnist-classification.yaml', '+data_module.args.val_size=96',
            f'data_module.args.root_dir={mnist_root}', '--name', 'run', '--save-dir', str(save_dir)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: override '+data_module.args.val_size=96': must be a count or "
                          'a fraction'), err
    assert not save_dir.exists()


def test_digits_are_scikit_learns_without_importing_it():
    from datasets.digits import read_digits
    x, y = read_digits()
    from sklearn.datasets import load_digits
    x_ref, y_ref = load_digits(return_X_y=True)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_a_subclass_may_give_its_torchvision_classes_themselves(mnist_root):
    """The shipped ones give dotted paths (`reader = 'torchvision.datasets.MNIST'`: torchvision
    is imported when they are built); a class or builder given as such works as well."""
    import torchvision

    import models.resnet
    from datasets.mnist import MNIST

    class ByClass(MNIST):
        reader = torchvision.datasets.MNIST

    data = ByClass(root_dir=str(mnist_root), val_size=16, transforms=RAW)
    data.setup()
    assert sizes(data) == [80, 16, 32]

    class Resnet18ByBuilder(models.resnet.ResNet):
        arch = staticmethod(torchvision.models.resnet18)

    net = Resnet18ByBuilder(num_classes=3)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    assert net.net.state_dict().keys() == models.make(
        {'name': 'resnet18', 'args': {'num_classes': 3}}).net.state_dict().keys()


@pytest.mark.parametrize('script', ENTRYPOINTS)
@pytest.mark.parametrize('kind', ['mnist', 'image_folder'])
def test_dataset_files_in_the_wrong_format_are_one_line_and_write_nothing(kind, script,
                                                                          tmp_path, capsys):
    """Files where the loader looks, but not what it reads: junk IDX files, a .png that is no
    image."""
    root = tmp_path / 'data'
    if kind == 'mnist':
        (root / 'MNIST' / 'raw').mkdir(parents=True)
        for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                     't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
            (root / 'MNIST' / 'raw' / name).write_bytes(bytes(range(100)))
        argv = ['--config', 'configs/mnist-classification.yaml', f'data_module.args.root_dir={root}']
        message = r'data_module: cannot read the dataset: its files are not in the expected format'
    else:
        for label in ('a', 'b'):
            (root / 'train' / label).mkdir(parents=True)
            for i in range(10):
                (root / 'train' / label / f'{i}.png').write_text('not an image')
        argv = ['--config', 'configs/digits.yaml',
                f'data_module={{name: image_folder, args: {{root_dir: {root}, batch_size: 2}}}}']
        message = r'a train sample cannot be read: UnidentifiedImageError: cannot identify image'
    save = tmp_path / 'save'
    with pytest.raises(SystemExit) as info:
        utils.run_cli(ENTRYPOINTS[script], [*argv, '--name', 'x', '--save-dir', str(save)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and re.search(message, err[0]), err
    assert not save.exists()
