"""Seeding, and every random state a checkpoint needs to continue a run exactly."""
import random

import numpy as np
import torch


def seed_everything(seed):
    # The same calls as Lightning's seed_everything, so both entrypoints start identically.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    # NumPy's key as a tensor: the checkpoint stays loadable with torch.load(weights_only=True).
    # Python's 625 words as one too: torch.save's pickler calls back into Python for each
    # object it writes: as a tuple of ints they cost 0.5 ms of torch.save, as a tensor 0.1
    # (made through NumPy: torch.tensor of a tuple takes 2.5 times as long).
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {'python': (version, torch.from_numpy(np.array(words, dtype=np.int64)), gauss_next),
            'numpy': (kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss),
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def all_rng_states():
    """Every rank's rng_state(), in rank order (this process's alone without DDP): what a
    checkpoint keeps. Under DDP every rank must call it."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return [rng_state()]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


def set_rng_state(state):
    version, words, gauss_next = state['python']
    if isinstance(words, torch.Tensor):  # else a tuple: a checkpoint written before
        words = tuple(words.tolist())
    random.setstate((version, words, gauss_next))
    kind, key, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if state['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
