"""Short names for Lightning's own callbacks; any other one works by its dotted path
(`pytorch_lightning.callbacks.StochasticWeightAveraging`).

    callbacks:
      - {name: early_stopping, args: {monitor: val/acc, mode: max, patience: 5}}
      - {name: lr_monitor, args: {logging_interval: epoch}}
"""
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor

import callbacks

callbacks.register('early_stopping')(EarlyStopping)
callbacks.register('lr_monitor')(LearningRateMonitor)
