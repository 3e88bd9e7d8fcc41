"""Models (plain nn.Modules) and training wrappers (LightningModules), each in a registry.

    @models.register('mymodel')          class MyModel(nn.Module): ...
    models.make({'name': 'mymodel', 'args': {...}})
"""
import utils

registry = utils.Registry('models')
register, list = registry.register, registry.list


def make(spec, args=None):
    """registry.make, then, when the spec has `init_from: save/NAME` (or a .ckpt), the weights
    of that earlier run, wherever a model is made: BaseWrapper, train.py, any other wrapper."""
    model = registry.make(spec, args)
    if isinstance(spec, dict) and spec.get('init_from') is not None:
        with utils.at_key('init_from'):
            utils.init_from(model, spec['init_from'])
    return model


# Training wrappers import Lightning; they load on first use so that train.py, which has no
# Lightning, can still build models.
wrappers = utils.Registry('train wrappers', modules=['models.base', 'models.gan'])

from . import mlp, lenet5, convnet, resnet, dcgan  # noqa: E402  (register on import)
