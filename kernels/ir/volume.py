"""NumPy stand-in of a float ``wp.Volume`` made by ``wp.Volume.load_from_numpy``, with Warp's exact semantics.

Warp 1.19 (``warp/native/volume.h``, ``nanovdb/PNanoVDB.h``), read and measured on the cpu build:

* ``load_from_numpy(values, min_world=origin, voxel_size=h, bg_value=bg)`` pads the array with ``bg`` to
  multiples of 8 and sets the index-to-world map ``x = i * h + origin`` (diagonal matrix, translation
  ``origin``); a voxel outside the allocated leaves reads ``bg``.
* ``volume_world_to_index(id, x) = (x - origin) * (1 / h)`` and ``volume_index_to_world(id, u) = u * h + origin``
  in float32 (the off-diagonal terms are products with 0 and add nothing). With ``h`` a power of two the
  products are exact, so one rounding per component remains (FMA contraction on CUDA gives the same value).
* ``volume_sample_f(id, uvw, wp.Volume.CLOSEST)`` reads voxel ``roundf(uvw)`` (half away from zero);
  ``LINEAR`` is trilinear: ``b = floorf(uvw)``, ``f = uvw - b``, weights ``wx = (1 - fx, fx)``..., and the
  eight corners are summed in the order (0,0,0), (0,0,1), (0,1,0), ..., (1,1,1) as
  ``val += (wx * wy * wz) * v`` in float32.
* ``volume_lookup_f(id, i, j, k)`` reads voxel ``(i, j, k)``.

``f = uvw - b`` rounds in float32 below 0 (-0.18 + 1): the reference rounds it too (exact on 10k samples).

The interval rules of the operation rows (:mod:`kernels.ir.ops`) hold for volumes that satisfy :data:`VALUES`,
:data:`VOXELS` and :data:`ORIGIN` (:class:`DenseVolume` checks them), so they are conservative for every volume a
family can build.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

from kernels.ir.numeric import Interval

#: voxel values and background lie here
VALUES = Interval(-4.0, 4.0)
#: voxel sizes: powers of two (exact index <-> world maps)
VOXELS = (0.125, 0.25, 0.5, 1.0, 2.0)
#: each component of the origin (``min_world``) lies here
ORIGIN = Interval(-8.0, 8.0)
CLOSEST, LINEAR = 0, 1
#: NumPy volumes by the id the interpreter sees in place of a ``wp.uint64`` volume id (see :func:`bound`)
HANDLES: dict[int, "DenseVolume | IndexVolume"] = {}
#: corner order of Warp's trilinear sum
_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1))


class _Mapped:
    """The index <-> world map of a volume with ``origin`` (world position of voxel 0,0,0) and ``voxel`` size."""

    origin: tuple[float, float, float]
    voxel: float

    def world_to_index(self, x: np.ndarray, exact: bool = True) -> np.ndarray:
        o = np.asarray(self.origin, dtype=np.float32).astype(np.float64)
        d = x - o
        if exact:
            d = d.astype(np.float32).astype(np.float64)
        return d * (1.0 / self.voxel)

    def index_to_world(self, u: np.ndarray, exact: bool = True) -> np.ndarray:
        o = np.asarray(self.origin, dtype=np.float32).astype(np.float64)
        x = u * self.voxel + o
        return x.astype(np.float32).astype(np.float64) if exact else x


@dataclass(frozen=True, eq=False)
class DenseVolume(_Mapped):
    """Voxels ``values`` (float32, 3-D) with ``origin`` (world position of voxel 0,0,0), isotropic ``voxel``
    size and ``background`` value."""

    values: np.ndarray
    origin: tuple[float, float, float]
    voxel: float
    background: float

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 3 or self.voxel not in VOXELS or not all(ORIGIN.lo <= o <= ORIGIN.hi for o in self.origin):
            raise ValueError(f"Expected 3-D values, a voxel size in {VOXELS} and an origin in {ORIGIN} but got "
                             f"shape {v.shape}, voxel {self.voxel}, origin {self.origin}")
        object.__setattr__(self, "_voxels", v.astype(np.float32).astype(np.float64))
        lo, hi = float(v.min()), float(v.max())
        if not (VALUES.lo <= min(lo, self.background) and max(hi, self.background) <= VALUES.hi):
            raise ValueError(f"Expected values and background in {VALUES} but got [{lo}, {hi}] and {self.background}")

    def read(self, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Voxel values at integer coordinates (background outside the array), float64."""
        v = self._voxels
        inside = (i >= 0) & (i < v.shape[0]) & (j >= 0) & (j < v.shape[1]) & (k >= 0) & (k < v.shape[2])
        got = v[np.where(inside, i, 0), np.where(inside, j, 0), np.where(inside, k, 0)]
        return np.where(inside, got, float(np.float32(self.background)))

    def sample(self, uvw: np.ndarray, mode: np.ndarray, exact: bool = True) -> np.ndarray:
        """``volume_sample_f`` at index-space points ``uvw`` (lanes, 3) with sampling modes ``mode`` (lanes,)."""
        rnd = (lambda a: a.astype(np.float32).astype(np.float64)) if exact else (lambda a: a)
        near = np.where(uvw >= 0, np.floor(uvw + 0.5), np.ceil(uvw - 0.5))      # roundf: half away from zero
        closest = self.read(*(near[:, c].astype(np.int64) for c in range(3)))
        base = np.floor(uvw)
        frac = rnd(uvw - base)                   # not exact below 0: -0.18 + 1 rounds in float32
        b = base.astype(np.int64)
        weights = [(rnd(1.0 - frac[:, c]), frac[:, c]) for c in range(3)]
        val = np.zeros(uvw.shape[0])
        for ox, oy, oz in _CORNERS:
            w = rnd(rnd(weights[0][ox] * weights[1][oy]) * weights[2][oz])
            val = rnd(val + rnd(w * self.read(b[:, 0] + ox, b[:, 1] + oy, b[:, 2] + oz)))
        return np.where(mode == CLOSEST, closest, val)

    def sample_grad(self, uvw: np.ndarray, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``volume_sample_grad_f(id, uvw, wp.Volume.LINEAR, grad)``: the trilinear value and its index-space
        gradient, summed corner by corner as Warp does (``grad += v * (sx * wy * wz, sy * wx * wz, sz * wx * wy)``
        with signs ``2 * offset - 1``)."""
        rnd = (lambda a: a.astype(np.float32).astype(np.float64)) if exact else (lambda a: a)
        base = np.floor(uvw)
        frac = rnd(uvw - base)
        b = base.astype(np.int64)
        wx, wy, wz = [(rnd(1.0 - frac[:, c]), frac[:, c]) for c in range(3)]
        val = np.zeros(uvw.shape[0])
        grad = np.zeros(uvw.shape)
        for ox, oy, oz in _CORNERS:
            v = self.read(b[:, 0] + ox, b[:, 1] + oy, b[:, 2] + oz)
            sx, sy, sz = 2 * ox - 1, 2 * oy - 1, 2 * oz - 1
            gw = (rnd(sx * wy[oy] * wz[oz]), rnd(sy * wx[ox] * wz[oz]), rnd(sz * wx[ox] * wy[oy]))
            val = rnd(val + rnd(rnd(rnd(wx[ox] * wy[oy]) * wz[oz]) * v))
            for c in range(3):
                grad[:, c] = rnd(grad[:, c] + rnd(v * gw[c]))
        return val, grad


#: active voxels of an index volume lie in ``[0, SPAN)^3``: one lower internal node of the NanoVDB tree (16^3 leaves
#: of 8^3 voxels), which fixes the order of their indices (see :class:`IndexVolume`)
SPAN = 128
#: most active voxels of an index volume (the interval of ``volume_lookup_index``)
MAX_ACTIVE = 4096


@dataclass(frozen=True, eq=False)
class IndexVolume(_Mapped):
    """``wp.Volume.allocate_by_voxels(wp.array(voxels, dtype=wp.vec3i), voxel_size=voxel, translation=origin)``:
    an index grid whose active voxels are the distinct integer coordinates ``voxels`` (N, 3), all in ``[0, SPAN)``,
    with the index <-> world map of a dense volume.

    ``volume_lookup_index(id, i, j, k)`` is the index of an active voxel, -1 for any other coordinates (also far
    outside). Indices follow NanoVDB's layout: leaf by leaf (leaf ``((i >> 3) << 8) | ((j >> 3) << 4) | (k >> 3)``
    inside the lower node), then by offset ``((i & 7) << 6) | ((j & 7) << 3) | (k & 7)`` inside the leaf; this is
    also the order of ``Volume.get_voxels()`` (measured on the cpu build: 299 random voxels, 2,000 lookups)."""

    voxels: np.ndarray
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    voxel: float = 1.0

    def __post_init__(self) -> None:
        v = np.asarray(self.voxels, dtype=np.int64).reshape(-1, 3)
        keys = self.key(v[:, 0], v[:, 1], v[:, 2])
        if v.size and (v.min() < 0 or v.max() >= SPAN) or len(np.unique(keys)) != len(keys) or \
                len(keys) > MAX_ACTIVE:
            raise ValueError(f"Expected at most {MAX_ACTIVE} distinct voxels in [0, {SPAN}) but got {len(keys)} "
                             f"in [{v.min(initial=0)}, {v.max(initial=0)}]")
        object.__setattr__(self, "_keys", np.sort(keys))

    @staticmethod
    def key(i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        leaf = ((i >> 3) << 8) | ((j >> 3) << 4) | (k >> 3)
        return (leaf << 9) | ((i & 7) << 6) | ((j & 7) << 3) | (k & 7)

    def lookup(self, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``volume_lookup_index`` at integer coordinates: int32, -1 where no voxel is active."""
        i, j, k = (np.asarray(x, dtype=np.int64) for x in (i, j, k))
        inside = (i >= 0) & (i < SPAN) & (j >= 0) & (j < SPAN) & (k >= 0) & (k < SPAN)
        key = self.key(np.where(inside, i, 0), np.where(inside, j, 0), np.where(inside, k, 0))
        at = np.searchsorted(self._keys, key)
        found = inside & (at < len(self._keys)) & (self._keys[np.minimum(at, len(self._keys) - 1)] == key)
        return np.where(found, at, -1).astype(np.int32)


