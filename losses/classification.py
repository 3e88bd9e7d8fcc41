import torch.nn as nn

import losses

# torch's own class takes `label_smoothing`, `weight`, `ignore_index`, `reduction` from args.
losses.register('cross_entropy')(nn.CrossEntropyLoss)
losses.register('mnist_ce')(nn.CrossEntropyLoss)  # the name the original MNIST example uses
