"""Models (plain nn.Modules) and training wrappers (LightningModules), each in a registry.

    @models.register('mymodel')          class MyModel(nn.Module): ...
    models.make({'name': 'mymodel', 'args': {...}})
"""
import utils

registry = utils.Registry('models', spec_keys=['init_from'])
register, list = registry.register, registry.list


def make(spec, args=None):
    """registry.make, then, when the spec has `init_from: save/NAME` (or a .ckpt), the weights
    of that earlier run, wherever a model is made: BaseWrapper, train.py, any other wrapper."""
    model = registry.make(spec, args)
    if isinstance(spec, dict) and spec.get('init_from') is not None:
        with utils.at_key('init_from'):
            utils.init_from(model, spec['init_from'])
    return model


# What a classifier logs and TensorBoard's HParams view puts beside its config: BaseWrapper's
# and train.py's metrics.
CLASSIFICATION_METRICS = ('val/acc', 'val/loss', 'test/acc', 'test/loss')

# Training wrappers import Lightning; they load on first use so that train.py, which has no
# Lightning, can still build models.
wrappers = utils.Registry('train wrappers', modules=['models.base', 'models.gan'])

from . import mlp, lenet5, convnet, resnet, dcgan  # noqa: E402  (register on import)