def index_handle(ids: np.ndarray) -> IndexVolume:
    """The index volume of a lane array of ids; an id nothing is bound to stands for one :func:`drawn_index`."""
    key = int(np.asarray(ids).reshape(-1)[0])
    found = HANDLES.get(key)
    return found if isinstance(found, IndexVolume) else drawn_index(key)


@lru_cache(maxsize=64)
def drawn_index(key: int) -> IndexVolume:
    """A random admissible index volume determined by ``key``: up to 64 distinct voxels anywhere in the span."""
    rng = np.random.default_rng(key)
    return IndexVolume(np.unique(rng.integers(0, SPAN, (int(rng.integers(1, 65)), 3)), axis=0))


def handle(ids: np.ndarray) -> DenseVolume:
    """The volume of a lane array of ids (a kernel's volume parameter: one id on every lane); an id nothing is
    bound to stands for the admissible volume :func:`drawn` from it (the op table's property tests evaluate the
    rows on arbitrary ids, and the interval rules must hold for every admissible volume)."""
    key = int(np.asarray(ids).reshape(-1)[0])
    return HANDLES[key] if key in HANDLES else drawn(key)


@lru_cache(maxsize=64)
def drawn(key: int) -> DenseVolume:
    """A random admissible volume determined by ``key``: 1-9 voxels a side, any voxel size, origin, values."""
    rng = np.random.default_rng(key)
    values = rng.uniform(VALUES.lo, VALUES.hi, tuple(rng.integers(1, 10, 3))).astype(np.float32)
    origin = tuple(float(np.float32(x)) for x in rng.uniform(ORIGIN.lo, ORIGIN.hi, 3))
    return DenseVolume(values, origin, float(rng.choice(VOXELS)), float(np.float32(rng.uniform(VALUES.lo, VALUES.hi))))


