"""Models (plain nn.Modules) and training wrappers (LightningModules), each in a registry.

    @models.register('mymodel')          class MyModel(nn.Module): ...
    models.make({'name': 'mymodel', 'args': {...}})
"""
import torch

import utils

registry = utils.Registry('models', spec_keys=['init_from', 'compile', 'channels_last'])
register, list = registry.register, registry.list


def make(spec, args=None):
    """registry.make, then what the spec asks of the built model, wherever a model is made
    (BaseWrapper, train.py, any other wrapper):

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


# What a classifier logs and TensorBoard's HParams view puts beside its config: BaseWrapper's
# and train.py's metrics.
CLASSIFICATION_METRICS = ('val/acc', 'val/loss', 'test/acc', 'test/loss')

# Training wrappers import Lightning; they load on first use so that train.py, which has no
# Lightning, can still build models.
wrappers = utils.Registry('train wrappers', modules=['models.base', 'models.gan'])

from . import mlp, lenet5, convnet, resnet, dcgan, airbench  # noqa: E402  (register on import)
