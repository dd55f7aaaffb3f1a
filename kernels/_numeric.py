"""Scalar math shared by the math and half families: NumPy versions of the error functions and of Warp's
``round``, the interval rules both generators use for the elementary functions, and short literals."""

from __future__ import annotations

import math

import numpy as np

from kernels._expr import Interval
from kernels.ir.numeric import erf, erfc  # noqa: F401  (re-exported for half)
from kernels.ir.numeric import erfinv as erfinv_newton  # noqa: F401


def round_half_away(x):
    """Warp's ``round``: half away from zero (``np.round`` rounds half to even)."""
    a = np.abs(x)
    r = np.floor(a)
    return np.copysign(r + (a - r >= 0.5), x)


def abs_range(iv: Interval) -> Interval:
    return Interval(0.0 if iv.contains_zero() else min(abs(iv.lo), abs(iv.hi)), iv.mag)


def sin_range(lo: float, hi: float) -> Interval:
    """Range of sin over [lo, hi]."""
    if hi - lo >= 2 * math.pi:
        return Interval(-1.0, 1.0)
    vals = [math.sin(lo), math.sin(hi)]
    k = math.ceil((lo - math.pi / 2) / math.pi)
    while math.pi / 2 + k * math.pi <= hi:
        vals.append(math.sin(math.pi / 2 + k * math.pi))
        k += 1
    return Interval(min(vals), max(vals))


def basic_unary_iv(op: str, iv: Interval) -> Interval | None:
    """Range of ``cosh``, ``abs``, ``neg``, ``frac`` (``x - trunc(x)``) and ``sign`` (``sign(0) == 1``) over
    ``iv``; ``None`` for other operators."""
    lo, hi = iv.lo, iv.hi
    if op == "cosh":
        a = abs_range(iv)
        return Interval(math.cosh(a.lo), math.cosh(a.hi))
    if op == "abs":
        return abs_range(iv)
    if op == "neg":
        return Interval(-hi, -lo)
    if op == "frac":
        return Interval(max(-1.0, min(0.0, lo)), min(1.0, max(0.0, hi)))
    if op == "sign":
        return Interval(-1.0 if lo < 0 else 1.0, 1.0 if hi >= 0 else -1.0)
    return None


def nice(value: float, digits: int = 2) -> float:
    """``value`` rounded toward zero to ``digits`` significant digits (short literals)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    e = math.floor(math.log10(abs(value))) - digits + 1
    q = 10.0 ** e
    r = math.trunc(value / q) * q
    return float(f"{r:.{max(0, -e)}f}") if e < 0 else float(r)
