import torch.nn as nn

import losses

# torch's own classes; `reduction` (and huber's `delta`, smooth_l1's `beta`) from args.
losses.register('mse')(nn.MSELoss)
losses.register('l1')(nn.L1Loss)
losses.register('smooth_l1')(nn.SmoothL1Loss)
losses.register('huber')(nn.HuberLoss)
