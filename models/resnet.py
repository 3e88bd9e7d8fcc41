import torch.nn as nn
import torchvision

import models


@models.register('resnet18')
class ResNet18(nn.Module):
    """torchvision's ResNet-18 with `in_channels` input channels."""
    input_shape = (1, 28, 28)

    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.in_channels = in_channels
        self.net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        if in_channels != 3:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)

    def forward(self, x):
        if x.shape[1] == 1 and self.in_channels == 3:
            # Grayscale into the ImageNet-shaped default: repeat the channel (a view, no copy),
            # so an MNIST config needs no in_channels.
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)
