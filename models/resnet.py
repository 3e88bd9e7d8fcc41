import torch.nn as nn

import models
import utils


class ResNet(nn.Module):
    """A torchvision ResNet (untrained) with `in_channels` input channels. `cifar_stem` swaps
    the 7x7 stride-2 conv and the max-pool for one 3x3 stride-1 conv: the ImageNet stem shrinks
    a 32x32 image to 8x8 before the first block, the CIFAR one keeps it at 32x32."""
    # a torchvision.models builder, set by each subclass: its dotted path, so that torchvision
    # is imported when one is built and a run without a torchvision model or dataset never
    # imports it (with torch._dynamo, which it imports, 2.3 s of a config error's time:
    # benchmarks/RESULTS.md); or the builder itself, as staticmethod(...)
    arch = None
    input_shape = (1, 28, 28)

    def __init__(self, num_classes=10, in_channels=3, cifar_stem=False):
        super().__init__()
        self.in_channels = in_channels
        arch = utils.import_path(self.arch) if isinstance(self.arch, str) else self.arch
        self.net = arch(weights=None, num_classes=num_classes)
        if cifar_stem:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.net.maxpool = nn.Identity()
        elif in_channels != 3:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)

    def forward(self, x):
        if x.shape[1] == 1 and self.in_channels == 3:
            # Grayscale into the ImageNet-shaped default: repeat the channel (a view, no copy),
            # so an MNIST config needs no in_channels.
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


@models.register('resnet18')
class ResNet18(ResNet):
    arch = 'torchvision.models.resnet18'


@models.register('resnet34')
class ResNet34(ResNet):
    arch = 'torchvision.models.resnet34'


@models.register('resnet50')
class ResNet50(ResNet):
    arch = 'torchvision.models.resnet50'
