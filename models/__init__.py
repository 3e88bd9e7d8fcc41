"""Models and tasks (training wrappers), each in a registry; plain PyTorch, no Lightning.

    @models.register('mymodel')          class MyModel(nn.Module): ...
    models.make({'name': 'mymodel', 'args': {...}})
    @models.wrappers.register('mytask')  class MyTask(models.Task): ...   (models/task.py)

A model is an nn.Module whose __init__ takes its spec's args (all with defaults) and that has
`input_shape` (on the class or the instance): the shape of one input its defaults take. The
tests build every registered model and train it a step on a batch of that shape. A model
that takes `num_classes` returns (N, num_classes) logits. A model of token ids sets
`input_dtype = torch.long` and `vocab_size` (models/gpt.py). A new file here registers its
classes once it is imported: add its name to the import line at the bottom of this file.
"""
import torch

import utils

registry = utils.Registry('models', spec_keys=['init_from', 'compile', 'channels_last'],
                          folder=__path__[0])
register, list = registry.register, registry.list


def make(spec, args=None):
    """registry.make, then what the spec asks of the built model, wherever a model is made
    (every task):

        init_from: save/NAME      the weights of that earlier run (or of a .ckpt)
        channels_last: true       weights in NHWC memory layout: faster convolutions on tensor
                                  cores (the activations follow the weights' layout)
        compile: true             nn.Module.compile(), in place: the state_dict keeps its keys;
                                  or a mapping of torch.compile arguments, e.g. {mode: max-autotune}
    """
    model = registry.make(spec, args)
    if not isinstance(spec, dict):
        return model
    if spec.get('init_from') is not None:
        with utils.at_key('init_from'):
            utils.init_from(model, spec['init_from'])
    if not isinstance(spec.get('channels_last', False), bool):
        raise utils.ConfigError(f"must be true or false, but got {spec['channels_last']!r}",
                                key='channels_last')
    if not isinstance(spec.get('compile', False), (bool, dict)):
        raise utils.ConfigError(f"must be true, false or a mapping of torch.compile arguments, "
                                f"but got {spec['compile']!r}", key='compile')
    if spec.get('channels_last'):
        model = model.to(memory_format=torch.channels_last)
    if spec.get('compile'):
        options = spec['compile'] if isinstance(spec['compile'], dict) else {}
        with utils.at_key('compile'):
            utils.check_args(torch.compile, {'model': model, **options}, 'torch.compile',
                             prefix='')
        model.compile(**options)  # compiles on the first forward; log.txt reports that step's time
    return model


wrappers = utils.Registry('train wrappers', spec_keys=['ema'], folder=__path__[0])

from .metrics import make_metrics  # noqa: E402
from .task import Evaluation, Task, check_fits, load_task, make_task  # noqa: E402
from .classification import Classification  # noqa: E402
from .regression import Regression  # noqa: E402
# every module here but lightning.py (the Lightning adapter: train_pl.py imports it)
from . import mlp, lenet5, convnet, resnet, dcgan, airbench, gan, gpt, language  # noqa: E402  (register on import)
