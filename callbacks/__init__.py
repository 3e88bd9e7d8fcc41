"""Lightning callbacks: `@callbacks.register('name')`, or a dotted path in the config's
`callbacks:` list (`pytorch_lightning.callbacks.EarlyStopping`). Lightning loads on first use."""
import utils

registry = utils.Registry('callbacks', modules=['callbacks.eta', 'callbacks.run_state'])
register, make, list = registry.register, registry.make, registry.list
