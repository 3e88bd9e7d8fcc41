"""Models (plain nn.Modules) and training wrappers (LightningModules), each in a registry.

    @models.register('mymodel')          class MyModel(nn.Module): ...
    models.make({'name': 'mymodel', 'args': {...}})
"""
import utils

registry = utils.Registry('models')
register, make, list = registry.register, registry.make, registry.list

# Training wrappers import Lightning; they load on first use so that train.py, which has no
# Lightning, can still build models.
wrappers = utils.Registry('train wrappers', modules=['models.base'])

from . import mlp, lenet5, resnet  # noqa: E402  (register on import)
