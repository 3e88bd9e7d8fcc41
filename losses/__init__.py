"""Losses: `@losses.register('name')` on a class or function, `losses.make(spec)`."""
import utils

registry = utils.Registry('losses')
register, make, list = registry.register, registry.make, registry.list

from . import classification, gan, regression  # noqa: E402  (register on import)
