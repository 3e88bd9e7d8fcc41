"""MNIST and Fashion-MNIST through torchvision, from their IDX files."""
import datasets
from datasets.base import TorchvisionFiles, normalised

IDX_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']


@datasets.register('mnist')
class MNIST(TorchvisionFiles):
    """MNIST, read from `root_dir`/MNIST/raw/ (the four uncompressed IDX files; default root_dir
    load/mnist). Images become 1x28x28 float tensors normalised with MNIST's mean and std
    unless the config's `transforms` says otherwise."""
    reader, title, default_root = 'torchvision.datasets.MNIST', 'MNIST', 'load/mnist'
    folder, files = 'MNIST/raw', IDX_FILES
    fix = 'put the uncompressed IDX files there'
    default_transforms = normalised(mean=[0.1307], std=[0.3081])


@datasets.register('fashion_mnist')
class FashionMNIST(MNIST):
    """Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing instead of digits, read
    from `root_dir`/FashionMNIST/raw/ (default root_dir load/fashion_mnist)."""
    reader, title = 'torchvision.datasets.FashionMNIST', 'Fashion-MNIST'
    default_root = 'load/fashion_mnist'
    folder = 'FashionMNIST/raw'
    default_transforms = normalised(mean=[0.2860], std=[0.3530])
