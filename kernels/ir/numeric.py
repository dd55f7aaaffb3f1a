"""Value intervals and the NumPy helpers that copy Warp's scalar semantics (used by the operation table).

An :class:`Interval` bounds every component of a value (a vector's interval is the hull of its components);
booleans are intervals inside ``[0, 1]``. Helpers here are element-wise and NumPy-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

INF = math.inf


@dataclass(frozen=True, slots=True)
class Interval:
    """Closed interval ``[lo, hi]`` (bounds may be infinite)."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise ValueError(f"Expected lo <= hi but got [{self.lo}, {self.hi}]")

    @staticmethod
    def point(value: float) -> "Interval":
        return Interval(float(value), float(value))

    @staticmethod
    def hull(values: Iterable[float]) -> "Interval":
        vals = [float(v) for v in values if not math.isnan(v)]
        return Interval(min(vals), max(vals)) if vals else Interval(-INF, INF)

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    @property
    def is_point(self) -> bool:
        return self.lo == self.hi

    def contains(self, other: "Interval") -> bool:
        return self.lo <= other.lo and other.hi <= self.hi

    def contains_zero(self) -> bool:
        return self.lo <= 0.0 <= self.hi

    def join(self, other: "Interval") -> "Interval":
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    def meet(self, other: "Interval") -> "Interval | None":
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return Interval(lo, hi) if lo <= hi else None

    def widen(self, rel: float, abs_: float = 0.0) -> "Interval":
        """Outward by ``rel`` of each bound's magnitude plus ``abs_`` (covers rounding of the result); rounding
        never crosses zero, so a bound at or beyond 0 stays there."""
        lo, hi = self.lo - rel * abs(self.lo) - abs_, self.hi + rel * abs(self.hi) + abs_
        return Interval(max(lo, 0.0) if self.lo >= 0 else lo, min(hi, 0.0) if self.hi <= 0 else hi)

    def __str__(self) -> str:
        return f"[{self.lo:g}, {self.hi:g}]"


BOOL_IV = Interval(0.0, 1.0)


def iv_mul(a: Interval, b: Interval) -> Interval:
    with np.errstate(invalid="ignore"):
        return Interval.hull([a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi])


def iv_div(a: Interval, b: Interval) -> Interval:
    """``a / b`` for ``b`` not containing 0 (else everything)."""
    if b.contains_zero():
        return Interval(-INF, INF)
    return Interval.hull([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])


def iv_abs(a: Interval) -> Interval:
    return Interval(0.0 if a.contains_zero() else min(abs(a.lo), abs(a.hi)), a.mag)


def iv_monotone(fn, a: Interval, increasing: bool = True) -> Interval:
    lo, hi = fn(a.lo), fn(a.hi)
    return Interval(lo, hi) if increasing else Interval(hi, lo)


def iv_periodic(fn, a: Interval, peak: float) -> Interval:
    """Range of ``sin`` (``peak = pi/2``) or ``cos`` (``peak = 0``) over ``a``."""
    if a.hi - a.lo >= 2 * math.pi or not math.isfinite(a.hi - a.lo):
        return Interval(-1.0, 1.0)
    vals = [fn(a.lo), fn(a.hi)]
    k = math.ceil((a.lo - peak) / math.pi)
    while peak + k * math.pi <= a.hi:
        vals.append(fn(peak + k * math.pi))
        k += 1
    return Interval(max(-1.0, min(vals)), min(1.0, max(vals)))


# ---------------------------------------------------------------------------------------------------------
# Element-wise Warp semantics


def trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C integer division (truncates toward zero); 0 where ``b == 0`` (inactive lanes only)."""
    safe = np.where(b == 0, 1, b).astype(a.dtype)
    return ((a - np.fmod(a, safe)) // safe).astype(a.dtype)


def c_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C remainder: the sign of the dividend."""
    return np.fmod(a, np.where(b == 0, 1, b).astype(a.dtype))


def floor_div_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.floor_divide(a, np.where(b == 0, 1, b).astype(a.dtype))


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Warp's ``round``: half away from zero (``np.round`` rounds half to even)."""
    a = np.abs(x)
    r = np.floor(a)
    return np.copysign(r + (a - r >= 0.5), x)


