import torch.nn as nn

import models


@models.register('mlp')
class MLP(nn.Module):
    """Flatten, then Linear + ReLU + Dropout per `hidden` width, then a Linear to `num_classes`
    logits (or to `out_dim` values, for regression)."""
    input_shape = (1, 8, 8)  # what the defaults expect; the tests feed it

    def __init__(self, in_dim=64, hidden=(256,), num_classes=10, dropout=0.0, out_dim=None):
        super().__init__()
        if isinstance(hidden, int):  # one hidden layer: `hidden: 128` is `hidden: [128]`
            hidden = [hidden]
        layers, width = [nn.Flatten()], in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_dim or num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
