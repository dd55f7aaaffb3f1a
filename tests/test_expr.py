"""The expression generator's value intervals are sound: every sub-expression's value lies in its interval.

Families decide from these intervals whether a denominator can be zero or an argument can leave its domain;
an unsound interval is a kernel that divides by zero (SIGFPE on the CPU for integers) or calls ``log`` of a
negative number. Checked here on many random integer and float expressions over sampled leaf values,
interval end points included.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels import _expr as E
from harness.seeds import derive_seed, rng_for

LEAVES = {"a": E.Interval(-20, 20), "b": E.Interval(0, 9), "c": E.Interval(-3, -1)}
FLOAT_LEAVES = {"a": E.Interval(-2.0, 2.0), "b": E.Interval(0.5, 4.0)}


def _subnodes(node):
    yield node
    for child in node.args:
        yield from _subnodes(child)


def _samples(leaves, rng, ty, n=64):
    env = {}
    for name, iv in leaves.items():
        if ty.is_int:
            values = rng.integers(int(iv.lo), int(iv.hi) + 1, size=n)
            values[:2] = (int(iv.lo), int(iv.hi))
        else:
            values = rng.uniform(iv.lo, iv.hi, size=n)
            values[:2] = (iv.lo, iv.hi)
        env[name] = values.astype(ty.np_ref)
    return env


@pytest.mark.parametrize("ty,leaves,binary", [
    (E.INT32, LEAVES, ("add", "sub", "mul", "div", "min", "max", "mod", "floordiv")),
    (E.FLOAT32, FLOAT_LEAVES, ("add", "sub", "mul", "div", "min", "max")),
], ids=["int32", "float32"])
def test_every_subexpression_stays_in_its_interval(ty, leaves, binary):
    for k in range(300):
        rng = rng_for(derive_seed("test-expr-intervals", ty.name, k))
        node = E.ExprGen(rng, ty, dict(leaves), binary=binary).expr(int(rng.integers(1, 6)))
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