@contextmanager
def bound(volume: DenseVolume | IndexVolume) -> Iterator[int]:
    """An id under which the interpreter's volume operations find ``volume`` while the block runs."""
    key = max(HANDLES, default=0) + 1
    HANDLES[key] = volume
    try:
        yield key
    finally:
        del HANDLES[key]


def grad_bound() -> Interval:
    """Components of ``volume_sample_grad_f``'s gradient: per axis a weighted sum of corner differences, whose
    weights sum to 1, so at most twice the largest value (a few float32 roundings on top)."""
    return Interval(-2.0 * VALUES.mag, 2.0 * VALUES.mag).widen(1e-5)


def iv_world_to_index(x: Interval) -> Interval:
    """Index-space coordinates of world coordinates in ``x`` for every admissible origin and voxel size."""
    ends = [(a - o) / h for a in (x.lo, x.hi) for o in (ORIGIN.lo, ORIGIN.hi) for h in (min(VOXELS), max(VOXELS))]
    return Interval(min(ends), max(ends))


def iv_index_to_world(u: Interval) -> Interval:
    ends = [a * h + o for a in (u.lo, u.hi) for o in (ORIGIN.lo, ORIGIN.hi) for h in (min(VOXELS), max(VOXELS))]
    return Interval(min(ends), max(ends))


def fits_int32(iv: Interval) -> bool:
    """Whether ``floorf``/``roundf`` of coordinates in ``iv`` (and one more) converts to int32 exactly."""
    return math.isfinite(iv.lo) and math.isfinite(iv.hi) and -2.0 ** 24 < iv.lo and iv.hi < 2.0 ** 24
