"""Random blocks made in the task: numpy's Generator, seeded from (seed, block index), so any block is reproducible."""
from __future__ import annotations

import numpy as np

from .blocks import block_shape


class KRandom:
    """Kernel: block idx of ``Generator.<dist>(*params, size=block shape)``, cast to the planned dtype."""

    name = ""

    def __init__(self, seed, chunks, dtype, dist="random", params=()):
        self.seed, self.chunks, self.dtype = seed, chunks, np.dtype(dtype)
        self.dist, self.params = dist, tuple(params)

    def compute(self, env, idx):
        rng = np.random.default_rng([self.seed, *idx])
        shape = block_shape(self.chunks, idx)
        if self.dist == "random":   # the seeded stream graphwren has always used for random()
            if self.dtype in (np.float32, np.float64):
                return rng.random(shape, dtype=self.dtype)
            return rng.random(shape).astype(self.dtype)
        args, kwargs = self.params
        out = getattr(rng, self.dist)(*args, size=shape, **dict(kwargs))
        return np.asarray(out).astype(self.dtype, copy=False)

    def reads(self, idx, out):
        pass

    def source_bytes(self, idx):
        return 0
