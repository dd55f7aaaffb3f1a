"""Seed derivation. Every seed comes from sha256 of its parts, never from ``hash()`` or the clock."""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from sha256 over the ``repr``-free text of ``parts`` joined by ``/``.

    >>> derive_seed(0, "arithmetic", "chunk", 3, 1) == derive_seed(0, "arithmetic", "chunk", 3, 1)
    True
    """
    text = "/".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def rng_for(seed: int) -> np.random.Generator:
    """The generator a family receives: PCG64 seeded with ``seed`` (stable across NumPy versions)."""
    return np.random.Generator(np.random.PCG64(seed))


def kernel_seed(factory_seed: int, family: str, chunk: str, index: int) -> int:
    """The seed of kernel ``index`` in ``chunk`` of ``family`` for base seed ``factory_seed``."""
    return derive_seed("wkf-kernel", factory_seed, family, chunk, index)
