"""A fast CIFAR-10 network after Keller Jordan's airbench94 (github.com/KellerJordan/airbench),
whose recipe reaches 94% test accuracy in about 10 epochs at batch 1024; configs/cifar10-fast.yaml
is that recipe as far as a config can say it (and lists what it leaves out).

    whiten (2x2, frozen, fit to the data) -> GELU
    -> 3 x [conv3x3, max-pool 2, BN, GELU, conv3x3, BN, GELU]   widths 64/256/256
    -> global max-pool -> linear (no bias) -> x logit_scale
"""
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import models


def _sync_whitened_flag(module, incompatible_keys):
    # load_state_dict post hook: the loaded `whitened` buffer decides whether to fit again
    module.fitted = bool(module.whitened)


class PatchWhitening(nn.Module):
    """A 2x2 conv whose filters whiten the image's 2x2 patches: each output channel is one
    principal component of the patches, divided by its standard deviation, so the first layer
    hands the network decorrelated unit-variance features instead of strongly correlated
    neighbouring pixels. The filters come in pairs (v, -v): the GELU that follows keeps a
    component's positive and negative halves apart and loses neither.

    The filters are fit once, by `fit`, from the first batch the model sees in training mode
    (Airbench.forward calls it), and then frozen: they are buffers, not parameters, so no
    optimizer (and no weight decay) touches them, and they travel in the state dict with the
    flag `whitened`, so a resumed or loaded model never fits them again. Before the fit they
    are the identity basis (the whitening of data that is already white); eval-mode forwards
    use them as they are.
    """

    def __init__(self, in_channels=3, kernel_size=2, eps=5e-4):
        super().__init__()
        self.eps = eps
        dim = in_channels * kernel_size ** 2  # values in one patch
        identity = torch.eye(dim).reshape(dim, in_channels, kernel_size, kernel_size)
        self.register_buffer('weight', torch.cat([identity, -identity]))
        self.bias = nn.Parameter(torch.zeros(2 * dim))  # trained (airbench: for 3 epochs)
        self.register_buffer('whitened', torch.tensor(False))
        # A Python copy of the flag for the forward's test: torch.compile guards on a Python bool
        # and recompiles once when it flips, where reading the tensor would break the graph
        # on every call. The buffer is what is saved; the hook copies it back on load.
        self.fitted = False
        self.register_load_state_dict_post_hook(_sync_whitened_flag)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)

    # Kept out of any compiled graph: it runs once, on data, with an eigendecomposition and
    # maybe a collective, and writes buffers. torch.compile breaks the graph at this call and
    # runs it eagerly; see Airbench.forward for where it is called from, and why there.
    # torch._disable_dynamo (torch's own, private) is torch.compiler.disable that imports
    # torch._dynamo at the first call, not here: a config error (models/ is imported to check
    # it) does not wait the 2 s of that import (benchmarks/RESULTS.md).
    @getattr(torch, '_disable_dynamo', torch.compiler.disable)
    @torch.no_grad()
    def fit(self, x):
        _, in_channels, k, _ = self.weight.shape
        # Every 2x2 patch as a row (c-major, then row, then column: the order of the conv
        # weight's flattened filters). Autocast off and float32: under bf16-mixed the
        # covariance and the eigenvectors would lose most of their precision.
        with torch.autocast(x.device.type, enabled=False):
            patches = F.unfold(x.float(), k).transpose(1, 2).reshape(-1, in_channels * k * k)
            # Uncentred, as airbench: the inputs are normalised to mean ~0 already.
            covariance = patches.T @ patches / len(patches)
            if dist.is_available() and dist.is_initialized():
                # Every rank saw a different batch; averaging gives all the same filters.
                dist.all_reduce(covariance)
                covariance /= dist.get_world_size()
            eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
        # Largest component first. eps caps the gain of the directions in which the patches
        # hardly vary, which would otherwise be amplified from noise; the clamp catches an
        # eigenvalue that rounding made slightly negative.
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        filters = eigenvectors.T / (eigenvalues.clamp(min=0) + self.eps).sqrt()[:, None]
        filters = filters.reshape(-1, in_channels, k, k).to(self.weight.dtype)
        self.weight.copy_(torch.cat([filters, -filters]))
        self.whitened.fill_(True)
        self.fitted = True


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm with no learned scale (airbench keeps it at 1: the next conv can scale its
    input as it needs) and a learned shift whose SGD learning rate is `bias_lr_scale` times
    the others'.

    airbench gives the BN biases their own parameter group with 64x the learning rate and the
    same decoupled weight decay. A config has one group, so the same update comes from the
    parametrisation: bias = s * raw with s = sqrt(bias_lr_scale). SGD's step on raw is s times
    larger (the gradient is scaled by s) and shows s times larger again in bias, so bias moves
    s^2 = bias_lr_scale times as fast, while weight decay still shrinks raw, and so bias, by
    the same fraction per step as every other weight. (Under Adam, which ignores gradient
    scale, the multiplier would be s, not s^2.)"""

    def __init__(self, num_features, momentum, bias_lr_scale=1.0):
        super().__init__(num_features, momentum=momentum, affine=False)
        self.raw_bias = nn.Parameter(torch.zeros(num_features))
        self.bias_multiplier = bias_lr_scale ** 0.5

    def forward(self, x):
        return super().forward(x) + (self.bias_multiplier * self.raw_bias)[:, None, None]


def conv3x3(in_channels, out_channels):
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    # The first filters start as identities (a delta in the centre of the kernel, one per
    # input channel), as in airbench: at initialisation each layer passes its input through,
    # which is what a residual connection gives a deep net, in a net that has none.
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:in_channels])
    return conv


class ConvGroup(nn.Sequential):
    def __init__(self, in_channels, out_channels, batchnorm_momentum, bias_lr_scale):
        super().__init__(
            conv3x3(in_channels, out_channels),
            nn.MaxPool2d(2),  # right after the conv: the BN and GELU see a quarter of the pixels
            BatchNorm(out_channels, batchnorm_momentum, bias_lr_scale),
            nn.GELU(),
            conv3x3(out_channels, out_channels),
            BatchNorm(out_channels, batchnorm_momentum, bias_lr_scale),
            nn.GELU(),
        )


@models.register('airbench')
class Airbench(nn.Module):
    """`batchnorm_momentum` is PyTorch's (the weight of the new batch): airbench's 0.6 is the
    weight of the running average, so 0.4 here. `tta`: in eval mode, the logits are the average
    of the image's and its mirror image's. `bias_lr_scale`: see BatchNorm (64 in airbench;
    1 for a plain BN shift)."""
    input_shape = (3, 32, 32)

    def __init__(self, num_classes=10, in_channels=3, widths=(64, 256, 256), tta=True,
                 whiten_eps=5e-4, batchnorm_momentum=0.4, bias_lr_scale=64.0,
                 logit_scale=1 / 9):
        super().__init__()
        self.input_shape = (in_channels, 32, 32)
        self.tta = tta
        self.logit_scale = logit_scale
        self.whiten = PatchWhitening(in_channels, 2, whiten_eps)
        width = self.whiten.weight.shape[0]  # 2 x in_channels x 2 x 2: 24 for RGB
        groups = []
        for out_width in widths:
            groups.append(ConvGroup(width, out_width, batchnorm_momentum, bias_lr_scale))
            width = out_width
        self.features = nn.Sequential(nn.GELU(), *groups)
        # 32 -> 31 (the 2x2 whitening has no padding) -> 15 -> 7 -> 3 pixels, then the max of
        # those 3x3: the strongest evidence anywhere in the image for each feature.
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(width, num_classes, bias=False)

    def logits(self, x):
        x = self.pool(self.features(self.whiten(x))).flatten(1)
        # A fixed scale, tuned by airbench together with its lr and label smoothing. It starts
        # the logits small, and (the BN bias multiplier's argument, the other way round) makes
        # an SGD step move the logits through the head 1 / scale^2 = 81 times less: the head
        # gets a far smaller lr than the high one the convolutions train at.
        return self.head(x) * self.logit_scale

    def forward(self, x):
        # The whitening is fit here, first thing in the outermost forward, not inside
        # self.whiten: torch.compile (nn.Module.compile included) compiles this whole call, and
        # a graph break inside a nested module's forward would split every later call into
        # several graphs for good. Here the break only cuts off an empty graph; the next call
        # finds `fitted` changed, recompiles forward without the branch, in one graph.
        if self.training and not self.whiten.fitted:
            self.whiten.fit(x)
        if self.tta and not self.training:
            # A mirrored CIFAR image is as likely as the original: averaging both views'
            # logits is a free ensemble of two at test time (airbench's tta_level 1).
            return 0.5 * (self.logits(x) + self.logits(x.flip(-1)))
        return self.logits(x)
