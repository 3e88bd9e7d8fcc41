"""Lightning callbacks: `@callbacks.register('name')`, or a dotted path in the config's
`callbacks:` list (`pytorch_lightning.callbacks.EarlyStopping`). Lightning loads on first use.

A callback whose __init__ takes `run_dir` gets the run folder from the entrypoint (None when
nothing is written, under --check)."""
import utils

registry = utils.Registry('callbacks', modules=[
    'callbacks.eta', 'callbacks.run_state', 'callbacks.lightning', 'callbacks.metrics_csv',
    'callbacks.image_logger'])
register, make, list = registry.register, registry.make, registry.list
