from pytorch_lightning.callbacks import LearningRateMonitor

import callbacks

callbacks.register('lr_monitor')(LearningRateMonitor)  # Lightning's own: the lr of every optimizer
