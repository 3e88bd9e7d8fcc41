import torch.nn as nn

import models
import utils


@models.register('convnet')
class ConvNet(nn.Module):
    """A small, fast CNN: `depth` conv-BN-ReLU blocks, `width` channels in the first and twice
    as many in each next, a 2x2 max-pool between blocks, then a global average pool. The pool
    makes it size-agnostic: any input of at least 2**(depth - 1) pixels a side (8x8 digits,
    28x28 MNIST, 32x32 CIFAR with the defaults)."""
    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, width=32, depth=3, dropout=0.0):
        super().__init__()
        for key, value in (('width', width), ('depth', depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise utils.ConfigError(f'must be an integer >= 1, but got {value!r}', key=key)
        layers, channels = [], in_channels
        for i in range(depth):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            out = width * 2 ** i
            # No conv bias: the BatchNorm right after subtracts it again.
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(channels, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
