"""Small helpers shared by families: the name pools, a random pick, tolerances by type."""

from __future__ import annotations

import numpy as np

from harness.family import KernelSpec, Tolerance
from kernels.ir.gen import ARRAY_NAMES, OUT_NAMES, SCALAR_NAMES  # noqa: F401  (one name pool)


def pick(rng: np.random.Generator, options, k: int | None = None):
    """One option (``k is None``) or ``k`` distinct options, order random."""
    if k is None:
        return options[int(rng.integers(len(options)))]
    idx = rng.choice(len(options), size=k, replace=False)
    return [options[int(i)] for i in idx]


#: tolerances of the families whose programs compute in one scalar type, ``meta["ty"]``
TYPE_TOLERANCES = {"float32": Tolerance(1e-4, 1e-5), "float64": Tolerance(1e-9, 1e-11), "int32": Tolerance(0.0, 0.0)}


def type_tolerance(spec: KernelSpec) -> Tolerance:
    return TYPE_TOLERANCES[spec.meta["ty"]]
