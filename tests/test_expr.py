"""The expression generator's value intervals are sound: every sub-expression's value lies in its interval.

``spatial`` decides from these intervals whether a denominator can be zero; an unsound interval is a kernel that
divides by zero. Checked here on many random float32 and float64 expressions over sampled leaf values,
interval end points included.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels import _expr as E
from harness.seeds import derive_seed, rng_for

FLOAT_LEAVES = {"a": E.Interval(-2.0, 2.0), "b": E.Interval(0.5, 4.0)}


def _subnodes(node):
    yield node
    for child in node.args:
        yield from _subnodes(child)


def _samples(leaves, rng, ty, n=64):
    env = {}
    for name, iv in leaves.items():
        values = rng.uniform(iv.lo, iv.hi, size=n)
        values[:2] = (iv.lo, iv.hi)
        env[name] = values.astype(ty.np_ref)
    return env


@pytest.mark.parametrize("ty", [E.FLOAT32, E.FLOAT64], ids=["float32", "float64"])
def test_every_subexpression_stays_in_its_interval(ty):
    leaves = FLOAT_LEAVES
    for k in range(300):
        rng = rng_for(derive_seed("test-expr-intervals", ty.name, k))
        node = E.ExprGen(rng, ty, dict(leaves)).expr(int(rng.integers(1, 6)))
        env = _samples(leaves, rng, ty)
        for sub in _subnodes(node):
            if sub.op in E.COMPARE_SYMBOL or sub.op in ("and", "or", "not"):
                continue
            value = np.broadcast_to(E.evaluate(sub, env, ty), (64,)).astype(np.float64)
            slack = 1e-9 * max(1.0, sub.iv.mag)
            outside = (value < sub.iv.lo - slack) | (value > sub.iv.hi + slack)
            assert not outside.any(), (
                f"{E.emit(sub, ty)} = {value[outside][0]!r} outside its interval [{sub.iv.lo}, {sub.iv.hi}] "
                f"(expression {k} of {ty.name})")