_ERF = np.frompyfunc(math.erf, 1, 1)
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_ERF(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def erfc(x: np.ndarray) -> np.ndarray:
    return np.asarray(_ERFC(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function to float64 accuracy inside (-1, 1): a closed-form first guess refined by Newton
    steps (no special values at or beyond +-1)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        a = 0.147
        ln = np.log1p(-y * y)
        t = 2.0 / (np.pi * a) + ln / 2.0
        x = np.sign(y) * np.sqrt(np.sqrt(t * t - ln / a) - t)
        for _ in range(4):
            x = x - (erf(x) - y) / (2.0 / np.sqrt(np.pi) * np.exp(-x * x))
    return x


def smoothstep(e0: np.ndarray, e1: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Warp's ``smoothstep``: ``t = clamp((x - e0) / (e1 - e0), 0, 1)``, then ``t * t * (3 - 2 * t)``."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def sign(x: np.ndarray) -> np.ndarray:
    """Warp's ``sign``: ``-1`` below zero, else ``1`` (``sign(0) == 1``); unsigned integers are always 1."""
    return np.where(x < 0, -1, 1).astype(x.dtype)


# ---------------------------------------------------------------------------------------------------------
# Warp's PCG random numbers (warp/native/rand.h), bit-exact on uint32 states

RANDN_EPSILON = np.float32(5.96e-8)
TWO_PI_F = float(np.float32(2.0) * np.float32(np.pi))      # 2.f * M_PI_F, exact in float32


def pcg(state: np.ndarray) -> np.ndarray:
    """``rand_pcg``: the next state."""
    s = np.asarray(state, dtype=np.uint32)
    with np.errstate(over="ignore"):
        b = s * np.uint32(747796405) + np.uint32(2891336453)
        c = ((b >> ((b >> np.uint32(28)) + np.uint32(4))) ^ b) * np.uint32(277803737)
    return (c >> np.uint32(22)) ^ c


def advanced(state: np.ndarray, draws: int) -> list[np.ndarray]:
    """The ``draws`` states a builtin consumes after ``state`` (each ``pcg`` of the one before)."""
    out, s = [], np.asarray(state, dtype=np.uint32)
    for _ in range(draws):
        s = pcg(s)
        out.append(s)
    return out


def rand_init(seed: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """``rand_init(seed)`` / ``rand_init(seed, offset)`` of int32 values (reinterpreted as uint32)."""
    s = np.asarray(seed).astype(np.int64).astype(np.uint32)
    if offset is None:
        return pcg(s)
    with np.errstate(over="ignore"):
        return pcg(s + pcg(np.asarray(offset).astype(np.int64).astype(np.uint32)))


def unit_float(state: np.ndarray) -> np.ndarray:
    """``randf``'s value for an advanced state: ``(state >> 8) * 2^-24`` (exact in float64)."""
    return (np.asarray(state, dtype=np.uint32) >> np.uint32(8)).astype(np.float64) * (1.0 / 16777216.0)


def sample(kind: str, states: list[np.ndarray]) -> np.ndarray:
    """Warp's samplers from their consecutive advanced states (float64 math on the float32 draws)."""
    u = [unit_float(s) for s in states]
    if kind == "randn":
        x = (u[0].astype(np.float32) + RANDN_EPSILON).astype(np.float64)   # randf(state) + RANDN_EPSILON (float32)
        return np.sqrt(-2.0 * np.log(x)) * np.cos(TWO_PI_F * u[1])
    if kind == "sample_unit_ring":
        th = TWO_PI_F * u[0]
        return np.stack([np.cos(th), np.sin(th)], -1)
    if kind == "sample_unit_disk":
        r, th = np.sqrt(u[0]), TWO_PI_F * u[1]
        return np.stack([r * np.cos(th), r * np.sin(th)], -1)
    if kind in ("sample_unit_sphere_surface", "sample_unit_sphere", "sample_unit_hemisphere_surface",
                "sample_unit_hemisphere"):
        hemi = "hemisphere" in kind
        phi = np.arccos(1.0 - (u[0] if hemi else 2.0 * u[0]))
        th = TWO_PI_F * u[1]
        r = np.power(u[2], 1.0 / 3.0) if not kind.endswith("surface") else 1.0
        return np.stack([r * np.cos(th) * np.sin(phi), r * np.sin(th) * np.sin(phi), r * np.cos(phi)], -1)
    if kind == "sample_unit_square":
        return np.stack([u[0] - 0.5, u[1] - 0.5], -1)
    if kind == "sample_unit_cube":
        return np.stack([u[0] - 0.5, u[1] - 0.5, u[2] - 0.5], -1)
    if kind == "sample_triangle":
        r = np.sqrt(u[0])
        return np.stack([1.0 - r, u[1] * r], -1)
    raise ValueError(f"Expected a Warp sampler name but got {kind!r}")
